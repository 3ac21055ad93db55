"""The host probe with psutil injected: what a box reports; an error reading when psutil fails."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil

from agent.probes import host


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
    )
    assert (reading.cpu_pct, reading.memory_pct, reading.disk_pct) == (12.5, 41.0, 73.2)
    assert reading.temperature_c == 61.5
    assert reading.uptime_s == 3_600.0
    assert (reading.outbox_depth, reading.outbox_dropped_total) == (7, 2)
    assert reading.outbox_resets_total == 1
    assert reading.error is None


def test_no_sensors_is_unknown_not_zero() -> None:
    assert host.collect(psutil=FakePsutil(sensors=None)).temperature_c is None
    assert host.collect(psutil=FakePsutil(sensors={})).temperature_c is None


def test_a_failing_disk_gives_an_error_reading_that_still_carries_the_outbox() -> None:
    reading = host.collect(psutil=FakePsutil(fail=True), outbox_depth=3, outbox_resets_total=2)
    assert reading.error is not None and "Input/output error" in reading.error
    assert reading.cpu_pct is None and reading.outbox_depth == 3
    assert reading.outbox_resets_total == 2


def test_the_real_psutil_on_this_machine() -> None:
    reading = host.collect(psutil=psutil)
    assert reading.error is None
    assert reading.memory_pct is not None and 0 < reading.memory_pct <= 100
    assert reading.uptime_s is not None and reading.uptime_s > 0
