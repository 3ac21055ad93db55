"""SNMP power probe: GET a device's profile OIDs and decode them into a PowerReading.

A device that does not answer gives a reading with ``error`` set, never an
exception, so one dead UPS does not stop the poll of the others.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from agent.config import DeviceConfig, SiteConfig, SnmpV2cCredentials
from agent.probes import DeviceReading, Transports
from agent.profiles import Profile, decode, load_profile_by_name, oids
from agent.snmp_transport import SnmpError, SnmpTransport
from agent.wire import PowerReading, Slug

__all__ = ["SnmpTarget", "collect", "poll_device"]

_MAX_ERROR = 500  # PowerReading.error's limit


class SnmpTarget(BaseModel):
    """One SNMP device to poll, as the site config declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Slug
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 161
    # The v2c community is a password: it prints as ********** in reprs and logs.
    community: SecretStr = SecretStr("public")
    profile: Slug
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1

    @property
    def worst_case_s(self) -> float:
        """How long one unanswered GET can take: every try times out."""
        return self.timeout_s * (self.retries + 1)


async def collect(
    target: SnmpTarget, *, transport: SnmpTransport, profile: Profile
) -> PowerReading:
    """Poll one device once. SNMP failures come back as ``PowerReading(error=...)``."""
    if profile.profile != target.profile:
        # A wiring bug in the caller, not a device failure: say so loudly.
        raise ValueError(
            f"{target.device}: wants profile {target.profile!r}, got {profile.profile!r}"
        )
    try:
        answer = await transport.get(
            target.host,
            target.port,
            target.community.get_secret_value(),
            oids(profile),
            timeout_s=target.timeout_s,
            retries=target.retries,
        )
    except SnmpError as exc:
        return PowerReading(
            device=target.device, profile=profile.profile, error=str(exc)[:_MAX_ERROR]
        )
    return decode(profile, target.device, answer)


async def poll_device(
    device: DeviceConfig, config: SiteConfig, transports: Transports
) -> list[DeviceReading]:
    """The :data:`agent.probes.DevicePoller` for SNMP devices."""
    assert device.profile is not None and device.credentials is not None  # config checked
    credentials = config.snmp_credentials[device.credentials]
    if not isinstance(credentials, SnmpV2cCredentials):
        return [
            PowerReading(
                device=device.device, profile=device.profile, error="SNMPv3 is not supported yet"
            )
        ]
    target = SnmpTarget(
        device=device.device,
        host=device.host,
        port=device.port_or_default,
        community=SecretStr(credentials.community.reveal()),
        profile=device.profile,
        timeout_s=device.timeout_s,
        retries=device.retries,
    )
    profile = load_profile_by_name(device.profile)
    return [await collect(target, transport=transports.snmp(), profile=profile)]
