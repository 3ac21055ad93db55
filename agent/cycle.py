"""One poll cycle: every probe of the site, concurrently, into one report.

A probe that fails gives an error reading for its own target; the others carry on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

import psutil as _psutil

from agent.config import DeviceConfig, SiteConfig
from agent.probes import host, links, snmp
from agent.profiles import load_profile_by_name
from agent.snmp_transport import SnmpV2cTransport
from agent.wire import LinkReading, PowerReading, Report


@dataclass
class Probes:
    """The world the probes touch, injectable for tests."""

    snmp_transport: Any = None
    connect: links.Connector = links.tcp_connect
    psutil: ModuleType | Any = field(default=_psutil)

    @classmethod
    def default(cls) -> Probes:
        return cls()

    def snmp(self) -> Any:
        if self.snmp_transport is None:  # created lazily: pysnmp's engine needs a running loop
            self.snmp_transport = SnmpV2cTransport()
        return self.snmp_transport


async def poll_once(
    config: SiteConfig,
    probes: Probes,
    *,
    seq: int,
    now: datetime,
    outbox_depth: int | None = None,
    outbox_dropped_total: int | None = None,
) -> Report:
    """Measure the site once. ``now`` is when the readings were taken (UTC)."""
    power_tasks = [_poll_device(config, device, probes) for device in config.devices]
    link_tasks = [_poll_path(path, probes) for path in config.paths]
    power: list[PowerReading] = list(await asyncio.gather(*power_tasks))
    link_readings: list[LinkReading] = list(await asyncio.gather(*link_tasks))
    host_reading = host.collect(
        disk_path=config.disk_path,
        outbox_depth=outbox_depth,
        outbox_dropped_total=outbox_dropped_total,
        psutil=probes.psutil,
    )
    return Report(
        site=config.site,
        province=config.province,
        seq=seq,
        taken_at=now,
        interval_s=config.interval_s,
        power=tuple(power),
        links=tuple(link_readings),
        host=host_reading,
    )


async def _poll_path(path: Any, probes: Probes) -> LinkReading:
    try:
        return await links.collect(path, connect=probes.connect)
    except Exception as exc:  # a probe bug: report it against this path, keep the others
        return LinkReading(path=path.path, media=path.media, error=f"probe failed: {exc}"[:500])


async def _poll_device(config: SiteConfig, device: DeviceConfig, probes: Probes) -> PowerReading:
    try:
        credentials = config.snmp_credentials[device.credentials]
        target = snmp.SnmpTarget(
            device=device.device,
            host=device.host,
            port=device.port,
            community=credentials.community.reveal(),
            profile=device.profile,
            timeout_s=device.timeout_s,
            retries=device.retries,
        )
        profile = load_profile_by_name(device.profile)
        return await snmp.collect(target, transport=probes.snmp(), profile=profile)
    except Exception as exc:  # a probe bug or a missing secret: this device only
        return PowerReading(
            device=device.device, profile=device.profile, error=f"probe failed: {exc}"[:500]
        )
