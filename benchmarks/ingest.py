"""Ingest throughput: reports/s through Mosquitto alone, and through the collector into InfluxDB.

What it measures, in one run on this machine (loopback only):

1. Raw limit. ``mosquitto_sub -q 1 -C N`` (C, prints to /dev/null) subscribes to
   ``kienco/v1/#``; a publisher in a separate process sends N pre-generated
   reports at QoS 1 as fast as paho-mqtt can (MQTT 5, 1 000 in flight) and waits
   for every PUBACK. Rate = N / (publisher's first message -> mosquitto_sub exits).
2. End to end. ``--shards`` real collectors (``python -m kienco.cli collector
   run``, each with a generated YAML: batch 5 000 messages / 0.2 s, InfluxDB on)
   are subscribed; the sites' retained metas are sent first (untimed), then the
   same publisher sends the same N reports. Rate = N / (first message -> the
   collectors have acknowledged all N between them, i.e. made them durable in
   InfluxDB), read from their /metrics. InfluxDB must then hold exactly N
   ``report`` points (count(seq)). Each collector's CPU (% of one core) and RSS
   are sampled with psutil.

On a shared machine other processes take CPU too: for both windows the summary
shows the machine's busy CPU (all cores) and the part of it that was not this
benchmark (its services, collectors, publisher, mosquitto_sub and itself).

Sharding (ARCHITECTURE.md, Scale: collectors are sharded by province through
their topic filters). A collector takes one topic filter, and an MQTT wildcard
covers whole topic levels only, so each shard gets exactly one province: the
1 000 sites are spread over the provinces ``p0`` ... ``p{N-1}`` (N = --shards,
also for N = 1), and shard i subscribes to ``kienco/v1/p{i}/#`` with its own
client id, data dir and HTTP port. All shards write to the same InfluxDB
database. ``--protocol 4|5`` is the collectors' MQTT version (3.1.1 or 5: paho
parses MQTT 5 properties on every message); the publishers stay on MQTT 5.

Raw InfluxDB. The same reports' line protocol (what the collector writes for each,
collector/points.py ``report_lines``, made before the clock starts) is POSTed in the
collector's batches by ``--influx-writers`` threads at once into a database of its
own: InfluxDB's own limit for this workload, in the same run, so the collector's
rate reads against both real components' limits.

Reports are fresh by default (``--age fresh``): the collector's copy is stamped over
the 45 s before it is sent, so every site is judged within its stale window and
every rule runs; the summary says how old the oldest report judged could be.
``--age stale`` sends them minutes old: the rules stop at freshness.

Mosquitto and InfluxDB are started on free loopback ports by
kienco.local_services (Mosquitto from the shipped config). Everything started
here is stopped at the end; the temporary folder is removed unless --keep.

Run (default: 50 000 reports from 1 000 sites, about one minute):

    /work/main/.venv/bin/python benchmarks/ingest.py
    /work/main/.venv/bin/python benchmarks/ingest.py --reports 20000 --json
    /work/main/.venv/bin/python benchmarks/ingest.py --shards 2 --protocol 4
    /work/main/.venv/bin/python benchmarks/ingest.py --profile   # py-spy on the collector
    /work/main/.venv/bin/python benchmarks/ingest.py --influx-tls both  # http vs https

``--influx-tls on`` serves InfluxDB over HTTPS (a throwaway CA made here, the collectors
with ``influx.ca_file``); ``both`` runs the collector twice in one run, over http then over
https, each against its own fresh influxd, and prints the https figures beside.

``--profile`` attaches py-spy (``/work/main/.venv/bin/pip install py-spy``) to
each collector for the end-to-end window and prints the top functions by own
and cumulative time (all shards' samples together). Profiling slows the
collectors: take rates from a run without it.

Goals (ARCHITECTURE.md, Scale): the collectors carry >= 50 % of the raw
broker rate and >= 5 000 reports/s.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import os
import pickle
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
from _common import (
    CollectorProcess,
    PySpy,
    Sampler,
    gc_summary,
    log,
    log_heap_audits,
    make_meta,
    make_report,
    make_sites,
    print_profile,
    print_summary,
    public_profile,
    stage_shares,
    summarize_pyspy,
    verdict_of,
    wire,
)
from paho.mqtt.enums import CallbackAPIVersion

from collector.influx import InfluxV1Client
from collector.points import report_lines, site_tags
from contract.wire import Meta, Report
from kienco.local_services import Influxd, Mosquitto, ServerTls, find_binary
from rules import SiteSnapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.pki import Pki  # the tests' throwaway CA (--influx-tls)

GOAL_RATIO = 0.5
GOAL_RATE = 5_000.0
FRESH_SPAN_S = 45.0
"""--age fresh: each site's reports spread over the 45 s before they are sent."""
STALE_INTERVALS = 3
"""rules/default-policy.yaml: a site is stale 3 intervals after its newest report."""
RAW_DATABASE = "kienco_raw_limit"
ACKED = "kienco_messages_acked_total"
PUBLISHED = "kienco_statuses_published_total"
WRITTEN = "kienco_points_written_total"
REPORTS_ACCEPTED = 'kienco_messages_accepted_total{kind="report"}'
METAS_ACCEPTED = 'kienco_messages_accepted_total{kind="meta"}'
SPOOLED = "kienco_batches_spooled_total"
REFUSED = "kienco_points_refused_total"

PAHO = "(paho/mqtt/client.py)"
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("MQTT network thread (paho: read, parse, callbacks)", (f"Client.loop_forever {PAHO}",)),
    ("  Collector.handle (one message)", ("Collector.handle (collector/service.py)",)),
    ("    decode + validate (pydantic)", ("decode (collector/decode.py)",)),
    (
        "    site state fold (SiteStates.apply_report)",
        ("SiteStates.apply_report (collector/state.py)",),
    ),
    ("    rules + Status (Verdicts.evaluate)", ("Verdicts.evaluate (collector/readiness.py)",)),
    ("    status publish (paho publish)", (f"Client.publish {PAHO}",)),
    ("    report -> line protocol (report_lines)", ("report_lines (collector/points.py)",)),
    (
        "    verdict points -> line protocol (encode_many)",
        ("encode_many (collector/line_protocol.py)",),
    ),
    ("writer thread (batch, InfluxDB write, acks)", ("Delivery.step (collector/delivery.py)",)),
    ("  InfluxDB /write (httpx)", ("InfluxV1Client.write (collector/influx.py)",)),
    (
        "  PUBACKs to the broker (one write a batch)",
        ("CollectorClient.ack_many (collector/mqtt_client.py)", f"Client.ack {PAHO}"),
    ),
    ("state saver (state.persist)", ("StateStore.step (collector/state_store.py)",)),
    ("staleness sweeper", ("Collector._sweep_step (collector/service.py)",)),
    ("HTTP API (this benchmark polling /metrics)", ("Api._serve (collector/api.py)",)),
)
"""Where the collector's time goes, as py-spy names the functions."""


# --- the publisher (runs in its own process) ----------------------------------------------------


def publisher_main(
    port: int,
    payload_file: str,
    inflight: int,
    ready: MpEvent,
    go: MpEvent,
    results: MpQueue[dict[str, Any]],
    timeout_s: float,
) -> None:
    """Publish every (topic, payload) of ``payload_file`` at QoS 1, then wait for all PUBACKs.

    At most ``inflight`` messages are unacknowledged at any time. The window is kept
    here, not with paho's ``max_inflight_messages_set``: paho scans every in-flight
    message on each PUBACK when it has a limit (``_update_inflight``), which halves
    the publisher's rate at 1 000 in flight; with the limit off (0) it does not.
    """
    with open(payload_file, "rb") as file:
        items: list[tuple[str, bytes]] = pickle.load(file)
    total = len(items)
    acked = 0
    failed = 0
    all_acked = threading.Event()
    connected = threading.Event()
    lock = threading.Lock()
    window = threading.BoundedSemaphore(inflight)

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, reason: Any, _p: object) -> None:
        nonlocal acked, failed
        window.release()
        with lock:
            acked += 1
            if getattr(reason, "is_failure", False):
                failed += 1
            if acked >= total:
                all_acked.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-publisher-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(0)  # no paho limit: the window below keeps it
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    try:
        if not connected.wait(10):
            results.put({"error": "publisher could not connect"})
            return
        ready.set()
        go.wait()
        t_first = time.monotonic()
        cpu_first = time.process_time()  # all of this process's threads
        errors = 0
        for topic, payload in items:
            window.acquire()
            if client.publish(topic, payload, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                errors += 1
        t_sent = time.monotonic()
        complete = all_acked.wait(timeout_s)
        t_acked = time.monotonic()
        cpu_s = time.process_time() - cpu_first
        results.put(
            {
                "t_first": t_first,
                "t_sent": t_sent,
                "t_acked": t_acked,
                "acked": acked,
                "failed": failed,
                "publish_errors": errors,
                "complete": complete,
                "cpu_s": cpu_s,
            }
        )
    finally:
        client.disconnect()
        client.loop_stop()


class Publisher:
    """The publisher process: ``start()`` (connected, waiting), ``go()``, ``result()``."""

    def __init__(self, port: int, payload_file: Path, *, inflight: int, timeout_s: float) -> None:
        ctx = mp.get_context("spawn")
        self.ready = ctx.Event()
        self.go_event = ctx.Event()
        self.results: MpQueue[dict[str, Any]] = ctx.Queue()
        self.timeout_s = timeout_s
        self.process = ctx.Process(
            target=publisher_main,
            args=(
                port,
                str(payload_file),
                inflight,
                self.ready,
                self.go_event,
                self.results,
                timeout_s,
            ),
            name="bench-publisher",
        )

    def start(self) -> None:
        self.process.start()
        if not self.ready.wait(60):
            self.stop()
            raise RuntimeError("the publisher did not get ready")

    def go(self) -> None:
        self.go_event.set()

    def result(self) -> dict[str, Any]:
        try:
            result = self.results.get(timeout=self.timeout_s + 30)
        finally:
            self.stop()
        if "error" in result:
            raise RuntimeError(result["error"])
        return result

    def stop(self) -> None:
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# --- workload -----------------------------------------------------------------------------------


def shard_provinces(shards: int) -> tuple[str, ...]:
    """One province per shard: ``p0`` ... ``p{shards-1}``."""
    return tuple(f"p{i}" for i in range(shards))


def shard_filter(province: str) -> str:
    """The one topic filter that covers a shard's province."""
    return f"kienco/v1/{province}/#"


def province_of(topic: str) -> str:
    """``kienco/v1/{province}/{site}/...`` -> province."""
    return topic.split("/")[2]


def generate(
    n_reports: int,
    n_sites: int,
    interval_s: float,
    seed: int,
    provinces: Sequence[str],
    *,
    fresh_span_s: float | None = None,
    now: datetime | None = None,
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], int]:
    """(reports, metas, readings per report): reports in time order, all in the last hour
    (before ``now``, the wall clock's by default).

    Stale (``fresh_span_s`` None): each site's reports are ``interval_s`` apart
    (closer if needed to fit 50 min), ending two minutes ago, so every report is
    older than the stale window when judged and the rules stop at freshness.
    Fresh: each site's reports are spread over the last ``fresh_span_s`` seconds,
    ending now, so a collector judging them within the stale window runs every rule.
    Sites are offset by a few ms from each other and go round-robin over
    ``provinces``, so every province gets the same share.
    """
    rng = random.Random(seed)
    sites = make_sites(n_sites, provinces=provinces)
    per_site = math.ceil(n_reports / n_sites)
    at = datetime.now(UTC) if now is None else now
    if fresh_span_s is None:
        spacing = min(interval_s, 3000.0 / per_site)
        end = at - timedelta(seconds=120)
    else:
        spacing = fresh_span_s / max(1, per_site - 1)
        end = at
    offset_span_us = max(1, int(spacing * 1e6 / 2))
    reports: list[tuple[str, bytes]] = []
    readings = 0
    for j in range(per_site):
        back = timedelta(seconds=(per_site - 1 - j) * spacing)
        for index, site in enumerate(sites):
            if len(reports) == n_reports:
                break
            offset = timedelta(microseconds=(index * 1009) % offset_span_us)
            report = make_report(site, j, end - back - offset, interval_s=interval_s, rng=rng)
            if not reports:
                readings = _readings(report.model_dump(exclude_none=True))
            reports.append((f"{site.base_topic}/report", wire(report)))
    metas = [
        (f"{site.base_topic}/meta", wire(make_meta(site, at, interval_s=interval_s)))
        for site in sites
    ]
    return reports, metas, readings


def _readings(report: dict[str, Any]) -> int:
    ids = {"device", "profile", "path", "media", "provider", "srlg"}
    count = sum(len(set(p) - ids) for p in report["power"])
    count += sum(len(set(link) - ids) for link in report["links"])
    return count + len(report["host"])


# --- measurements ------------------------------------------------------------------------------


def wait_subscribed(process: subprocess.Popen[bytes], port: int, timeout_s: float = 10) -> None:
    """Wait until mosquitto_sub has a connection to the broker, then give it time to SUBSCRIBE."""
    deadline = time.monotonic() + timeout_s
    proc = psutil.Process(process.pid)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto_sub exited with {process.returncode}")
        connections = proc.net_connections(kind="tcp")
        if any(
            c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr[1] == port
            for c in connections
        ):
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise RuntimeError("mosquitto_sub did not connect")


def measure_raw(
    broker: Mosquitto, payload_file: Path, n: int, *, inflight: int, timeout_s: float
) -> dict[str, Any]:
    sub_binary = find_binary("mosquitto_sub")
    if sub_binary is None:
        raise RuntimeError("mosquitto_sub is missing: apt-get install -y mosquitto-clients")
    command = [sub_binary, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "kienco/v1/#"]
    command += ["-q", "1", "-C", str(n), "-i", f"bench-sub-{os.getpid()}"]
    sub = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    publisher = Publisher(broker.port, payload_file, inflight=inflight, timeout_s=timeout_s)
    try:
        wait_subscribed(sub, broker.port)
        publisher.start()
        exited_at: list[float] = []
        sub_cpu_s: list[float] = []

        def watch() -> None:
            # wait4 rather than sub.wait(): its rusage is mosquitto_sub's CPU, which
            # psutil can no longer read once it has exited.
            try:
                _, status, usage = os.wait4(sub.pid, 0)
            except ChildProcessError:  # reaped elsewhere (killed after a failure)
                return
            sub.returncode = os.waitstatus_to_exitcode(status)
            sub_cpu_s.append(usage.ru_utime + usage.ru_stime)
            exited_at.append(time.monotonic())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert broker.process is not None
        sampler = Sampler({"mosquitto": broker.process.pid, "benchmark": os.getpid()}).start()
        publisher.go()
        result = publisher.result()
        watcher.join(timeout_s)
        stats = sampler.stop()
        complete = bool(exited_at) and sub.returncode == 0
    finally:
        publisher.stop()
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    t_first = result["t_first"]
    sub_s = exited_at[0] - t_first if complete else math.nan
    pub_s = result["t_acked"] - t_first
    return {
        "complete": complete,
        "sub_rate": n / sub_s if complete else math.nan,
        "sub_s": sub_s,
        "pub_rate": result["acked"] / pub_s,
        "pub_failed": result["failed"],
        "mosquitto_cpu": stats["mosquitto"].cpu_pct,
        "machine_cpu": sampler.machine_cpu_pct,
        "others_cpu": sampler.others_cpu_pct(
            result["cpu_s"] + (sub_cpu_s[0] if sub_cpu_s else math.nan)
        ),
    }


def measure_influx_raw(
    influx: Influxd,
    payload_file: Path,
    metas: Sequence[tuple[str, bytes]],
    *,
    batch: int,
    writers: int,
) -> dict[str, Any]:
    """InfluxDB's own limit for this workload: the reports' lines, written straight in.

    Each report becomes the line protocol the collector writes for it (collector/points.py
    ``report_lines``; not timed), in batches of ``batch`` reports as the collector batches
    them, POSTed by ``writers`` threads at once (one per core: influxd parses and indexes
    in parallel) into a database of their own. Rate = reports / (first POST -> last 204).
    """
    with open(payload_file, "rb") as file:
        items: list[tuple[str, bytes]] = pickle.load(file)
    n = len(items)
    tags = {}
    for _, payload in metas:
        meta = Meta.model_validate_json(payload)
        tags[meta.site] = site_tags(
            SiteSnapshot(site=meta.site, province=meta.province).with_meta(meta)
        )
    texts = []
    for _, payload in items:
        report = Report.model_validate_json(payload)
        kind, operator = tags.get(report.site, site_tags(None))  # as the collector tags it
        texts.append(report_lines(report, site_kind=kind, operator=operator))
    batches = ["\n".join(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    lines = sum(text.count("\n") + 1 for text in texts)
    del items, texts
    clients = [
        InfluxV1Client(influx.url, RAW_DATABASE, timeout_s=60, verify=influx.verify)
        for _ in range(writers)
    ]
    clients[0].create_database()
    refused: list[str] = []

    def write(index: int) -> None:
        for text in batches[index::writers]:
            result = clients[index].write(text)
            if not result.ok:
                refused.append(str(result))

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(writers)]
    sampler = Sampler({"influxd": influx.process.pid}).start()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stats = sampler.stop()
    for client in clients:
        client.close()
    return {
        "rate": n / elapsed,
        "lines_rate": lines / elapsed,
        "lines": lines,
        "stored": influx_count(influx.url, RAW_DATABASE, influx.verify),
        "refused": len(refused),
        "influxd_cpu": stats["influxd"].cpu_pct,
        "writers": writers,
    }


def influx_count(url: str, database: str, verify: ssl.SSLContext | None = None) -> int:
    response = httpx.get(
        f"{url}/query",
        params={"db": database, "q": "SELECT count(seq) FROM report"},
        timeout=30,
        verify=True if verify is None else verify,
    )
    response.raise_for_status()
    series = response.json()["results"][0].get("series") or []
    return int(series[0]["values"][0][1]) if series else 0


def publish_metas(port: int, metas: Sequence[tuple[str, bytes]]) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-meta-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in metas]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def poll_all(collectors: Sequence[CollectorProcess], http: httpx.Client) -> list[dict[str, float]]:
    return [collector.metrics(http) for collector in collectors]


def wait_until(
    collectors: Sequence[CollectorProcess],
    http: httpx.Client,
    done: Callable[[list[dict[str, float]]], bool],
    timeout_s: float,
    poll_s: float,
) -> tuple[list[dict[str, float]], float, bool]:
    """Poll every shard's /metrics until ``done(metrics per shard)``.

    (last metrics per shard, monotonic time they were all read, done?)
    """
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = poll_all(collectors, http)
        seen = time.monotonic()
        if done(metrics):
            return metrics, seen, True
        if seen > deadline:
            return metrics, seen, False
        time.sleep(poll_s)


def stop_all(collectors: Sequence[CollectorProcess]) -> None:
    """SIGTERM every collector at once and wait for each (they flush, then exit)."""
    threads = [
        threading.Thread(target=collector.stop, name=f"stop-{index}")
        for index, collector in enumerate(collectors)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _delta(m1: dict[str, float], m0: dict[str, float], name: str) -> float:
    return m1.get(name, 0) - m0.get(name, 0)


def _reports_acked(m1: dict[str, float], m0: dict[str, float]) -> float:
    """Acks beyond the collector's own statuses, which come back through its filter."""
    return _delta(m1, m0, ACKED) - _delta(m1, m0, PUBLISHED)


def merge_profiles(paths: Sequence[Path], out: Path) -> Path:
    """py-spy's raw output is one ``stack count`` per line: shards' files concatenate."""
    with out.open("w") as merged:
        for path in paths:
            if path.exists():
                text = path.read_text(errors="replace")
                merged.write(text if text.endswith("\n") or not text else text + "\n")
    return out


def measure_collector(
    args: argparse.Namespace,
    workdir: Path,
    broker: Mosquitto,
    influx: Influxd,
    payload_file: Path,
    metas: Sequence[tuple[str, bytes]],
    n: int,
    label: str = "",
) -> dict[str, Any]:
    """``label``: this run's name (http, https), in the collectors' client ids."""
    provinces = shard_provinces(args.shards)
    metas_of = Counter(province_of(topic) for topic, _ in metas)
    profile: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        collectors = [
            CollectorProcess(
                workdir / f"shard-{index}",
                broker.port,
                influx.url,
                batch_max_messages=args.batch,
                batch_max_delay_s=args.batch_delay,
                influx_timeout_s=args.influx_timeout,
                influx_ca_file=influx.tls.cafile if influx.tls else None,
                client_id=f"bench-collector-{os.getpid()}{label}-{index}",
                topic_filter=shard_filter(province),
                protocol=args.protocol,
                state={"persist": args.state == "on"},
            )
            for index, province in enumerate(provinces)
        ]
        # Registered before any start: a collector that fails to get healthy is stopped too
        # (and, once stopped, what its heap audit said is logged: callbacks run last first).
        stack.callback(log_heap_audits, collectors)
        stack.callback(stop_all, collectors)
        for collector in collectors:
            collector.start()
        http = stack.enter_context(httpx.Client())
        pids = ", ".join(f"{c.topic_filter} pid {c.pid}" for c in collectors)
        log(f"{len(collectors)} collector(s) up ({pids}); publishing {len(metas)} retained metas")
        publish_metas(broker.port, metas)

        def metas_done(ms: list[dict[str, float]]) -> bool:
            return all(
                m.get(METAS_ACCEPTED, 0) >= metas_of[province]
                and m.get(ACKED, 0) >= metas_of[province] + m.get(PUBLISHED, 0)
                for province, m in zip(provinces, ms, strict=True)
            )

        m0s, _, ok = wait_until(collectors, http, metas_done, 60, 0.1)
        if not ok:
            raise RuntimeError(f"the collectors did not take the metas: {m0s}")
        stamped_at = time.time()
        if args.age == "fresh":
            # Stamped now, just before they are sent, so each is judged within the stale
            # window (the same sizes and values as the raw run's, only the times differ).
            fresh, _, _ = generate(
                n, args.sites, args.interval, args.seed, provinces, fresh_span_s=FRESH_SPAN_S
            )
            payload_file.write_bytes(pickle.dumps(fresh, protocol=pickle.HIGHEST_PROTOCOL))
            del fresh
        publisher = Publisher(broker.port, payload_file, inflight=args.inflight, timeout_s=300)
        publisher.start()
        stack.callback(publisher.stop)
        assert broker.process is not None
        shard_names = [f"collector-{index}" for index in range(len(collectors))]
        sampler = Sampler(
            {
                **{name: c.pid for name, c in zip(shard_names, collectors, strict=True)},
                "mosquitto": broker.process.pid,
                "influxd": influx.process.pid,
                "benchmark": os.getpid(),
            }
        ).start()
        spies: list[PySpy] = []
        if args.profile:
            for collector in collectors:
                spy = PySpy(collector.pid, collector.workdir / "collector-profile.txt")
                stack.callback(spy.stop)
                spies.append(spy)
        log(f"publishing {n} reports to the collector(s)")
        publisher.go()

        def all_durable(ms: list[dict[str, float]]) -> bool:
            # Each status a collector publishes comes back through its filter and is
            # acked too: only acks beyond those count as reports made durable.
            accepted = sum(m.get(REPORTS_ACCEPTED, 0) for m in ms)
            acked = sum(_reports_acked(m1, m0) for m1, m0 in zip(ms, m0s, strict=True))
            return accepted >= n and acked >= n

        m1s, seen, complete = wait_until(collectors, http, all_durable, args.timeout, args.poll)
        # No report is older when judged than its site's first report was at the end.
        oldest_judged_s = (time.time() - stamped_at) + (
            FRESH_SPAN_S + 1.0 if args.age == "fresh" else math.nan
        )
        stats = sampler.stop()
        if spies:
            paths = [spy.stop() for spy in spies]
            profile = summarize_pyspy(merge_profiles(paths, workdir / "collectors-profile.txt"))
            profile["stages"] = stage_shares(profile, STAGES)
        result = publisher.result()
        stored = influx_count(influx.url, collectors[0].database, influx.verify)
    t_first = result["t_first"]
    elapsed = seen - t_first
    pairs = list(zip(m1s, m0s, strict=True))
    written = sum(_delta(m1, m0, WRITTEN) for m1, m0 in pairs)
    shards: list[dict[str, Any]] = [
        {
            "name": name,
            "topic_filter": collector.topic_filter,
            "reports_acked": int(_reports_acked(m1, m0)),
            "stats": stats[name],
            "gc": gc_summary(m1),
        }
        for name, collector, (m1, m0) in zip(shard_names, collectors, pairs, strict=True)
    ]
    return {
        "complete": complete,
        "rate": n / elapsed if complete else math.nan,
        "elapsed_s": elapsed,
        "pub_rate": result["acked"] / (result["t_acked"] - t_first),
        "pub_failed": result["failed"],
        "points_written": int(written),
        "points_rate": written / elapsed,
        "points_refused": int(sum(m1.get(REFUSED, 0) for m1 in m1s)),
        "batches_spooled": int(sum(m1.get(SPOOLED, 0) for m1 in m1s)),
        "rejected": int(
            sum(
                v
                for m1 in m1s
                for k, v in m1.items()
                if k.startswith("kienco_messages_rejected_total")
            )
        ),
        "statuses_published": int(sum(_delta(m1, m0, PUBLISHED) for m1, m0 in pairs)),
        "stored": stored,
        "oldest_judged_s": oldest_judged_s,
        "shards": shards,
        "collectors_cpu": sum(shard["stats"].cpu_pct for shard in shards),
        "mosquitto_cpu": stats["mosquitto"].cpu_pct,
        "influxd_cpu": stats["influxd"].cpu_pct,
        "publisher_cpu": 100.0 * result["cpu_s"] / sampler.wall_s,
        "machine_cpu": sampler.machine_cpu_pct,
        "others_cpu": sampler.others_cpu_pct(result["cpu_s"]),
        "profile": profile,
    }


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Reports/s through Mosquitto alone and through the collector into InfluxDB.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--reports", type=int, default=50_000, help="reports to publish (N)")
    parser.add_argument("--sites", type=int, default=1_000, help="distinct sites")
    parser.add_argument("--interval", type=float, default=30.0, help="report interval_s")
    parser.add_argument("--inflight", type=int, default=1_000, help="publisher max in flight")
    parser.add_argument("--batch", type=int, default=5_000, help="collector batch max_messages")
    parser.add_argument("--batch-delay", type=float, default=0.2, help="batch max_delay_s")
    parser.add_argument(
        "--influx-timeout", type=float, default=3.0, help="collector's InfluxDB timeout_s"
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="max s for the e2e run")
    parser.add_argument("--poll", type=float, default=0.1, help="/metrics poll period, s")
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="collector processes; shard i takes province p<i> (kienco/v1/p<i>/#)",
    )
    parser.add_argument(
        "--protocol",
        type=int,
        choices=(5, 4),
        default=4,
        help="the collectors' MQTT version: 4 (3.1.1, the collector's default), or 5",
    )
    parser.add_argument(
        "--state",
        choices=("on", "off"),
        default="on",
        help="the collectors save their state for restarts (state.persist); off: the cost of it",
    )
    parser.add_argument(
        "--age",
        choices=("fresh", "stale"),
        default="fresh",
        help="fresh: reports stamped just before they are sent, every rule runs; "
        "stale: older than the stale window, the rules stop at freshness",
    )
    parser.add_argument(
        "--influx-writers",
        type=int,
        default=2,
        help="threads writing at once for InfluxDB's raw limit (0: skip it)",
    )
    parser.add_argument(
        "--influx-tls",
        choices=("off", "on", "both"),
        default="off",
        help="the collectors reach InfluxDB over https (a throwaway CA, influx.ca_file); "
        "both: the collector run twice in this run, over http then over https, each with "
        "its own fresh influxd",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-raw", action="store_true", help="only the collector run")
    parser.add_argument("--profile", action="store_true", help="py-spy the collector")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not 1 <= args.shards <= args.sites:
        parser.error("--shards must be between 1 and --sites")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kienco-bench-ingest-"))
    with contextlib.ExitStack() as cleanup:
        if not args.keep:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        else:
            log(f"temporary folder kept: {workdir}")
        started = time.monotonic()
        provinces = shard_provinces(args.shards)
        log(
            f"generating {args.reports} reports for {args.sites} sites "
            f"in {len(provinces)} province(s)"
        )
        reports, metas, readings = generate(
            args.reports, args.sites, args.interval, args.seed, provinces
        )
        n = len(reports)
        expected = Counter(province_of(topic) for topic, _ in reports)
        mean_size = sum(len(p) for _, p in reports) / n
        payload_file = workdir / "reports.pickle"
        payload_file.write_bytes(pickle.dumps(reports, protocol=pickle.HIGHEST_PROTOCOL))
        del reports
        log(f"mean payload {mean_size:.0f} bytes, {readings} readings per report")

        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        cleanup.callback(broker.stop)
        raw: dict[str, Any] | None = None
        if not args.skip_raw:
            log("raw: publisher -> Mosquitto -> mosquitto_sub")
            raw = measure_raw(broker, payload_file, n, inflight=args.inflight, timeout_s=60)
            log(f"raw: {raw['sub_rate']:,.0f} reports/s")
        schemes = {"off": ["http"], "on": ["https"], "both": ["http", "https"]}[args.influx_tls]
        runs: dict[str, dict[str, Any]] = {}
        raw_influx: dict[str, Any] | None = None
        for scheme in schemes:
            tls = None
            if scheme == "https":
                pki = Pki(workdir / "pki", "kienco bench CA")
                pair = pki.server("influxdb")
                tls = ServerTls(pki.ca_file, pair.cert, pair.key)
            influx = Influxd.start(workdir / f"influx-{scheme}", tls=tls)
            try:
                if scheme == schemes[0] and not args.skip_raw and args.influx_writers > 0:
                    log(
                        f"raw InfluxDB over {scheme}: the reports' lines, "
                        f"{args.influx_writers} writers -> influxd"
                    )
                    raw_influx = measure_influx_raw(
                        influx, payload_file, metas, batch=args.batch, writers=args.influx_writers
                    )
                    log(f"raw InfluxDB: {raw_influx['rate']:,.0f} reports/s")
                log(
                    f"end to end: publisher -> Mosquitto -> {args.shards} collector(s) "
                    f"(MQTT {args.protocol}) -> InfluxDB over {scheme}"
                )
                runs[scheme] = measure_collector(
                    args, workdir / scheme, broker, influx, payload_file, metas, n, f"-{scheme}"
                )
            finally:
                influx.stop()
            log(f"collector over {scheme}: {runs[scheme]['rate']:,.0f} reports/s")
        e2e = runs[schemes[0]]
        total_s = time.monotonic() - started

    raw_rate = raw["sub_rate"] if raw else math.nan
    ratio = e2e["rate"] / raw_rate if raw else math.nan
    influx_rate = raw_influx["rate"] if raw_influx else math.nan
    stale_window_s = STALE_INTERVALS * args.interval
    oldest = e2e["oldest_judged_s"]
    if e2e["profile"] is not None and not args.json:
        of = "the collector" if args.shards == 1 else f"the {args.shards} collectors (merged)"
        print_profile(e2e["profile"], stages=e2e["profile"]["stages"], of=of)
    shard_rows: list[tuple[str, Any]] = []
    for shard in e2e["shards"]:
        stats = shard["stats"]
        province = province_of(shard["topic_filter"])
        shard_rows += [
            (
                f"{shard['name']} {shard['topic_filter']} reports acked",
                f"{shard['reports_acked']} (expected {expected[province]})",
            ),
            (f"{shard['name']} CPU % of a core (mean)", stats.cpu_pct),
            (f"{shard['name']} peak RSS MB", stats.peak_rss_mb),
            (f"{shard['name']} garbage collection: count / s", shard["gc"]),
        ]
    rows: list[tuple[str, Any]] = [
        ("reports (N)", n),
        ("sites", args.sites),
        ("readings per report", readings),
        ("mean payload bytes", round(mean_size)),
        ("raw: mosquitto_sub reports/s", raw_rate),
        ("raw: publisher reports/s (all PUBACKs)", raw["pub_rate"] if raw else math.nan),
        ("raw: mosquitto CPU % of a core", raw["mosquitto_cpu"] if raw else math.nan),
        ("raw: machine busy CPU % of a core", raw["machine_cpu"] if raw else math.nan),
        ("raw: of which not this benchmark", raw["others_cpu"] if raw else math.nan),
        ("raw InfluxDB: reports/s (their lines written straight in)", influx_rate),
        ("raw InfluxDB: lines/s", raw_influx["lines_rate"] if raw_influx else math.nan),
        (
            "raw InfluxDB: writers, influxd CPU % of a core",
            (f"{raw_influx['writers']}, {raw_influx['influxd_cpu']:.0f}" if raw_influx else "n/a"),
        ),
        (
            "raw InfluxDB: stored check",
            (
                "n/a"
                if not raw_influx
                else "OK"
                if raw_influx["stored"] == n and not raw_influx["refused"]
                else f"MISMATCH ({raw_influx['stored']} of {n}, {raw_influx['refused']} refused)"
            ),
        ),
        ("shards (collector processes)", args.shards),
        ("collectors' MQTT protocol", "5" if args.protocol == 5 else "3.1.1 (4)"),
        ("collectors -> InfluxDB", schemes[0]),
        ("collectors save their state (state.persist)", args.state),
        ("collector: reports/s end to end", e2e["rate"]),
        ("collector: all N durable and acked", e2e["complete"]),
        ("collector: elapsed s", e2e["elapsed_s"]),
        ("collector: publisher reports/s", e2e["pub_rate"]),
        ("ratio collector / raw %", 100 * ratio),
        ("ratio collector / raw InfluxDB %", 100 * e2e["rate"] / influx_rate),
        (
            "reports judged",
            (
                f"fresh: each within {oldest:.0f} s of its site's newest report "
                f"(stale after {stale_window_s:.0f} s)"
                if args.age == "fresh"
                else f"stale: older than {stale_window_s:.0f} s, the rules stop at freshness"
            ),
        ),
        (
            "  all judged fresh",
            (verdict_of(oldest < stale_window_s) if args.age == "fresh" else "n/a (--age stale)"),
        ),
        ("points written to InfluxDB", e2e["points_written"]),
        ("points/s into InfluxDB", e2e["points_rate"]),
        *shard_rows,
        ("collectors CPU % of a core (sum)", e2e["collectors_cpu"]),
        ("influxd CPU % of a core", e2e["influxd_cpu"]),
        ("mosquitto CPU % of a core", e2e["mosquitto_cpu"]),
        ("publisher CPU % of a core", e2e["publisher_cpu"]),
        ("machine busy CPU % of a core (all cores)", e2e["machine_cpu"]),
        ("  of which not this benchmark (shared)", e2e["others_cpu"]),
        ("statuses published", e2e["statuses_published"]),
        ("messages rejected / points refused", f"{e2e['rejected']} / {e2e['points_refused']}"),
        ("batches spooled (InfluxDB too slow)", e2e["batches_spooled"]),
        ("InfluxDB count(seq) FROM report", e2e["stored"]),
        ("stored count check", "OK" if e2e["stored"] == n else f"MISMATCH (expected {n})"),
        ("goal ratio >= 50 %", verdict_of(None if not raw else ratio >= GOAL_RATIO)),
        ("goal >= 5 000 reports/s", verdict_of(e2e["rate"] >= GOAL_RATE)),
        ("profiled (rates lowered by py-spy)", args.profile),
        ("cores on this machine (shared)", os.cpu_count()),
        ("benchmark wall s", total_s),
    ]
    for scheme in schemes[1:]:
        other = runs[scheme]
        rows += [
            (f"over {scheme}: collector reports/s end to end", other["rate"]),
            (f"over {scheme}: all N durable and acked", other["complete"]),
            (f"over {scheme} / over {schemes[0]} reports/s %", 100 * other["rate"] / e2e["rate"]),
            (f"over {scheme}: collectors CPU % of a core (sum)", other["collectors_cpu"]),
            (f"over {scheme}: influxd CPU % of a core", other["influxd_cpu"]),
            (f"over {scheme}: machine busy CPU % (all cores)", other["machine_cpu"]),
            (f"over {scheme}: batches spooled", other["batches_spooled"]),
            (
                f"over {scheme}: stored count check",
                "OK" if other["stored"] == n else f"MISMATCH ({other['stored']} of {n})",
            ),
        ]
    if args.json and e2e["profile"] is not None:
        rows.append(("profile", public_profile(e2e["profile"])))
    print_summary("kienco ingest benchmark", rows, as_json=args.json)
    return 0 if all(run["complete"] and run["stored"] == n for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
