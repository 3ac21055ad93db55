"""collector/heap.py (GC pauses on /metrics, the start frozen); the sweeper's slices."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collector.heap import BUCKETS_S, GcPauses, keep_settled, settle
from collector.service import SWEEP_SLICE_SITES, in_slices


@pytest.fixture
def pauses() -> Iterator[tuple[GcPauses, CollectorRegistry]]:
    registry = CollectorRegistry()
    timed = GcPauses(registry)
    yield timed, registry
    timed.close()


def test_a_full_collection_is_timed_and_exposed(
    pauses: tuple[GcPauses, CollectorRegistry],
) -> None:
    timed, registry = pauses
    before = timed.count[2]
    gc.collect()
    assert timed.count[2] == before + 1
    assert timed.sum_s[2] > 0
    assert timed.max_s[2] > 0
    text = generate_latest(registry).decode()
    assert f'kienco_gc_pause_seconds_count{{generation="2"}} {float(timed.count[2])}' in text
    assert 'kienco_gc_pause_max_seconds{generation="2"}' in text


def test_buckets_are_cumulative(pauses: tuple[GcPauses, CollectorRegistry]) -> None:
    timed, registry = pauses
    gc.disable()  # only the pauses recorded here
    try:
        counted = timed.count[1]
        timed.record(1, 0.003)
        timed.record(1, 0.2)
        timed.record(1, 5.0)  # longer than every bound: +Inf only
    finally:
        gc.enable()
    assert timed.count[1] == counted + 3
    assert timed.max_s[1] >= 5.0
    text = generate_latest(registry).decode()
    le = {bound: BUCKETS_S.index(bound) for bound in (0.001, 0.005, 0.25, 1.0)}
    row = timed.buckets[1]
    assert row[le[0.005]] - row[le[0.001]] >= 1  # 3 ms: from the 5 ms bucket on
    assert row[le[1.0]] - row[le[0.25]] == 0  # nothing between 0.25 and 1 s
    assert row[le[1.0]] == timed.count[1] - 1  # 5 s: only in +Inf
    every = f'kienco_gc_pause_seconds_bucket{{generation="1",le="+Inf"}} {float(timed.count[1])}'
    assert every in text


def test_close_stops_timing_and_leaves_the_registry() -> None:
    registry = CollectorRegistry()
    timed = GcPauses(registry)
    timed.close()
    timed.close()  # twice is harmless
    before = timed.count[2]
    gc.collect()
    assert timed.count[2] == before
    assert "kienco_gc_pause" not in generate_latest(registry).decode()
    assert timed._callback not in gc.callbacks


def test_settle_freezes_what_is_alive() -> None:
    kept = [object() for _ in range(10)]
    try:
        frozen = settle()
        assert frozen >= len(kept)
        assert gc.get_freeze_count() == frozen
        # Frozen objects are out of the collector's walks, yet alive and usable.
        tracked = {id(o) for o in gc.get_objects()}
        assert id(kept) not in tracked
        kept.append(object())
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
    assert gc.get_freeze_count() == 0


def test_kept_settled_what_survives_each_full_collection_is_frozen_and_still_freed() -> None:
    """A collector's sites' state, made after the start: out of the next full walks once
    a full collection has seen it alive; freed by reference counting all the same."""
    callbacks = len(gc.callbacks)
    keep_settled()
    keep_settled()  # once is enough: installed once
    try:
        assert len(gc.callbacks) == callbacks + 1
        state = [{"site": f"s{i}", "readings": [float(i)]} for i in range(1_000)]
        assert id(state) in {id(o) for o in gc.get_objects()}  # young: walked
        before = gc.get_freeze_count()
        gc.collect()  # a full collection, as CPython runs one when its thresholds say
        frozen = gc.get_freeze_count()
        assert frozen >= before + len(state)
        assert id(state) not in {id(o) for o in gc.get_objects()}
        assert all(d["readings"] for d in state)  # alive and usable
        del state  # replaced, as a site's snapshot by its next report: freed, not kept
        assert gc.get_freeze_count() <= frozen - 2_000
    finally:
        keep_settled(False)
        gc.unfreeze()  # the rest of the test session collects as before
    assert len(gc.callbacks) == callbacks


def test_the_sweeper_judges_due_sites_in_slices_in_order() -> None:
    """collector.service: the sites the timers name, a slice at a time (a pause between)."""
    due = [f"s{i}" for i in range(2 * SWEEP_SLICE_SITES + 3)]
    slices = list(in_slices(due, SWEEP_SLICE_SITES))
    assert [len(s) for s in slices] == [SWEEP_SLICE_SITES, SWEEP_SLICE_SITES, 3]
    assert [site for s in slices for site in s] == due
    assert list(in_slices([], SWEEP_SLICE_SITES)) == []
