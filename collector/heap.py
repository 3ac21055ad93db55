"""The collector's heap and CPython's cyclic garbage collector: its pauses, measured and kept short.

A full (generation 2) collection walks every container object the process holds,
with the GIL held throughout: no thread runs meanwhile, so every message that
arrives waits for it. In a collector measured under steady load (1 000 sites every
10 s, benchmarks/verdicts.py), the verdicts that took 100-450 ms instead of 2 ms
were those that arrived during one of these walks, 120-190 ms each over
140 000-220 000 objects, most of them the start's (modules, classes, pydantic's
schemas, the web app, the policy, the inventory) that never become garbage.

``settle`` moves everything alive once the collector has started out of the
collector's reach (``gc.freeze``): from then on a full collection walks only what
was made since, the fleet's state. Frozen objects are still freed by reference
counting when the last reference goes (a restored site's old snapshot, replaced
by its next report, is); only a reference cycle among them would stay.

``keep_settled`` goes on doing it: after every collection, young or full, what
survived it is frozen too, so each object the collector makes is walked at most once,
by the first collection that finds it alive. The fleet's state breaks the rule the
collector's generations are built on (most objects die young): a site's newest
readings, snapshot and verdict, ~50 objects a report, live until the site's next
report, 10-60 s, while young collections come every ~40 reports. Each was walked
alive by a young collection, again by the next middle one, then by a full one, every
walk a cache miss per reference (~0.3-1.5 µs an object, against ~0.04 for a plain
tuple): in the national fleet at 60 s (benchmarks/fleet.py, a 51 700-site shard) the
collections took a sixth of the shard's CPU. Frozen after the first walk, an object
is not walked again, and is freed by reference counting when the site's next report
replaces it. (Freezing the survivors of full collections alone, as this did first,
kept the middle walks and one full walk of each object; before that only the start
was frozen, and a full collection walked every site's state each time the survivors
grew by a quarter: up to 4.5 s with every thread stopped. docs/throughput.md.)

What freezing risks is a reference cycle that is alive when a collection freezes it and
becomes garbage later: the collector never sees it again. The fold, judgement and saving
of reports make none (no closure that calls itself: the SRLG search and the decoder's
model walk did; tests/test_rules_golden.py holds the storm to none); httpx's answers
made one a call (collector/acyclic_http.py breaks it) and paho's callback lookup one a
message (collector/mqtt_client.py ``AcyclicMatcher``); CPython 3.11's asyncio transport
keeps one a connection (gh-106503, fixed in 3.12: ~0.5 kB an HTTP connection open at a
collection), what is left. ``audit`` counts what was leaked that way, and ``kienco
collector run`` logs it after a clean stop (7-8 s more for a national shard of 51 700
sites: a walk of its whole heap; tests/test_heap.py runs a real one under reports,
malformed messages, API reads, the board and scrapes). The process's resident memory
(/metrics) should follow the sites carried, not time. The frozen set's size is not on
/metrics on purpose: ``gc.get_freeze_count`` walks the whole set (3.4 M objects in a
national shard), and a gauge of it, read at every scrape, took a quarter of the shard's
samples (py-spy) before it was removed.

``GcPauses`` times every collection (``gc.callbacks``) for /metrics:
``kienco_gc_pause_seconds`` (a histogram per generation) and
``kienco_gc_pause_max_seconds``, so the pauses are seen where they happen.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from types import FunctionType

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BUCKETS_S", "GcPauses", "Leaked", "audit", "keep_settled", "settle"]

# Upper bounds of the pause histogram, seconds.
BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_GENERATIONS = 3


def settle() -> int:
    """Collect once, then leave every object alive now out of later collections.

    Call it once the process has started (imports done, state restored, servers
    up), never on a path that runs often. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    # At "stop" the collection is over (CPython runs the callbacks after it, under the
    # GIL, with no other collection possible): what survived it is alive now. Freezing
    # moves every generation's list onto the frozen one: a few pointer swaps.
    if phase == "stop":
        gc.freeze()


def keep_settled(on: bool = True) -> None:
    """From now on, freeze what survives each collection (see the module docstring).
    For a process that carries long-lived state (``collector run``); ``on=False`` stops."""
    installed = _freeze_survivors in gc.callbacks
    if on and not installed:
        gc.callbacks.append(_freeze_survivors)
    elif not on and installed:
        gc.callbacks.remove(_freeze_survivors)


@dataclass(frozen=True)
class Leaked:
    """Objects that sat frozen in reference cycles after those had become garbage."""

    by_type: Counter[str]
    size_bytes: int  # the objects' own sizes (sys.getsizeof), not what else they held

    @property
    def count(self) -> int:
        return sum(self.by_type.values())


def _named(thing: object) -> str:
    """Its type; a function by its own name too (the closure that made the cycle)."""
    if isinstance(thing, FunctionType):
        return f"function {thing.__module__}.{thing.__qualname__}"
    return type(thing).__qualname__


def audit() -> Leaked:
    """What freezing leaked: the objects that sat frozen in reference cycles that had
    become garbage, counted by type, and freed now.

    Unfreezes everything and runs a full collection over the whole heap: seconds for
    a national shard, every thread stopped. For the end of a process (``collector run``
    after its clean stop) or a test, never while it serves.
    """
    settled = _freeze_survivors in gc.callbacks
    keep_settled(False)  # else the audit's own collections would freeze what it looks at
    gc.collect()  # the garbage not frozen, which any collection frees, first
    gc.unfreeze()
    saved = gc.get_debug()
    gc.set_debug(saved | gc.DEBUG_SAVEALL)  # keep the garbage to name it
    try:
        gc.collect()
        leaked = Leaked(
            Counter(_named(o) for o in gc.garbage),
            sum(sys.getsizeof(o) for o in gc.garbage),
        )
    finally:
        gc.set_debug(saved)
        gc.garbage.clear()
        gc.collect()  # now freed for real
        keep_settled(settled)
    return leaked


class GcPauses(Collector):
    """Times each garbage collection of the process while installed.

    The callback runs inside the collection, in whichever thread allocated: it
    takes no lock (a thread holding one may be the one collecting) and only adds
    numbers; CPython runs one collection at a time, under the GIL.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._started = 0.0
        self.count = [0] * _GENERATIONS
        self.sum_s = [0.0] * _GENERATIONS
        self.max_s = [0.0] * _GENERATIONS
        self.buckets = [[0] * len(BUCKETS_S) for _ in range(_GENERATIONS)]
        gc.callbacks.append(self._callback)
        self._registry = registry
        if registry is not None:
            registry.register(self)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.record(info["generation"], time.perf_counter() - self._started)

    def record(self, generation: int, seconds: float) -> None:
        """One collection of ``generation`` that lasted ``seconds``."""
        self.count[generation] += 1
        self.sum_s[generation] += seconds
        if seconds > self.max_s[generation]:
            self.max_s[generation] = seconds
        buckets = self.buckets[generation]
        for i, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                buckets[i] += 1

    def close(self) -> None:
        """Stop timing (a collector stopped in a process that goes on: tests, the demo)."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        if self._registry is not None:
            self._registry.unregister(self)
            self._registry = None

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "kienco_gc_pause_seconds",
            "Garbage collection pauses (every thread waits), per generation",
            labels=["generation"],
        )
        longest = GaugeMetricFamily(
            "kienco_gc_pause_max_seconds",
            "The longest garbage collection pause since start, per generation",
            labels=["generation"],
        )
        for generation in range(_GENERATIONS):
            label = [str(generation)]
            counts = self.buckets[generation]
            cumulative = [(str(bound), n) for bound, n in zip(BUCKETS_S, counts, strict=True)]
            pauses.add_metric(
                label,
                [*cumulative, ("+Inf", self.count[generation])],
                self.sum_s[generation],
            )
            longest.add_metric(label, self.max_s[generation])
        yield pauses
        yield longest
