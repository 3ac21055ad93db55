"""Loops that cannot die: each step guarded, each kind of error logged once and counted.

Every long-lived thread of the collector runs a :class:`Loop` (the paho network
thread's callbacks, the writer, the staleness sweeper, the HTTP handlers). Work
runs as a *step* of its loop (``with loop.step():`` or ``loop.attempt(fn)``): an
exception in a step is caught, logged with its traceback the first time that
kind (loop, exception type, where it was raised) is seen — never a flood —,
counted in ``kienco_thread_errors_total{thread}``, and the loop goes on. A
step inside a step counts under the outer one's loop (``Supervisor.attempt``),
so shared code (judging a site) needs no loop of its own.

Each loop beats a heartbeat. ``Supervisor.health()`` says which loops are dead
(their thread is gone) or stuck (a periodic loop that has not beaten for its
``stuck_after_s``, or a step busy for that long): /healthz answers 503 with it,
and /metrics exposes each loop's liveness, heartbeat age and error count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector as MetricsCollector

from plumbing.untrusted import one_line

__all__ = ["Loop", "LoopHealth", "Supervisor"]

P = ParamSpec("P")
T = TypeVar("T")

_MAX_KINDS = 1000  # distinct error kinds remembered for "log once"; code locations bound them


@dataclass(frozen=True, slots=True)
class LoopHealth:
    """One loop as /healthz and /metrics show it."""

    name: str
    alive: bool
    stuck: bool  # a periodic loop when silent too long, an event-driven one when a step hangs
    heartbeat_age_s: float
    busy_s: float  # the longest step in progress, 0 when idle
    errors: int
    last_error: str | None
    periodic: bool = False

    @property
    def ok(self) -> bool:
        return self.alive and not self.stuck


class Loop:
    """One long-lived loop: its steps are guarded, its heartbeat and errors kept."""

    def __init__(
        self,
        supervisor: Supervisor,
        name: str,
        *,
        every_s: float | None,
        stuck_after_s: float | None,
        alive: Callable[[], bool] | None,
    ) -> None:
        self.supervisor = supervisor
        self.name = name
        self.every_s = every_s  # a periodic loop beats at least this often when well
        self.stuck_after_s = stuck_after_s
        self.alive: Callable[[], bool] = alive or (lambda: True)
        self.errors = 0
        self.last_error: str | None = None
        self._last_beat = supervisor.clock()
        self._busy: dict[int, float] = {}  # thread ident -> start of its outermost step
        self._lock = threading.Lock()

    def beat(self) -> None:
        self._last_beat = self.supervisor.clock()

    @contextmanager
    def step(self) -> Iterator[None]:
        """Run the body as one step: an exception is recorded here and goes no further."""
        local = self.supervisor._local
        outer: Loop | None = getattr(local, "loop", None)
        ident = threading.get_ident()
        outermost = outer is not self
        if outermost:
            local.loop = self
            with self._lock:
                self._busy[ident] = self.supervisor.clock()
        try:
            yield
        except Exception as exc:
            self.supervisor.record(self, exc)
        finally:
            if outermost:
                local.loop = outer
                with self._lock:
                    self._busy.pop(ident, None)
                self.beat()

    def attempt(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``fn(*args, **kwargs)`` as a step; ``None`` when it raised (recorded)."""
        with self.step():
            return fn(*args, **kwargs)
        return None

    def guarded(self, fn: Callable[P, None]) -> Callable[P, None]:
        """``fn`` wrapped to run as a step (for callbacks others call: paho's)."""

        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            self.attempt(fn, *args, **kwargs)

        return run

    def health(self, now: float) -> LoopHealth:
        with self._lock:
            busy_s = max((now - since for since in self._busy.values()), default=0.0)
        age = max(0.0, now - self._last_beat)
        stuck = False
        if self.stuck_after_s is not None:
            # A periodic loop beats inside long steps too: only its silence counts. An
            # event-driven one is idle between events: only a step that hangs counts.
            waited = age if self.every_s is not None else busy_s
            stuck = waited > self.stuck_after_s
        return LoopHealth(
            self.name,
            self.alive(),
            stuck,
            age,
            busy_s,
            self.errors,
            self.last_error,
            periodic=self.every_s is not None,
        )


class Supervisor:
    """The collector's loops, their error counter and health."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.log = logger
        self.loops: dict[str, Loop] = {}
        self.stopping = threading.Event()
        self._local = threading.local()
        self._seen: set[tuple[str, str, str, int]] = set()
        self._seen_lock = threading.Lock()
        self.thread_errors = Counter(
            "kienco_thread_errors",
            "Errors a collector loop caught and carried on from",
            ["thread"],
            registry=registry,
        )
        registry.register(_LoopMetrics(self))
        self._other = self.loop("other", every_s=None, stuck_after_s=None)

    def loop(
        self,
        name: str,
        *,
        every_s: float | None,
        stuck_after_s: float | None,
        alive: Callable[[], bool] | None = None,
    ) -> Loop:
        loop = Loop(self, name, every_s=every_s, stuck_after_s=stuck_after_s, alive=alive)
        self.loops[name] = loop
        self.thread_errors.labels(name)
        return loop

    def spawn(
        self,
        loop: Loop,
        body: Callable[[], bool],
        *,
        daemon: bool,
        pause_after_error_s: float = 1.0,
    ) -> threading.Thread:
        """A thread that runs ``body`` as a step of ``loop`` until it returns False.

        A pass that raised is followed by a short pause, so a failure that repeats
        (a full disk) does not spin a core; errors its own steps caught (one site of
        a sweep) do not slow it.
        """

        def run() -> None:
            try:
                while True:
                    raised, going_on = True, True
                    with loop.step():
                        going_on = body()
                        raised = False
                    if not going_on:
                        return
                    if raised and self.stopping.wait(pause_after_error_s):
                        return
            finally:
                if not self.stopping.is_set():
                    self.log.critical("thread %s ended while the collector runs", loop.name)

        thread = threading.Thread(target=run, name=loop.name, daemon=daemon)
        loop.alive = thread.is_alive
        return thread

    def current(self) -> Loop:
        """The loop whose step the calling thread is in (``other`` outside any)."""
        loop: Loop | None = getattr(self._local, "loop", None)
        return loop or self._other

    def attempt(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``fn`` as a step of the calling thread's current loop; ``None`` when it raised."""
        return self.current().attempt(fn, *args, **kwargs)

    def record(self, loop: Loop, exc: BaseException) -> None:
        """Count an error of ``loop``; log it with its traceback the first time of its kind."""
        last = one_line(f"{type(exc).__name__}: {exc}")[:500]  # may quote a message's text
        with loop._lock:  # several API threads share one loop
            loop.errors += 1
            loop.last_error = last
        self.thread_errors.labels(loop.name).inc()
        if self.first_of_kind(loop.name, exc):
            self.log.error(
                "%s: %s (logged once for this kind of error; every one is counted in "
                'kienco_thread_errors_total{thread="%s"}); carrying on',
                loop.name,
                last,
                loop.name,
                exc_info=exc,
            )
        else:
            self.log.debug("%s: %s (again)", loop.name, last)

    def first_of_kind(self, where: str, exc: BaseException) -> bool:
        """True the first time an error of this type, raised at this place, is seen."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        origin = ("", 0) if tb is None else (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        kind = (where, type(exc).__qualname__, *origin)
        with self._seen_lock:
            if kind in self._seen:
                return False
            if len(self._seen) < _MAX_KINDS:
                self._seen.add(kind)
            return True

    def health(self) -> list[LoopHealth]:
        now = self.clock()
        return [loop.health(now) for loop in self.loops.values() if loop is not self._other]


class _LoopMetrics(MetricsCollector):
    """Liveness and heartbeat age of every loop, read at scrape time."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        alive = GaugeMetricFamily(
            "kienco_thread_alive",
            "1 while the loop's thread runs and is not stuck",
            labels=["thread"],
        )
        stuck = GaugeMetricFamily(
            "kienco_thread_stuck",
            "1 when the loop stopped beating or one step hangs",
            labels=["thread"],
        )
        age = GaugeMetricFamily(
            "kienco_thread_heartbeat_age_seconds",
            "Seconds since the loop last finished a step or beat",
            labels=["thread"],
        )
        for health in self.supervisor.health():
            alive.add_metric([health.name], 1.0 if health.ok else 0.0)
            stuck.add_metric([health.name], 1.0 if health.stuck else 0.0)
            age.add_metric([health.name], health.heartbeat_age_s)
        return [alive, stuck, age]
