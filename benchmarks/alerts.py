"""Alerts: verdict change → alert in Alertmanager, and a province's 1 000 sites losing mains.

Real components on loopback: Prometheus Alertmanager (Debian's, with the shipped
``firmware-configs/alertmanager/alertmanager.yml``, its receivers pointed at a webhook
in this process), Mosquitto (the collector's broker; its filter matches nothing here),
and the real collector in this process, fed wire messages through ``Collector.handle``
(what its MQTT client calls), its alerts section as shipped (resend 60 s, batch 0.2 s).

a. Latency. ``--background`` sites report every 10 s throughout (load on the collector).
   ``--trials`` times, one of 50 test stations goes on battery: t0 is its verdict change
   (the collector's ``on_status``), t1 the first ``GET /api/v2/alerts`` (polled every
   10 ms) that shows its SiteOnBattery; then it goes back on mains, and the resolution
   is timed the same way (verdict change → gone from the active alerts). The policy's
   hold is 0 here, so a recovery shows at once (the hold is the rules' business).
b. Storm. A fresh collector and Alertmanager (the shipped timings: group_wait 30 s);
   ``--sites`` sites of one province (stations of three carriers, one in ten a meeting
   point) on mains, then all on battery at once: POST /api/v2/alerts calls made, alerts
   delivered, time until all are in Alertmanager, and the notifications its receivers
   got after group_wait (one per route is the goal).

Goal: p99 ≤ 2 s.

    /work/main/.venv/bin/python benchmarks/alerts.py
    /work/main/.venv/bin/python benchmarks/alerts.py --trials 100 --sites 1000 --json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from _common import log, percentile, print_summary

from collector.config import CollectorConfig
from collector.service import Collector
from contract.topics import topic as topic_of
from contract.wire import DeviceDecl, LinkReading, Meta, PathDecl, PowerReading, Report, Status
from kienco.local_services import Alertmanager, Mosquitto, alertmanager_config
from rules import Policy

OPERATORS = ("viettel", "vnpt", "mobifone")
PATHS = (("fibre-a", "fibre", "duct-1"), ("mw-b", "microwave", "tower-2"))
NO_HOLD = {"hold_s": 0}


class Webhook:
    """Alertmanager's receivers post here: notifications counted per receiver."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int, str]] = []  # receiver, alerts, status
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver = self.path.rstrip("/").rsplit("/", 1)[-1]
                with hook.lock:
                    hook.received.append((receiver, len(body["alerts"]), body["status"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def meta(site: str, province: str, operator: str, kind: str, at: datetime) -> Meta:
    return Meta(
        site=site,
        province=province,
        site_kind=kind,  # type: ignore[arg-type]
        name=f"Trạm {site}",
        operator=operator,
        paths=tuple(PathDecl(path=p, media=m, srlg=(g,)) for p, m, g in PATHS),  # type: ignore[arg-type]
        devices=(DeviceDecl(device="rect1", role="rectifier"),),
        interval_s=10,
        agent_version="bench",
        at=at,
    )


def report(site: str, province: str, seq: int, at: datetime, *, mains: bool) -> Report:
    power = PowerReading(
        device="rect1",
        mains_present=mains,
        on_battery=not mains,
        battery_status="normal",
        battery_charge_pct=100.0 if mains else 95.0,
        battery_runtime_s=6 * 3600.0,  # above every kind's "dark soon": SiteOnBattery
        load_pct=30.0,
    )
    links = tuple(
        LinkReading(path=p, media=m, srlg=(g,), up=True, rtt_ms=15.0, loss_pct=0.0, probes_sent=5)  # type: ignore[arg-type]
        for p, m, g in PATHS
    )
    return Report(
        site=site,
        province=province,
        seq=seq,
        taken_at=at,
        interval_s=10,
        power=(power,),
        links=links,
    )


def send(collector: Collector, message: Meta | Report) -> None:
    topic = topic_of(message.province, message.site, message.kind)
    collector.handle(topic, message.model_dump_json(exclude_none=True).encode(), 0, 0)


@contextmanager
def services(
    work: Path, *, test_timings: bool
) -> Iterator[tuple[Alertmanager, Webhook, Mosquitto]]:
    hook = Webhook()
    timings = {"group_wait": "1s", "group_interval": "1s"} if test_timings else {}
    am = Alertmanager(work / "am", alertmanager_config(hook.url, **timings))
    am.start()
    broker = Mosquitto(work / "mqtt")
    broker.start()
    try:
        yield am, hook, broker
    finally:
        broker.stop()
        am.stop()
        hook.server.shutdown()


def collector_for(
    work: Path, am: Alertmanager, broker: Mosquitto, name: str, **kw: Any
) -> Collector:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"bench-{name}",
                "topic_filter": "kienco/v1/none/none/#",
            },
            "influx": None,
            "data_dir": str(work / name),
            "http": {"port": 0},
            "alerts": {"alertmanagers": [am.url], "external_url": "https://noc.example.vn"},
        }
    )
    policy = Policy.model_validate({"backup_power": NO_HOLD, "multipath": NO_HOLD})
    collector = Collector(config, policy=policy, **kw)
    collector.start()
    return collector


def metric(collector: Collector, name: str) -> float:
    value = collector.metrics.registry.get_sample_value(name.split("{")[0], _labels(name))
    return float(value or 0.0)


def _labels(name: str) -> dict[str, str]:
    if "{" not in name:
        return {}
    inner = name.split("{", 1)[1].rstrip("}")
    return {k: v.strip('"') for k, v in (part.split("=", 1) for part in inner.split(","))}


# --- a. latency


def latency(work: Path, trials: int, background: int) -> dict[str, Any]:
    changed: dict[tuple[str, str], float] = {}  # (site, state) -> perf_counter of the change
    lock = threading.Lock()

    def on_status(status: Status) -> None:
        with lock:
            changed[(status.site, status.station_state)] = time.perf_counter()

    with services(work, test_timings=True) as (am, _hook, broker):
        collector = collector_for(work, am, broker, "latency", on_status=on_status)
        now = datetime.now(UTC)
        stations = [f"lt-bts-{i:03d}" for i in range(50)]
        quiet = [f"lt-bg-{i:05d}" for i in range(background)]
        for i, site in enumerate(stations + quiet):
            send(collector, meta(site, "hp", OPERATORS[i % 3], "station", now))
            send(collector, report(site, "hp", 1, now, mains=True))
        stop = threading.Event()

        def background_reports() -> None:
            seq, rng = 1, random.Random(7)
            while not stop.is_set():
                start = time.monotonic()
                seq += 1
                for site in quiet:  # each every 10 s, spread over the 10 s
                    if stop.wait(10 / max(1, len(quiet)) * rng.uniform(0.5, 1.5)):
                        return
                    send(collector, report(site, "hp", seq, datetime.now(UTC), mains=True))
                stop.wait(max(0.0, 10 - (time.monotonic() - start)))

        feeder = threading.Thread(target=background_reports, daemon=True)
        feeder.start()
        client = httpx.Client(base_url=am.url, timeout=5)

        def shows(site: str) -> bool:
            found = client.get("/api/v2/alerts", params={"filter": f'site="{site}"'}).json()
            return any(a["labels"]["alertname"] == "SiteOnBattery" for a in found)

        def wait_for(site: str, present: bool) -> float:
            deadline = time.perf_counter() + 30
            while time.perf_counter() < deadline:
                if shows(site) == present:
                    return time.perf_counter()
                time.sleep(0.01)
            raise RuntimeError(f"{site}: alert {'never came' if present else 'never left'}")

        fired, resolved = [], []
        seq = 1
        for trial in range(trials):
            site = stations[trial % len(stations)]
            seq += 1
            send(collector, report(site, "hp", seq, datetime.now(UTC), mains=False))
            seen = wait_for(site, True)
            with lock:
                fired.append(seen - changed[(site, "up_battery")])
            seq += 1
            send(collector, report(site, "hp", seq, datetime.now(UTC), mains=True))
            gone = wait_for(site, False)
            with lock:
                resolved.append(gone - changed[(site, "up_commercial")])
            if trial % 25 == 24:
                log(f"latency: {trial + 1}/{trials}, p99 so far {percentile(fired, 99):.3f} s")
        stop.set()
        posts = metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}')
        collector.stop()
    return {
        "trials": trials,
        "background_sites": background,
        "fire_p50_s": percentile(fired, 50),
        "fire_p99_s": percentile(fired, 99),
        "fire_max_s": max(fired),
        "resolve_p50_s": percentile(resolved, 50),
        "resolve_p99_s": percentile(resolved, 99),
        "posts": posts,
    }


# --- b. a province's sites lose mains at once


def storm(work: Path, count: int) -> dict[str, Any]:
    with services(work, test_timings=False) as (am, hook, broker):
        collector = collector_for(work, am, broker, "storm")
        now = datetime.now(UTC)
        sites = []
        for i in range(count):
            kind = "meeting_point" if i % 10 == 9 else "station"
            operator = "vnpt" if kind == "meeting_point" else OPERATORS[i % 3]
            sites.append(
                (f"hp-{'dc' if kind == 'meeting_point' else 'bts'}-{i:05d}", operator, kind)
            )
        for site, operator, kind in sites:
            send(collector, meta(site, "hp", operator, kind, now))
            send(collector, report(site, "hp", 1, now, mains=True))
        time.sleep(2)
        posts0 = metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}')
        delivered0 = metric(collector, "kienco_alerts_delivered_total")
        later = now + timedelta(seconds=10)
        started = time.perf_counter()
        for site, _, _ in sites:  # the typhoon: every site at once
            send(collector, report(site, "hp", 2, later, mains=False))
        fed = time.perf_counter() - started
        client = httpx.Client(base_url=am.url, timeout=30)
        while True:
            active = client.get("/api/v2/alerts", params={"filter": 'alertname="SiteOnBattery"'})
            if len(active.json()) >= count:
                break
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"only {len(active.json())} of {count} alerts arrived")
            time.sleep(0.05)
        all_in = time.perf_counter() - started
        posts = metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}') - posts0
        delivered = metric(collector, "kienco_alerts_delivered_total") - delivered0
        log("storm: all alerts in Alertmanager; waiting out group_wait (30 s shipped) …")
        time.sleep(40)
        with hook.lock:
            notes = list(hook.received)
        collector.stop()
    per_route = Counter(receiver for receiver, _, _ in notes)
    alerts_per_route = Counter()
    for receiver, n, _ in notes:
        alerts_per_route[receiver] += n
    return {
        "sites": count,
        "fed_in_s": fed,
        "all_in_alertmanager_s": all_in,
        "alertmanager_posts": posts,
        "alerts_delivered": delivered,
        "notifications": len(notes),
        "notifications_per_route": dict(sorted(per_route.items())),
        "alerts_per_route": dict(sorted(alerts_per_route.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--background", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--only", choices=["latency", "storm"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kienco-alerts-") as tmp:
        work = Path(tmp)
        if args.only in (None, "latency"):
            lat = latency(work, args.trials, args.background)
            rows += [
                ("latency trials", lat["trials"]),
                ("background sites (report every 10 s)", lat["background_sites"]),
                ("verdict change -> alert in Alertmanager p50 (s)", lat["fire_p50_s"]),
                ("verdict change -> alert in Alertmanager p99 (s)", lat["fire_p99_s"]),
                ("verdict change -> alert in Alertmanager max (s)", lat["fire_max_s"]),
                ("recovery -> alert resolved p50 (s)", lat["resolve_p50_s"]),
                ("recovery -> alert resolved p99 (s)", lat["resolve_p99_s"]),
                ("goal p99 <= 2 s", "met" if lat["fire_p99_s"] <= 2 else "NOT met"),
            ]
        if args.only in (None, "storm"):
            st = storm(work, args.sites)
            rows += [
                ("storm: sites losing mains at once", st["sites"]),
                ("storm: reports handed to the collector in (s)", st["fed_in_s"]),
                ("storm: all alerts in Alertmanager after (s)", st["all_in_alertmanager_s"]),
                ("storm: POST /api/v2/alerts calls", st["alertmanager_posts"]),
                ("storm: alerts delivered in them", st["alerts_delivered"]),
                ("storm: notifications sent by Alertmanager", st["notifications"]),
                ("storm: notifications per route", json.dumps(st["notifications_per_route"])),
                ("storm: alerts per route", json.dumps(st["alerts_per_route"])),
            ]
    print_summary("kienco alerts through Alertmanager", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
