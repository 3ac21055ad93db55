"""NUT probe: read a UPS that Network UPS Tools' ``upsd`` serves and map it to the wire.

USB UPSes at small sites and meeting rooms are managed by NUT; its variable
names are a standard (NUT ``docs/nut-names.txt``), so the mapping is a table
here rather than a profile per model. A UPS that cannot be read gives a
reading with ``error`` set, never an exception.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from agent.config import DeviceConfig, SiteConfig
from agent.nut_client import NutConnectionError, NutError, read_vars
from agent.probes import DeviceReading, Transports
from contract.wire import PowerReading

__all__ = ["NUMBERS", "PROFILE", "decode_vars", "poll_device"]

PROFILE = "nut"
_MAX_ERROR = 500  # PowerReading.error's limit

Fetch = Callable[..., Awaitable[dict[str, str]]]
"""``fetch(host, port, ups, *, timeout_s) -> variables``; ``Transports.extra["nut"]`` swaps it."""

NUMBERS: dict[str, str] = {
    "battery.charge": "battery_charge_pct",
    "battery.voltage": "battery_voltage_v",
    "battery.capacity": "battery_capacity_ah",
    "input.voltage": "input_v",
    "output.voltage": "output_v",
    "ups.load": "load_pct",
    "ups.realpower": "load_w",
}
"""NUT variable -> PowerReading field, for variables whose unit already is the wire's."""

# The battery's own sensor first; many small UPSes only have the one on the board.
_TEMPERATURES = ("battery.temperature", "ups.temperature")
# battery.runtime stuck at the 16-bit cap is not a runtime (NUT issues 1740, 731, 983, 2765).
_RUNTIME_CAP = 65535.0


def _number(variables: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(variables[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _runtime(variables: Mapping[str, str], on_battery: bool | None) -> float | None:
    """battery.runtime in seconds, or None when it is one of the known bogus values."""
    runtime = _number(variables, "battery.runtime")
    if runtime is None or runtime < 0 or runtime == _RUNTIME_CAP:
        return None
    # 0 on battery means dark now; 0 on mains is a UPS that does not estimate.
    if runtime == 0 and on_battery is not True:
        return None
    return runtime


def _alarms(flags: set[str], text: str | None) -> int | None:
    """How many alarms are active: ups.alarm's sentences, else the ALARM status flag.

    Drivers join alarm texts with spaces, newer ones wrap each in brackets
    ("[Replace battery!] [Overheat]"), older ones end each with "!". NUT sets
    the ALARM flag whenever ups.alarm is set, so neither present means none.
    """
    text = (text or "").strip()
    if text == "[N/A]":
        return None
    if text:
        bracketed = re.findall(r"\[[^\]]*\]", text)
        if bracketed:
            return len(bracketed)
        return max(1, len([s for s in text.split("!") if s.strip()]))
    if not flags or flags == {"WAIT"}:
        return None  # no status yet: upsd has not heard from the driver
    return 1 if "ALARM" in flags else 0


def decode_vars(device_id: str, variables: Mapping[str, str]) -> PowerReading:
    """Turn one ``LIST VAR`` answer into a PowerReading. Pure: no I/O, no clock."""
    flags = set(variables.get("ups.status", "").split())
    # OL/OB describe the input line only (NUT docs/new-drivers.txt): OB wins if both show.
    on_battery = True if "OB" in flags else (False if "OL" in flags else None)
    fields: dict[str, Any] = {
        name: _number(variables, var) for var, name in NUMBERS.items() if var in variables
    }
    fields["on_battery"] = on_battery
    fields["mains_present"] = None if on_battery is None else not on_battery
    if "LB" in flags:
        fields["battery_status"] = "low"
    elif on_battery is not None:
        fields["battery_status"] = "normal"
    fields["battery_runtime_s"] = _runtime(variables, on_battery)
    fields["battery_temperature_c"] = next(
        (t for t in (_number(variables, v) for v in _TEMPERATURES) if t is not None), None
    )
    fields["alarms_count"] = _alarms(flags, variables.get("ups.alarm"))
    base = {"device": device_id, "profile": PROFILE}
    try:
        return PowerReading.model_validate({**base, **fields})
    except ValidationError as exc:
        # A value the wire refuses as absurd (load 900 %) is unknown, not a failed UPS.
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        kept = {k: (None if k in bad else v) for k, v in fields.items()}
        return PowerReading.model_validate({**base, **kept})


def _failed(device: DeviceConfig, reason: str) -> list[DeviceReading]:
    return [PowerReading(device=device.device, profile=PROFILE, error=reason[:_MAX_ERROR])]


async def poll_device(
    device: DeviceConfig, config: SiteConfig, transports: Transports
) -> list[DeviceReading]:
    """The :data:`agent.probes.DevicePoller` for UPSes behind NUT's upsd."""
    assert device.ups is not None  # the config requires it for protocol "nut"
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
        except NutError as exc:
            return _failed(device, f"ups {ups!r}: {exc}")  # upsd answered; asking again won't help
        else:
            return [decode_vars(device.device, variables)]
    return _failed(device, f"ups {ups!r}: {reason}")
