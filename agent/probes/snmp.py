"""SNMP probe (v2c or v3): GET a power profile's OIDs, or walk an interface profile's table.

A device never raises, it reports: a power device that fails gives one
``PowerReading(error=...)``; an interface device that fails (or whose filters keep
no row) gives one ``InterfaceReading(port="all", error=...)`` — one error row for
the whole device, because its ports cannot be named without an answer. The kind
of the error reading follows the profile, so the collector files it where the
device's readings would have gone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from agent.config import DeviceConfig, SiteConfig, SnmpV3Credentials
from agent.probes import DeviceReading, Transports
from agent.profile_decode import decode, decode_interfaces, rows_from_walk
from agent.profiles import (
    AnyProfile,
    InterfaceProfile,
    Profile,
    load_profile_by_name,
    oids,
    table_columns,
)
from agent.snmp_transport import CommunityAuth, SnmpAuth, SnmpError, SnmpTransport, UsmAuth
from contract.wire import InterfaceReading, PowerReading, Slug

__all__ = [
    "SnmpTarget",
    "collect",
    "collect_interfaces",
    "error_readings",
    "poll",
    "poll_device",
]

_MAX_ERROR = 500  # the wire's ErrorText limit
ALL_PORTS = "all"  # the port of the one error row an interface device gives when it fails


class SnmpTarget(BaseModel):
    """One SNMP device to poll: where, with which credentials, how patiently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Slug
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 161
    # The v2c community is a password: it prints as ********** in reprs and logs.
    community: SecretStr = SecretStr("public")
    v3: SnmpV3Credentials | None = None  # when given, SNMPv3 and no community
    profile: Slug
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1

    @property
    def worst_case_s(self) -> float:
        """The longest one poll takes: the transport gives up on it after this, whole."""
        return self.timeout_s * (self.retries + 1)

    def auth(self) -> SnmpAuth:
        """The transport's auth object; secrets revealed here only (ValueError if absent)."""
        if self.v3 is None:
            return CommunityAuth(self.community.get_secret_value())
        v3 = self.v3
        return UsmAuth(
            user=v3.user,
            auth_protocol=v3.auth_protocol,
            auth_key=v3.auth_key.reveal() if v3.auth_key is not None else None,
            priv_protocol=v3.priv_protocol,
            priv_key=v3.priv_key.reveal() if v3.priv_key is not None else None,
            context=v3.context,
        )


def _check(target: SnmpTarget, profile: AnyProfile) -> None:
    if profile.profile != target.profile:
        # A wiring bug in the caller, not a device failure: say so loudly.
        raise ValueError(
            f"{target.device}: wants profile {target.profile!r}, got {profile.profile!r}"
        )


async def collect(
    target: SnmpTarget, *, transport: SnmpTransport, profile: Profile
) -> PowerReading:
    """Poll one power device once. Failures come back as ``PowerReading(error=...)``."""
    _check(target, profile)
    try:
        answer = await transport.get(
            target.host,
            target.port,
            target.auth(),
            oids(profile),
            timeout_s=target.timeout_s,
            retries=target.retries,
        )
    except (SnmpError, ValueError) as exc:  # ValueError: a secret that cannot be read
        return PowerReading(
            device=target.device, profile=profile.profile, error=str(exc)[:_MAX_ERROR]
        )
    return decode(profile, target.device, answer)


async def collect_interfaces(
    target: SnmpTarget, *, transport: SnmpTransport, profile: InterfaceProfile
) -> list[InterfaceReading]:
    """Walk one device's interface table once; a failure is one error row, port ``all``."""
    _check(target, profile)
    try:
        walked = await transport.walk(
            target.host,
            target.port,
            target.auth(),
            table_columns(profile),
            timeout_s=target.timeout_s,
            retries=target.retries,
            max_rows=profile.max_rows,
        )
    except (SnmpError, ValueError) as exc:
        return [_interface_error(target.device, str(exc))]
    rows = rows_from_walk(walked)
    readings = decode_interfaces(profile, target.device, rows)
    if not readings:  # never silent: no rows and no error would read as "nothing to report"
        why = f"no interface kept by profile {profile.profile} ({len(rows)} rows walked)"
        return [_interface_error(target.device, why)]
    return readings


def _interface_error(device: str, error: str) -> InterfaceReading:
    return InterfaceReading(device=device, port=ALL_PORTS, error=error[:_MAX_ERROR])


def error_readings(device: str, profile: AnyProfile, error: str) -> list[DeviceReading]:
    """What a device that could not be polled reports, in the kind its profile gives."""
    if isinstance(profile, InterfaceProfile):
        return [_interface_error(device, error)]
    return [PowerReading(device=device, profile=profile.profile, error=error[:_MAX_ERROR])]


async def poll(
    target: SnmpTarget, *, transport: SnmpTransport, profile: AnyProfile
) -> list[DeviceReading]:
    """Poll one device with either kind of profile."""
    if isinstance(profile, InterfaceProfile):
        return list(await collect_interfaces(target, transport=transport, profile=profile))
    return [await collect(target, transport=transport, profile=profile)]


@lru_cache(maxsize=64)
def _profile(name: str) -> AnyProfile:
    # Read once per process: the config check at start already loaded every profile,
    # and re-parsing YAML for every device every cycle is CPU an edge box lacks.
    return load_profile_by_name(name)


async def poll_device(
    device: DeviceConfig, config: SiteConfig, transports: Transports
) -> list[DeviceReading]:
    """The :data:`agent.probes.DevicePoller` for SNMP devices (v2c and v3)."""
    assert device.profile is not None and device.credentials is not None  # config checked
    credentials = config.snmp_credentials[device.credentials]
    profile = _profile(device.profile)
    v3, community = None, ""
    try:
        if isinstance(credentials, SnmpV3Credentials):
            v3 = credentials  # its keys are revealed by SnmpTarget.auth(), at each poll
        else:
            community = credentials.community.reveal()
    except ValueError as exc:  # a missing env variable or file: this device only
        return error_readings(device.device, profile, f"credentials {device.credentials}: {exc}")
    target = SnmpTarget(
        device=device.device,
        host=device.host,
        port=device.port_or_default,
        community=SecretStr(community),
        v3=v3,
        profile=device.profile,
        timeout_s=device.timeout_s,
        retries=device.retries,
    )
    return await poll(target, transport=transports.snmp(), profile=profile)
