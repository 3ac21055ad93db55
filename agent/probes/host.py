"""Host probe: the edge box's own health, through psutil, and its clock as the kernel
sees it (both injected for tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil as _psutil

from agent.probes import kernel_clock
from contract.wire import HostReading


def collect(
    *,
    disk_path: Path = Path("/"),
    outbox_depth: int | None = None,
    outbox_dropped_total: int | None = None,
    outbox_resets_total: int | None = None,
    psutil: ModuleType | Any = _psutil,
    clock: Callable[[], float] = time.time,
    read_clock: Callable[[], kernel_clock.KernelClock] = kernel_clock.read,
) -> HostReading:
    """Cpu, memory, disk, temperature, uptime and whether the clock is synchronised; an
    error reading if psutil fails (the clock fields are then still filled: a box whose
    disk fails may be the one whose clock is off). A clock that cannot be read leaves
    only the clock fields null."""
    kernel = read_clock()
    try:
        # interval=None compares with the previous call: no sleep inside a poll cycle.
        cpu = float(psutil.cpu_percent(interval=None))
        memory = float(psutil.virtual_memory().percent)
        disk = float(psutil.disk_usage(str(disk_path)).percent)
        uptime = max(0.0, clock() - float(psutil.boot_time()))
        temperature = _hottest(psutil)
    except (OSError, AttributeError, ValueError) as exc:
        return HostReading(
            error=f"host probe failed: {exc}",
            outbox_depth=outbox_depth,
            outbox_dropped_total=outbox_dropped_total,
            outbox_resets_total=outbox_resets_total,
            clock_synced=kernel.synced,
            clock_offset_ms=kernel.offset_ms,
            clock_max_error_ms=kernel.max_error_ms,
        )
    return HostReading(
        cpu_pct=min(cpu, 100.0),
        memory_pct=memory,
        disk_pct=disk,
        temperature_c=temperature,
        uptime_s=uptime,
        outbox_depth=outbox_depth,
        outbox_dropped_total=outbox_dropped_total,
        outbox_resets_total=outbox_resets_total,
        clock_synced=kernel.synced,
        clock_offset_ms=kernel.offset_ms,
        clock_max_error_ms=kernel.max_error_ms,
    )


def _hottest(psutil: Any) -> float | None:
    """The hottest sensor, or None where the box exposes none (VMs, many ARM boards)."""
    sensors = getattr(psutil, "sensors_temperatures", None)
    if sensors is None:
        return None
    readings = [
        float(entry.current)
        for entries in sensors().values()
        for entry in entries
        if entry.current is not None and -60 <= entry.current <= 150
    ]
    return max(readings) if readings else None
