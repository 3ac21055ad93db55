"""collector/heap.py (GC pauses on /metrics, the start frozen, survivors frozen, the audit
of what freezing leaked, on a real collector too); the sweeper's slices."""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, generate_latest

from collector.config import CollectorConfig
from collector.heap import BUCKETS_S, GcPauses, audit, keep_settled, settle
from collector.service import SWEEP_SLICE_SITES, in_slices
from kienco.commands.collector import _audit_heap
from kienco.fleet.fleet import Storm, make_sites, meta_payload, report_payload, utc_iso
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker

REPO = Path(__file__).resolve().parent.parent


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


@pytest.mark.parametrize("generation", [0, 1, 2])
def test_kept_settled_what_survives_any_collection_is_frozen_and_still_freed(
    generation: int,
) -> None:
    """A collector's sites' state, made after the start: out of every later walk once any
    collection, young or full, has seen it alive; freed by reference counting all the same."""
    callbacks = len(gc.callbacks)
    keep_settled()
    keep_settled()  # once is enough: installed once
    gc.disable()  # no collection of CPython's own while the state is made
    try:
        assert len(gc.callbacks) == callbacks + 1
        state = [{"site": f"s{i}", "readings": [float(i)]} for i in range(1_000)]
        assert id(state) in {id(o) for o in gc.get_objects()}  # young: walked
        before = gc.get_freeze_count()
        gc.collect(generation)  # as CPython runs one when its thresholds say
        frozen = gc.get_freeze_count()
        assert frozen >= before + len(state)
        assert id(state) not in {id(o) for o in gc.get_objects()}
        assert all(d["readings"] for d in state)  # alive and usable
        del state  # replaced, as a site's snapshot by its next report: freed, not kept
        assert gc.get_freeze_count() <= frozen - 2_000
    finally:
        gc.enable()
        keep_settled(False)
        gc.unfreeze()  # the rest of the test session collects as before
    assert len(gc.callbacks) == callbacks


class _Ring:
    """A reference cycle: garbage only a collection can free."""

    def __init__(self) -> None:
        self.me = self


def test_the_audit_finds_a_cycle_freezing_leaked_and_frees_it() -> None:
    keep_settled()
    try:
        ring = _Ring()
        gc.collect(0)  # alive: frozen
        assert id(ring) not in {id(o) for o in gc.get_objects()}
        del ring  # garbage now, out of every walk
        gc.collect()
        leaked = audit()
    finally:
        keep_settled(False)
        gc.unfreeze()
    assert leaked.by_type[_Ring.__qualname__] == 1
    assert leaked.count >= 1 and leaked.size_bytes > 0
    assert gc.get_freeze_count() == 0
    assert not gc.garbage  # freed, not kept for naming
    assert not [o for o in gc.get_objects() if isinstance(o, _Ring)]
    assert not audit().by_type[_Ring.__qualname__]  # nothing left


def _recursive_closure() -> object:
    def walk(n: int) -> int:  # refers to itself through its cell: a cycle
        return 0 if n == 0 else walk(n - 1)

    walk(3)
    return walk


def test_the_audit_names_a_leaked_closure_by_its_function() -> None:
    keep_settled()
    try:
        closure = _recursive_closure()
        gc.collect(0)  # alive: frozen
        del closure
        leaked = audit()
    finally:
        keep_settled(False)
        gc.unfreeze()
    assert leaked.by_type[f"function {__name__}._recursive_closure.<locals>.walk"] == 1
    assert leaked.by_type["cell"] >= 1


def test_an_audit_that_raises_leaves_the_stop_clean(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit runs after everything is saved: its failure is logged, not raised."""

    def broken() -> None:
        raise TypeError("__sizeof__() should return an int")

    monkeypatch.setattr("collector.heap.audit", broken)
    with caplog.at_level(logging.INFO, logger="kienco.collector"):
        _audit_heap()
    failed = [r for r in caplog.records if "heap audit at stop failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None


def test_a_collector_run_leaks_nothing_by_freezing(
    tmp_path: Path, mosquitto: Broker, influxdb: InfluxServer
) -> None:
    """``kienco collector run`` freezes what survives every collection; at its clean stop it
    audits the heap. Under reports through a storm (every rule at work, statuses published),
    malformed messages, API reads, the board and scrapes, nothing of the collector's own
    was leaked (only asyncio's transport cycle may be, see below)."""
    db = influxdb.fresh_database("heap")
    provinces = ("hx", "hy")
    config = {
        "broker": {"url": mosquitto.url, "username": None, "client_id": f"collector-{db}"},
        "provinces": list(provinces),
        "influx": {"url": influxdb.url, "database": db},
        "data_dir": str(tmp_path / "collector"),
        "batch": {"max_messages": 500, "max_delay_s": 0.1},
        "http": {"port": 0, "anonymous_read": True},
    }
    CollectorConfig.model_validate(config)  # what the command reads, checked here first
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "kienco.cli", "collector", "run", "--config", str(path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    assert proc.stderr is not None
    stream = proc.stderr
    reader = threading.Thread(target=lambda: said.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    sites, rounds = make_sites(40, provinces), 40
    storm = Storm.over(provinces)
    try:
        url = _api_url(said, proc)
        start = datetime.now(UTC) - timedelta(seconds=30 * rounds)
        for site in sites:
            publisher.publish(site.topic("meta"), meta_payload(site, 30, start), qos=1)
        with httpx.Client(timeout=10) as http:
            for round_ in range(rounds):
                at = utc_iso((start + timedelta(seconds=30 * round_)).timestamp())
                for site in sites:
                    payload = report_payload(site, round_, at, 30, storm, round_ / rounds)
                    info = publisher.publish(site.topic("report"), payload, qos=1)
                publisher.publish(sites[0].topic("report"), b'{"site": "\x00<b>\r\n"', qos=1)
                if round_ % 8 == 0:
                    for page in ("/api/v1/readiness", "/metrics", "/"):
                        assert http.get(url + page).status_code == 200, page
            info.wait_for_publish(10)
        total = len(sites) * rounds
        deadline = time.monotonic() + 60
        stored = 0
        while stored < total and time.monotonic() < deadline:
            rows = influxdb.query(db, "SELECT count(seq) FROM report")
            stored = rows[0]["count"] if rows else 0
            time.sleep(0.2)
        assert stored == total, f"{stored} of {total} stored; {''.join(said[-20:])}"
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        reader.join(10)
    assert code == 0, "".join(said[-20:])
    audited = [m for line in said if (m := re.search(AUDITED, line))]
    assert audited, "".join(said[-20:])
    # Nothing a report, a judgement, a write or a request makes. What may be left is
    # CPython 3.11's asyncio transport of an HTTP connection open at a collection (it
    # holds a bound method of itself, gh-106503): a few objects a connection.
    leaked = {kind.rsplit(" ", 1)[0] for kind in (audited[0]["kinds"] or "").split(", ") if kind}
    assert leaked <= TRANSPORT_CYCLE, audited[0].string


AUDITED = (
    r"heap audit at stop: (?P<count>\d+) objects"
    r"(?: \([^)]*\) had been kept frozen [^(]*\([\d.]+ s; (?P<kinds>[^)]*)\))?"
)
TRANSPORT_CYCLE = {"_SelectorSocketTransport", "method", "dict", "socket", "TransportSocket"}


def _api_url(said: list[str], proc: subprocess.Popen[str]) -> str:
    """The collector's API address, from its start line."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in said:
            found = re.search(r"API and /metrics on (http://\S+?);", line)
            if found:
                return found[1]
        if proc.poll() is not None:
            raise AssertionError(f"collector exited with {proc.returncode}: {''.join(said)}")
        time.sleep(0.05)
    raise AssertionError(f"the collector did not start: {''.join(said)}")


def test_the_sweeper_judges_due_sites_in_slices_in_order() -> None:
    """collector.service: the sites the timers name, a slice at a time (a pause between)."""
    due = [f"s{i}" for i in range(2 * SWEEP_SLICE_SITES + 3)]
    slices = list(in_slices(due, SWEEP_SLICE_SITES))
    assert [len(s) for s in slices] == [SWEEP_SLICE_SITES, SWEEP_SLICE_SITES, 3]
    assert [site for s in slices for site in s] == due
    assert list(in_slices([], SWEEP_SLICE_SITES)) == []


def test_the_board_s_templates_are_compiled_before_the_start_is_settled() -> None:
    """Compiling a template makes reference cycles (jinja2's lexer calls ast.literal_eval,
    whose nested functions refer to each other). Compiled when the board is made, at the
    collector's start, they are collected by settle(); compiled at a page's first request,
    a collection running mid-compile would freeze one alive for good."""
    from collector.board.render import Renderer

    renderer = Renderer()
    names = set(renderer.env.list_templates(extensions=["html"]))
    compiled = {name for _loader, name in renderer.env.cache}  # type: ignore[union-attr]
    assert names and compiled >= names, names - compiled
