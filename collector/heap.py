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

``GcPauses`` times every collection (``gc.callbacks``) for /metrics:
``kienco_gc_pause_seconds`` (a histogram per generation) and
``kienco_gc_pause_max_seconds``, so the pauses are seen where they happen.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BUCKETS_S", "GcPauses", "settle"]

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
