"""One poll cycle: every probe of the site, concurrently, into one report.

A probe that fails gives an error reading for its own target; the others carry on.
"""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime

from agent.config import DeviceConfig, PathConfig, SiteConfig
from agent.fuel import burn_at_load
from agent.probes import DevicePoller, DeviceReading, Transports, host, links
from contract.wire import InterfaceReading, LinkReading, PowerReading, Report, RoomReading

Probes = Transports  # the name the agent runner and tests use


def _lazy(module: str) -> DevicePoller:
    """A probe imported on first use: pymodbus, httpx and pysnmp cost an edge box
    10–20 MB each, and most sites use one or two protocols."""

    async def poll(
        device: DeviceConfig, config: SiteConfig, probes: Transports
    ) -> list[DeviceReading]:
        poller: DevicePoller = importlib.import_module(module).poll_device
        return await poller(device, config, probes)

    return poll


DEVICE_POLLERS: dict[str, DevicePoller] = {
    "snmp": _lazy("agent.probes.snmp"),
    "nut": _lazy("agent.probes.nut"),
    "modbus": _lazy("agent.probes.modbus"),
}
"""Device probes by protocol (the ``protocol`` key of a device in the site config)."""


async def poll_once(
    config: SiteConfig,
    probes: Transports,
    *,
    seq: int,
    now: datetime,
    outbox: int | None = None,
    outbox_depth: int | None = None,
    outbox_dropped_total: int | None = None,
    outbox_resets_total: int | None = None,
) -> Report:
    """Measure the site once. ``now`` is when the readings were taken (UTC); ``outbox``:
    the id of the outbox that numbered ``seq`` (``Report.outbox``)."""
    # Paths first, on their own: the kernel times each handshake (TCP_INFO), but where it
    # cannot, the RTT is a clock on this event loop, and decoding SNMP answers (CPU-bound,
    # ~0.4 s to build pysnmp's engine) would inflate it. Devices and the room go after.
    link_results = await asyncio.gather(*(_poll_path(path, probes) for path in config.paths))
    device_results, room_reading = await asyncio.gather(
        asyncio.gather(*(_poll_device(config, device, probes) for device in config.devices)),
        _poll_room(config, probes),
    )
    device_readings = [r for rs in device_results for r in rs]
    link_readings: list[LinkReading] = list(link_results)
    host_reading = host.collect(
        disk_path=config.disk_path,
        outbox_depth=outbox_depth,
        outbox_dropped_total=outbox_dropped_total,
        outbox_resets_total=outbox_resets_total,
        psutil=probes.psutil,
    )
    return Report(
        site=config.site,
        province=config.province,
        seq=seq,
        outbox=outbox,
        taken_at=now,
        interval_s=config.interval_s,
        power=tuple(r for r in device_readings if isinstance(r, PowerReading)),
        interfaces=tuple(r for r in device_readings if isinstance(r, InterfaceReading)),
        links=tuple(link_readings),
        host=host_reading,
        room=room_reading,
    )


async def _poll_room(config: SiteConfig, probes: Transports) -> RoomReading | None:
    if config.room is None:
        return None
    try:
        from agent.probes import room  # httpx: only for meeting points

        return await room.collect(config.room, http=probes.extra.get("http"), psutil=probes.psutil)
    except Exception as exc:  # a probe bug: say it in the room reading, keep the rest
        return RoomReading(error=f"probe failed: {exc}"[:500])


async def _poll_path(path: PathConfig, probes: Transports) -> LinkReading:
    try:
        if probes.connect is None:
            return await links.collect(path)
        return await links.collect(path, connect=probes.connect)
    except Exception as exc:  # a probe bug: report it against this path, keep the others
        return LinkReading(path=path.path, media=path.media, error=f"probe failed: {exc}"[:500])


async def _poll_device(
    config: SiteConfig, device: DeviceConfig, probes: Transports
) -> list[DeviceReading]:
    poller = DEVICE_POLLERS.get(device.protocol)
    try:
        if poller is None:
            raise ValueError(f"no probe for protocol {device.protocol!r}")
        readings = await poller(device, config, probes)
    except Exception as exc:  # a probe bug or a missing secret: this device only
        readings = [
            PowerReading(
                device=device.device, profile=device.profile, error=f"probe failed: {exc}"[:500]
            )
        ]
    return [_with_site_knowledge(r, device) for r in readings]


def _with_site_knowledge(reading: DeviceReading, device: DeviceConfig) -> DeviceReading:
    """Fill what the site config knows and the device does not say: a genset's burn rate
    (fixed, or the full-load rate at the current load) and its fuel in litres.

    The load scales the rate only while the engine runs and carries it: a stopped or
    unloaded genset reads 0 % (the idle rate, under a fifth of full load), and its hours
    "if mains failed now" would be five times what it has once it carries the site. The
    load it will carry is not known then: the full-load rate, the shortest hours, never
    a guess up (as rules/autonomy.py takes an unreported load for a battery)."""
    if not isinstance(reading, PowerReading) or reading.error is not None:
        return reading
    update: dict[str, float] = {}
    if reading.fuel_burn_l_per_h is None:
        full, fixed, load = (
            device.fuel_burn_full_load_l_per_h,
            device.fuel_burn_l_per_h,
            reading.load_pct,
        )
        # a load read means it carries it, unless its controller says it is stopped
        carrying = load is not None and load > 0 and reading.generator_running is not False
        if full is not None and carrying and load is not None:
            update["fuel_burn_l_per_h"] = burn_at_load(full, load)
        elif fixed is not None:
            update["fuel_burn_l_per_h"] = fixed
        elif full is not None and load is not None:  # a load to come, not known
            update["fuel_burn_l_per_h"] = full
    if reading.fuel_l is None and reading.fuel_pct is not None and device.tank_l is not None:
        update["fuel_l"] = device.tank_l * reading.fuel_pct / 100.0
    return reading.model_copy(update=update) if update else reading
