"""The host probe with psutil and the kernel clock injected: what a box reports; an error
reading when psutil fails; the clock fields null, never an error, when the clock cannot be
read."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil

from agent.probes import host, kernel_clock
from agent.probes.kernel_clock import KernelClock
from contract.wire import HostReading


class FakePsutil:
    def __init__(self, *, sensors: dict[str, list[Any]] | None = None, fail: bool = False) -> None:
        self._sensors = sensors
        self._fail = fail
        if sensors is not None:
            self.sensors_temperatures = lambda: self._sensors

    def cpu_percent(self, interval: float | None = None) -> float:
        return 12.5

    def virtual_memory(self) -> Any:
        return SimpleNamespace(percent=41.0)

    def disk_usage(self, path: str) -> Any:
        if self._fail:
            raise OSError(5, "Input/output error")
        return SimpleNamespace(percent=73.2)

    def boot_time(self) -> float:
        return 1_000.0


def _sensor(current: float | None) -> Any:
    return SimpleNamespace(current=current)


SYNCED = KernelClock(synced=True, offset_ms=-0.4, max_error_ms=35.0)


def test_reports_health_the_hottest_plausible_sensor_and_the_outbox() -> None:
    fake = FakePsutil(
        sensors={"coretemp": [_sensor(48.0), _sensor(61.5)], "bad": [_sensor(-273.0)]}
    )
    reading = host.collect(
        disk_path=Path("/"),
        outbox_depth=7,
        outbox_dropped_total=2,
        outbox_resets_total=1,
        psutil=fake,
        clock=lambda: 4_600.0,
        read_clock=lambda: SYNCED,
    )
    assert (reading.cpu_pct, reading.memory_pct, reading.disk_pct) == (12.5, 41.0, 73.2)
    assert reading.temperature_c == 61.5
    assert reading.uptime_s == 3_600.0
    assert (reading.outbox_depth, reading.outbox_dropped_total) == (7, 2)
    assert reading.outbox_resets_total == 1
    assert (reading.clock_synced, reading.clock_offset_ms, reading.clock_max_error_ms) == (
        True,
        -0.4,
        35.0,
    )
    assert reading.error is None


def test_no_sensors_is_unknown_not_zero() -> None:
    assert host.collect(psutil=FakePsutil(sensors=None)).temperature_c is None
    assert host.collect(psutil=FakePsutil(sensors={})).temperature_c is None


def test_a_failing_disk_gives_an_error_reading_that_still_carries_the_outbox_and_clock() -> None:
    reading = host.collect(
        psutil=FakePsutil(fail=True),
        outbox_depth=3,
        outbox_resets_total=2,
        read_clock=lambda: KernelClock(synced=False),
    )
    assert reading.error is not None and "Input/output error" in reading.error
    assert reading.cpu_pct is None and reading.outbox_depth == 3
    assert reading.outbox_resets_total == 2
    assert reading.clock_synced is False and reading.clock_offset_ms is None


def test_a_clock_that_cannot_be_read_leaves_only_the_clock_fields_null() -> None:
    def refused() -> kernel_clock.Timex:
        raise PermissionError(1, "Operation not permitted")

    reading = host.collect(psutil=FakePsutil(), read_clock=lambda: kernel_clock.read(call=refused))
    assert reading.error is None and reading.memory_pct == 41.0
    assert (reading.clock_synced, reading.clock_offset_ms, reading.clock_max_error_ms) == (
        None,
        None,
        None,
    )
    on_a_mac = host.collect(
        psutil=FakePsutil(), read_clock=lambda: kernel_clock.read(platform="darwin")
    )
    assert on_a_mac.error is None and on_a_mac.clock_synced is None


def test_the_real_psutil_and_kernel_clock_on_this_machine() -> None:
    reading = host.collect(psutil=psutil)
    assert reading.error is None
    assert reading.memory_pct is not None and 0 < reading.memory_pct <= 100
    assert reading.uptime_s is not None and reading.uptime_s > 0
    if sys.platform.startswith("linux"):
        assert isinstance(reading.clock_synced, bool)
        # What a report carries: the fields survive the wire.
        again = HostReading.model_validate_json(reading.model_dump_json())
        assert again.clock_synced is reading.clock_synced
        assert again.clock_max_error_ms == reading.clock_max_error_ms
