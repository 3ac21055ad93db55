"""The supervised loop: a step that raises is logged once per kind, counted, and the loop goes
on; a dead or silent loop shows in its health and in /metrics."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collector.supervision import Supervisor

log = logging.getLogger("test.supervision")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _boom(kind: type[Exception] = ValueError) -> None:
    raise kind("line break in a string field")


def _errors(registry: CollectorRegistry, thread: str) -> float:
    value = registry.get_sample_value("kienco_thread_errors_total", {"thread": thread})
    assert value is not None
    return value


def test_a_raising_step_is_counted_logged_once_per_kind_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry, logger=log)
    loop = supervisor.loop("sweeper", every_s=1.0, stuck_after_s=10.0)
    caplog.set_level(logging.DEBUG, logger=log.name)

    done = [loop.attempt(_boom) for _ in range(5)]
    assert done == [None] * 5
    assert loop.attempt(lambda: 42) == 42  # and it carries on
    loop.attempt(_boom, KeyError)  # another kind: logged too

    assert _errors(registry, "sweeper") == 6 and loop.errors == 6
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 2, [r.getMessage() for r in logged]
    assert "ValueError: line break" in logged[0].getMessage() and logged[0].exc_info
    assert "KeyError" in logged[1].getMessage()
    assert loop.last_error == "KeyError: 'line break in a string field'"


def test_a_step_inside_a_step_counts_under_the_thread_s_loop() -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry, logger=log)
    api = supervisor.loop("api", every_s=None, stuck_after_s=None)
    results: list[int | None] = []

    def handler() -> None:
        results.append(supervisor.attempt(_boom))  # shared code: no loop of its own
        results.append(supervisor.attempt(lambda: 1))

    api.attempt(handler)
    assert results == [None, 1]
    assert _errors(registry, "api") == 1 and api.errors == 1
    supervisor.attempt(_boom)  # outside any loop: "other", never lost
    assert supervisor.loops["other"].errors == 1


# The dying thread is the point of the test: pytest's warning about it is expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_spawned_loop_survives_errors_and_a_dead_one_shows() -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry, logger=log)
    worker = supervisor.loop("worker", every_s=0.01, stuck_after_s=5.0)
    passes = 0

    def body() -> bool:
        nonlocal passes
        passes += 1
        if passes <= 3:
            raise OSError("disk full")
        return passes < 5

    thread = supervisor.spawn(worker, body, daemon=True, pause_after_error_s=0.01)
    thread.start()
    thread.join(5)
    assert passes == 5 and worker.errors == 3  # three failed passes, then two good ones

    dying = supervisor.loop("dying", every_s=0.01, stuck_after_s=5.0)

    def fatal() -> bool:
        raise SystemExit  # not an Exception: a step cannot catch it, the thread ends

    ended = supervisor.spawn(dying, fatal, daemon=True)
    ended.start()
    ended.join(5)
    health = {h.name: h for h in supervisor.health()}
    assert not health["dying"].alive and not health["dying"].ok
    text = generate_latest(registry).decode()
    assert 'kienco_thread_alive{thread="dying"} 0.0' in text
    assert 'kienco_thread_errors_total{thread="worker"} 3.0' in text


def test_a_silent_periodic_loop_and_a_hung_step_are_stuck() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    supervisor = Supervisor(registry, logger=log, clock=clock)
    periodic = supervisor.loop("writer", every_s=1.0, stuck_after_s=10.0)
    events = supervisor.loop("mqtt", every_s=None, stuck_after_s=30.0)

    clock.now += 9
    assert not {h.name: h for h in supervisor.health()}["writer"].stuck
    periodic.beat()
    clock.now += 10.5
    writer = {h.name: h for h in supervisor.health()}["writer"]
    assert writer.stuck and writer.heartbeat_age_s == pytest.approx(10.5)
    # An event-driven loop is idle between events: silence alone is not stuck...
    assert not {h.name: h for h in supervisor.health()}["mqtt"].stuck

    # ... but a step that hangs is.
    entered, release = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(5)

    hung = threading.Thread(target=events.attempt, args=(hang,))
    hung.start()
    assert entered.wait(5)
    clock.now += 31
    mqtt = {h.name: h for h in supervisor.health()}["mqtt"]
    assert mqtt.stuck and mqtt.busy_s == pytest.approx(31)
    assert 'kienco_thread_stuck{thread="mqtt"} 1.0' in generate_latest(registry).decode()
    release.set()
    hung.join(5)
    assert not {h.name: h for h in supervisor.health()}["mqtt"].stuck


def test_log_once_holds_across_threads(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry, logger=log)
    loop = supervisor.loop("api", every_s=None, stuck_after_s=None)
    caplog.set_level(logging.ERROR, logger=log.name)
    threads = [threading.Thread(target=loop.attempt, args=(_boom,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    time.sleep(0.01)
    assert loop.errors == 20
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
