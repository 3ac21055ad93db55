"""Verdict latency (report accepted -> its site's status published) and readiness API time.

What it measures (loopback only; Mosquitto and InfluxDB from kienco.local_services):

a. Latency. The real collector runs as a subprocess (``kienco collector run``,
   InfluxDB on unless --no-influx, ``status.publish: always`` so that every
   evaluation publishes, which is what is timed). 1 000 sites first publish
   their retained meta (meeting points and stations, ``interval_s`` 10); then
   each site sends a report every 10 s, spread evenly (100 reports/s), for
   --duration s. Each report's ``taken_at`` is the time it is sent (µs); a paho
   subscriber on ``kienco/v1/+/+/status`` receives the statuses, whose
   ``last_report_at`` names the report, so latency = status received - report
   sent (publisher -> broker -> collector -> broker -> subscriber: two broker
   hops included). The first --warmup s are discarded.
b. API. A collector built in this process (no InfluxDB; its MQTT filter matches
   nothing) is filled with --api-sites sites by calling ``collector.handle()``
   with a meta and a report per site; then --requests GET /api/v1/readiness
   (all sites) and as many GET /api/v1/readiness?province=X, timed with httpx
   from a separate process (so the client does not compete for the server's
   GIL); anonymous (``http.anonymous_read``) or, with --api-auth token, each
   with a noc bearer token. The server-side part (select, count, join the cached JSON) is also
   timed directly.

Goals: p99 <= 100 ms for both.

Run (about 1.5 minutes with the defaults):

    /work/main/.venv/bin/python benchmarks/verdicts.py
    /work/main/.venv/bin/python benchmarks/verdicts.py --duration 30 --json
    /work/main/.venv/bin/python benchmarks/verdicts.py --only api [--api-auth token]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from _common import (
    CollectorProcess,
    Sampler,
    log,
    make_meta,
    make_report,
    make_sites,
    percentile,
    print_summary,
    verdict_of,
    wire,
)
from paho.mqtt.enums import CallbackAPIVersion

from collector.broker_link import BrokerClient
from collector.config import CollectorConfig
from collector.heap import keep_settled, settle
from collector.service import Collector
from kienco.local_services import Influxd, Mosquitto

GOAL_MS = 100.0


def _client(client_id: str) -> mqtt.Client:
    # Loopback's MSS (~64 KB) can stall a burst for seconds in any direction, as it did the
    # collector's statuses (collector/broker_link.py): the sites and the subscriber use a LAN's.
    client = BrokerClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(0)  # no paho limit (it scans in-flight messages per ack)
    return client


class StatusListener:
    """Records (receive time, payload) of every status; parsing waits until the end."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[float, bytes]] = []
        self._subscribed = threading.Event()
        self.client = _client(f"bench-status-{os.getpid()}")
        self.client.on_connect = lambda c, *_: c.subscribe("kienco/v1/+/+/status", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise RuntimeError("the status subscriber did not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.received.append((time.time(), bytes(msg.payload)))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure_latency(
    args: argparse.Namespace, workdir: Path, broker: Mosquitto, influx: Influxd | None
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    sites = make_sites(args.sites)
    interval = args.interval
    now = datetime.now(UTC)
    templates = {s.site: make_report(s, 0, now, interval_s=interval, rng=rng) for s in sites}
    collector = CollectorProcess(
        workdir,
        broker.port,
        influx.url if influx else None,
        status_publish="always",
    )
    collector.start()
    listener: StatusListener | None = None
    publisher = _client(f"bench-sites-{os.getpid()}")
    try:
        listener = StatusListener(broker.port)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        infos = [
            publisher.publish(
                f"{s.base_topic}/meta",
                wire(make_meta(s, datetime.now(UTC), interval_s=interval)),
                qos=1,
                retain=True,
            )
            for s in sites
        ]
        for info in infos:
            info.wait_for_publish(30)
        deadline = time.monotonic() + 30
        while collector.metrics().get('kienco_messages_accepted_total{kind="meta"}', 0) < len(
            sites
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the collector did not take the metas")
            time.sleep(0.1)
        log(
            f"latency: {len(sites)} sites, one report each per {interval:g} s "
            f"({len(sites) / interval:.0f}/s) for {args.duration:g} s"
        )
        sent: dict[tuple[str, datetime], float] = {}
        step = interval / len(sites)
        total = int(args.duration / step)
        assert collector.process is not None and broker.process is not None
        procs = {"collector": collector.pid, "mosquitto": broker.process.pid}
        if influx is not None:
            procs["influxd"] = influx.process.pid
        sampler = Sampler(procs, every_s=0.5).start()
        t0 = time.monotonic()
        wall0 = time.time()
        late = 0
        for k in range(total):
            target = t0 + k * step
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -step:
                late += 1
            site = sites[k % len(sites)]
            taken_at = datetime.now(UTC)
            report = templates[site.site].model_copy(
                update={"seq": k // len(sites), "taken_at": taken_at}
            )
            payload = wire(report)
            sent[(site.site, taken_at)] = time.time()
            publisher.publish(f"{site.base_topic}/report", payload, qos=1)
        time.sleep(3.0)  # the last statuses
        stats = sampler.stop()
        # Its garbage collector's longest pause, which stops every thread (collector/heap.py).
        metrics = collector.metrics()
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        if listener is not None:
            listener.stop()
        collector.stop()

    latencies: list[float] = []
    traced: list[tuple[float, str, float]] = []
    matched: set[tuple[str, datetime]] = set()
    warm_until = wall0 + args.warmup
    for received_at, payload in listener.received:
        status = json.loads(payload)
        last = status.get("last_report_at")
        if last is None:
            continue
        key = (status["site"], datetime.fromisoformat(last))
        sent_at = sent.get(key)
        if sent_at is None or key in matched:  # the sweeper may publish a site again
            continue
        matched.add(key)
        if sent_at >= warm_until:
            latencies.append((received_at - sent_at) * 1000.0)
            traced.append((sent_at, status["site"], latencies[-1]))
    if args.trace is not None:  # one line per report: when it was sent, its site, its latency
        with Path(args.trace).open("w") as out:
            out.writelines(f"{t:.6f} {site} {ms:.3f}\n" for t, site, ms in sorted(traced))
    expected = sum(1 for t in sent.values() if t >= warm_until)
    return {
        "sent": len(sent),
        "expected": expected,
        "count": len(latencies),
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=math.nan),
        "late_sends": late,
        "collector_cpu": stats["collector"].cpu_pct,
        "collector_rss": stats["collector"].peak_rss_mb,
        "gc2_count": metrics.get('kienco_gc_pause_seconds_count{generation="2"}', math.nan),
        "gc2_max_ms": metrics.get('kienco_gc_pause_max_seconds{generation="2"}', math.nan) * 1e3,
        "gc_max_ms": max(
            metrics.get(f'kienco_gc_pause_max_seconds{{generation="{g}"}}', math.nan)
            for g in range(3)
        )
        * 1e3,
    }


def measure_api(args: argparse.Namespace, workdir: Path, broker: Mosquitto) -> dict[str, Any]:
    from collector.web.tokens import new_token, sha256_hex

    token = new_token()
    # anonymous: open reads, as before roles; token: a noc token per request, as the CLI does.
    access: dict[str, Any] = (
        {"anonymous_read": True}
        if args.api_auth == "anonymous"
        else {"tokens": [{"name": "bench", "role": "noc", "sha256": sha256_hex(token)}]}
    )
    headers = {} if args.api_auth == "anonymous" else {"Authorization": f"Bearer {token}"}
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"bench-api-collector-{os.getpid()}",
                "topic_filter": "kienco/v1/apibench-nothing/#",
            },
            "influx": None,
            "data_dir": str(workdir / "api-collector"),
            "http": {"host": "127.0.0.1", "port": 0, **access},
        }
    )
    collector = Collector(config)
    collector.start()
    settle()  # as `kienco collector run` does once started (collector/heap.py)
    keep_settled()
    try:
        if not collector.wait_connected(10):
            raise RuntimeError("the in-process collector did not connect")
        rng = random.Random(args.seed)
        sites = make_sites(args.api_sites)
        log(f"api: filling the collector with {len(sites)} sites")
        started = time.monotonic()
        for site in sites:
            now = datetime.now(UTC)
            meta = wire(make_meta(site, now, interval_s=args.interval))
            collector.handle(f"{site.base_topic}/meta", meta, mid=0, qos=0)
            report = wire(make_report(site, 1, now, interval_s=args.interval, rng=rng))
            collector.handle(f"{site.base_topic}/report", report, mid=0, qos=0)
        fill_s = time.monotonic() - started
        assert collector.api is not None
        url = f"{collector.api.url}/api/v1/readiness"
        province = sites[0].province
        results: dict[str, Any] = {"sites": len(collector.verdicts), "fill_s": fill_s}
        # The HTTP client runs in another process, so it does not share the GIL with the server.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            for label, params in (("all", {}), ("province", {"province": province})):
                times, body_bytes, count = pool.submit(
                    time_gets, url, params, args.requests, headers
                ).result()
                results[label] = {
                    "p50": percentile(times, 50),
                    "p99": percentile(times, 99),
                    "max": max(times),
                    "bytes": body_bytes,
                    "count": count,
                    "server_ms": server_side_ms(collector, params),
                }
                log(f"api {label}: p50 {results[label]['p50']:.1f} ms")
        results["province"]["name"] = province
    finally:
        collector.stop()
    return results


def time_gets(
    url: str, params: dict[str, str], n: int, headers: dict[str, str]
) -> tuple[list[float], int, int]:
    """(ms per GET, response bytes, sites in the response) for ``n`` sequential GETs."""
    times: list[float] = []
    body = b""
    with httpx.Client(timeout=30, headers=headers) as http:
        for _ in range(n):
            started = time.perf_counter()
            response = http.get(url, params=params)
            body = response.content
            times.append((time.perf_counter() - started) * 1000.0)
            response.raise_for_status()
    return times, len(body), int(json.loads(body)["count"])


def server_side_ms(collector: Collector, params: dict[str, str], n: int = 20) -> float:
    """Median ms of what the handler does before sending: select, count, join the JSON."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        selected = collector.verdicts.select(**params)
        counts: dict[str, int] = {}
        for status in selected:
            counts[status.verdict] = counts.get(status.verdict, 0) + 1
        collector.verdicts.select_json(selected)
        times.append((time.perf_counter() - started) * 1000.0)
    return percentile(times, 50)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Report -> verdict latency, and /api/v1/readiness time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sites", type=int, default=1_000, help="reporting sites (latency)")
    parser.add_argument("--interval", type=float, default=10.0, help="report interval_s")
    parser.add_argument("--duration", type=float, default=60.0, help="latency run, s")
    parser.add_argument("--warmup", type=float, default=5.0, help="first s discarded")
    parser.add_argument(
        "--broker-nodelay",
        action="store_true",
        help="add 'set_tcp_nodelay true' to the shipped Mosquitto config (what-if)",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        help="write each report's send time (epoch s), site and latency (ms) to FILE",
    )
    parser.add_argument("--no-influx", action="store_true", help="collector without history")
    parser.add_argument("--api-sites", type=int, default=10_000, help="sites for the API test")
    parser.add_argument(
        "--api-auth",
        choices=["anonymous", "token"],
        default="anonymous",
        help="API reads open (http.anonymous_read), or each with a noc bearer token",
    )
    parser.add_argument("--requests", type=int, default=200, help="GETs per API query")
    parser.add_argument("--only", choices=["latency", "api"], help="run one part only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kienco-bench-verdicts-"))
    latency: dict[str, Any] | None = None
    api: dict[str, Any] | None = None
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            log(f"temporary folder kept: {workdir}")
        else:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        broker = Mosquitto(workdir / "mosquitto")
        if args.broker_nodelay:  # a what-if: the shipped config leaves Nagle on
            with broker.conf.open("a") as conf:
                conf.write("set_tcp_nodelay true\n")
        broker.start()
        cleanup.callback(broker.stop)
        if args.only in (None, "latency"):
            influx = None
            if not args.no_influx:
                influx = Influxd.start(workdir / "influx")
                cleanup.callback(influx.stop)
            latency = measure_latency(args, workdir, broker, influx)
        if args.only in (None, "api"):
            api = measure_api(args, workdir, broker)
    total_s = time.monotonic() - started

    rows: list[tuple[str, Any]] = []
    if latency is not None:
        rows += [
            ("latency: sites x interval", f"{args.sites} x {args.interval:g} s"),
            ("latency: InfluxDB", "off" if args.no_influx else "on"),
            ("latency: broker set_tcp_nodelay", args.broker_nodelay),
            ("latency: reports sent (after warm-up)", f"{latency['sent']} ({latency['expected']})"),
            ("latency: statuses matched", latency["count"]),
            ("latency: p50 ms", latency["p50"]),
            ("latency: p90 ms", latency["p90"]),
            ("latency: p99 ms", latency["p99"]),
            ("latency: max ms", latency["max"]),
            ("latency: sends > 1 slot late", latency["late_sends"]),
            ("latency: collector CPU % of a core", latency["collector_cpu"]),
            ("latency: collector peak RSS MB", latency["collector_rss"]),
            ("latency: collector full GCs (generation 2)", latency["gc2_count"]),
            ("latency: collector longest full GC ms", latency["gc2_max_ms"]),
            ("latency: collector longest GC of any generation ms", latency["gc_max_ms"]),
            (
                "goal latency p99 <= 100 ms",
                verdict_of(latency["p99"] <= GOAL_MS and latency["count"] > 0),
            ),
        ]
    if api is not None:
        every, one = api["all"], api["province"]
        rows += [
            ("api: sites in the collector", api["sites"]),
            ("api: fill time s (handle() x 2 per site)", api["fill_s"]),
            ("api: all sites p50 ms", every["p50"]),
            ("api: all sites p99 ms", every["p99"]),
            ("api: all sites max ms", every["max"]),
            ("api: all sites response bytes", every["bytes"]),
            ("api: all sites count", every["count"]),
            ("api: all sites server-side select+JSON ms", every["server_ms"]),
            (f"api: province={one['name']} p50 ms", one["p50"]),
            (f"api: province={one['name']} p99 ms", one["p99"]),
            (f"api: province={one['name']} response bytes", one["bytes"]),
            (f"api: province={one['name']} count", one["count"]),
            (f"api: province={one['name']} server-side ms", one["server_ms"]),
            ("goal api p99 <= 100 ms (all sites)", verdict_of(every["p99"] <= GOAL_MS)),
            ("goal api p99 <= 100 ms (province)", verdict_of(one["p99"] <= GOAL_MS)),
        ]
    rows += [("cores on this machine (shared)", os.cpu_count()), ("benchmark wall s", total_s)]
    print_summary("kienco verdicts benchmark", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
