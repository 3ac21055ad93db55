"""NUT probe: read a UPS that Network UPS Tools' ``upsd`` serves.

Only the talking to upsd is here (``LIST VAR`` through :mod:`agent.nut_client`, with
retries and a timeout); what the variables mean is the device's NUT profile
(:mod:`agent.nut_profile`, ``firmware-configs/profiles/<name>.nut.yaml``; ``nut``
when the device names none). A UPS that cannot be read gives a reading with
``error`` set, never an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent.config import DeviceConfig, SiteConfig
from agent.nut_client import NutConnectionError, NutError, read_vars
from agent.nut_profile import DEFAULT_PROFILE, decode_vars, shipped_nut_profile
from agent.probes import DeviceReading, Transports
from contract.wire import PowerReading

__all__ = ["poll_device"]

_MAX_ERROR = 500  # PowerReading.error's limit

Fetch = Callable[..., Awaitable[dict[str, str]]]
"""``fetch(host, port, ups, *, timeout_s) -> variables``; ``Transports.extra["nut"]`` swaps it."""


def _failed(device: DeviceConfig, profile: str, reason: str) -> list[DeviceReading]:
    return [PowerReading(device=device.device, profile=profile, error=reason[:_MAX_ERROR])]


async def poll_device(
    device: DeviceConfig, config: SiteConfig, transports: Transports
) -> list[DeviceReading]:
    """The :data:`agent.probes.DevicePoller` for UPSes behind NUT's upsd."""
    assert device.ups is not None  # the config requires it for protocol "nut"
    # Checked when the site config was loaded; the shipped file is read once per process.
    profile = shipped_nut_profile(device.profile or DEFAULT_PROFILE)
    fetch: Fetch = transports.extra.get("nut", read_vars)
    host, port, ups = device.host, device.port_or_default, device.ups
    reason = "not polled"
    for _attempt in range(device.retries + 1):
        try:
            async with asyncio.timeout(device.timeout_s):
                variables = await fetch(host, port, ups, timeout_s=device.timeout_s)
        except TimeoutError:
            reason = f"upsd {host}:{port}: no answer within {device.timeout_s:g} s"
        except NutConnectionError as exc:
            reason = str(exc)  # the network may come back: try again
        except NutError as exc:  # upsd answered; asking again won't help
            return _failed(device, profile.profile, f"ups {ups!r}: {exc}")
        else:
            return [decode_vars(device.device, variables, profile)]
    return _failed(device, profile.profile, f"ups {ups!r}: {reason}")
