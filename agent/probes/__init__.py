"""Probes: one module per kind of reading, each a function of the same shape.

Device probes (``snmp``, ``nut``, ``modbus``) share one signature,
:data:`DevicePoller`: given the device's config, the site config and the
transports, return that device's readings — an error reading for that device
when it fails, never an exception. ``agent.cycle.DEVICE_POLLERS`` lists them
by protocol, explicitly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psutil as _psutil

from contract.wire import InterfaceReading, PowerReading

if TYPE_CHECKING:
    from agent.config import DeviceConfig, SiteConfig

DeviceReading = PowerReading | InterfaceReading


@dataclass
class Transports:
    """The world the probes touch, injectable for tests; clients are made on first use."""

    snmp_transport: Any = None
    connect: Any = None  # links.Connector; None means a real TCP connect
    psutil: ModuleType | Any = field(default=_psutil)
    extra: dict[str, Any] = field(default_factory=dict)  # per-protocol clients, by name

    def snmp(self) -> Any:
        if self.snmp_transport is None:  # created lazily: pysnmp's engine needs a running loop
            from agent.snmp_transport import SnmpV2cTransport

            self.snmp_transport = SnmpV2cTransport()
        return self.snmp_transport


DevicePoller = Callable[["DeviceConfig", "SiteConfig", Transports], Awaitable[list[DeviceReading]]]
