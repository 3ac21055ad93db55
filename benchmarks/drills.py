"""Drills: break the real pipe the way a storm or a tired operator does, and count.

Each drill runs on real components started here on loopback — Mosquitto with the
shipped config, InfluxDB 1.6, the collector as ``kienco collector run`` in its own
process — and ends with the same four numbers: reports **published** (acknowledged
by the broker), **stored** (distinct reports in InfluxDB), **lost** and **doubled**.

    collector-kill      SIGKILL the collector twice while reports pour in at full rate
    influx-down         stop InfluxDB for --influx-down-s (default 600 s) under steady load
    broker-restart      restart Mosquitto under real agents; the collector's reconnect time
    collector-restart   restart the collector carrying 10 000 sites: does any verdict change?
    agent-*             the agent's own drills (benchmarks/drills_agent.py), when present

    .venv/bin/python benchmarks/drills.py                       # all, ~20 min
    .venv/bin/python benchmarks/drills.py --quick               # all, shortened outages
    .venv/bin/python benchmarks/drills.py collector-kill --json

The figures belong in docs/drills.md with the date and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from _common import (
    CollectorProcess,
    Listeners,
    Site,
    log,
    make_meta,
    make_report,
    make_sites,
    print_summary,
    wire,
)
from paho.mqtt.enums import CallbackAPIVersion

from kienco.local_services import Influxd, Mosquitto

# --- components ---------------------------------------------------------------------------------


class RestartableInflux:
    """``influxd`` that can be stopped and started again on the same port and data."""

    def __init__(self, root: Path) -> None:
        self.server = Influxd.start(root)
        self.url = self.server.url
        self.command: list[str] = [str(a) for a in self.server.process.args]  # type: ignore[union-attr]

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        log_file = (self.server.root / "influxd.log").open("ab")
        self.server.process = subprocess.Popen(
            self.command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/ping", timeout=1.0).status_code == 204:
                    return
            time.sleep(0.1)
        raise RuntimeError("influxd did not come back")

    def query(self, database: str, q: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.url}/query", params={"db": database, "q": q, "epoch": "ns"}, timeout=60
        ).json()
        rows: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series["values"]:
                    rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows


@dataclass
class Stack:
    """Mosquitto (shipped config) + InfluxDB + the collector process, in one work folder."""

    workdir: Path
    database: str = "kienco_drill"
    broker: Mosquitto = field(init=False)
    influx: RestartableInflux = field(init=False)
    collector: CollectorProcess = field(init=False)

    def __post_init__(self) -> None:
        (self.workdir / "mosquitto").mkdir(parents=True, exist_ok=True)
        self.broker = Mosquitto(self.workdir / "mosquitto")
        self.broker.start()
        self.influx = RestartableInflux(self.workdir / "influx")
        self.collector = CollectorProcess(
            workdir=self.workdir / "collector",
            broker_port=self.broker.port,
            influx_url=self.influx.url,
            database=self.database,
            batch_max_messages=500,
            batch_max_delay_s=0.1,
            client_id="drill-collector",
        )
        self.collector.start()

    def close(self) -> None:
        for stop in (self.collector.stop, self.broker.stop, self.influx.stop):
            with contextlib.suppress(Exception):
                stop()

    def kill_collector(self) -> None:
        assert self.collector.process is not None
        os.kill(self.collector.pid, signal.SIGKILL)
        self.collector.process.wait()
        self.collector.process = None

    def counts(self) -> tuple[int, int]:
        """(stored reports, doubled reports): distinct (site, seq) and rows beyond them."""
        rows = self.influx.query(
            self.database,
            "SELECT count(seq) AS n, count(distinct(seq)) AS d FROM report GROUP BY site",
        )
        stored = sum(int(r["d"]) for r in rows)
        doubled = sum(int(r["n"]) - int(r["d"]) for r in rows)
        return stored, doubled

    def wait_stored(self, expected: int, timeout_s: float) -> tuple[int, int, float]:
        """Wait until ``expected`` reports are stored (or nothing moves for a while)."""
        start = time.monotonic()
        last, last_change = -1, start
        while True:
            stored, doubled = self.counts()
            now = time.monotonic()
            if stored != last:
                last, last_change = stored, now
            if stored >= expected or now - start > timeout_s or now - last_change > 60:
                return stored, doubled, now - start
            time.sleep(1.0)


class Publisher:
    """A paho MQTT 5 client publishing at QoS 1; counts what the broker acknowledged."""

    def __init__(self, port: int, client_id: str) -> None:
        self.acked = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, *_: object) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def wait_all(self, total: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < total and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _reports(
    sites: Sequence[Site], per_site: int, start: datetime, interval_s: float
) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(7)
    for seq in range(per_site):
        at = start + timedelta(seconds=seq * interval_s)
        for site in sites:
            report = make_report(site, seq, at, interval_s=interval_s, rng=rng)
            yield f"{site.base_topic}/report", wire(report)


def _metas(publisher: Publisher, sites: Sequence[Site], interval_s: float) -> None:
    now = datetime.now(UTC)
    for site in sites:
        publisher.publish(
            f"{site.base_topic}/meta", wire(make_meta(site, now, interval_s=interval_s))
        )


def _outcome(published: int, stored: int, doubled: int) -> list[tuple[str, Any]]:
    return [
        ("published (PUBACKed)", published),
        ("stored (distinct in InfluxDB)", stored),
        ("lost", max(0, published - stored)),
        ("doubled", doubled),
    ]


# --- drills -------------------------------------------------------------------------------------


def drill_collector_kill(workdir: Path, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """SIGKILL the collector at 1/3 and 2/3 of a full-rate stream; restart it each time."""
    stack = Stack(workdir)
    sites = make_sites(100)
    per_site = 200 if not args.quick else 60
    total = len(sites) * per_site
    publisher = Publisher(stack.broker.port, "drill-publisher")
    try:
        _metas(publisher, sites, 30.0)
        start = datetime.now(UTC) - timedelta(seconds=per_site * 30)
        t0 = time.monotonic()
        feeder = threading.Thread(
            target=lambda: [
                publisher.publish(t, p) for t, p in _reports(sites, per_site, start, 30.0)
            ],
            daemon=True,
        )
        feeder.start()
        for _ in range(2):  # kill it while it is busy: after it took in a quarter of the stream
            received = 0.0
            deadline = time.monotonic() + 60
            while received < total / 4 and time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    received = stack.collector.metrics().get("kienco_messages_received_total", 0.0)
                time.sleep(0.02)
            log(f"collector-kill: SIGKILL after it received {received:.0f}")
            stack.kill_collector()
            stack.collector.start()
        feeder.join()
        publisher.wait_all(total + len(sites))
        rate = total / (time.monotonic() - t0)
        stored, doubled, waited = stack.wait_stored(total, timeout_s=300)
        return [
            (f"reports (100 sites x {per_site})", total),
            ("publish rate, reports/s", rate),
            ("collector SIGKILLs", 2),
            *_outcome(publisher.acked - len(sites), stored, doubled),
            ("all stored within, s", waited),
        ]
    finally:
        publisher.close()
        stack.close()


def drill_influx_down(workdir: Path, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Steady load; InfluxDB stopped for ``--influx-down-s``; then it drains the spool."""
    down_s = 60.0 if args.quick else args.influx_down_s
    rate = args.rate
    stack = Stack(workdir)
    sites = make_sites(100)
    publisher = Publisher(stack.broker.port, "drill-publisher")
    max_spool = 0.0
    try:
        _metas(publisher, sites, 10.0)
        before_s, after_s = 30.0, 60.0
        run_s = before_s + down_s + after_s
        per_site = int(run_s * rate / len(sites))
        start = datetime.now(UTC) - timedelta(seconds=per_site * 10)
        t0 = time.monotonic()
        stopped = restarted = False
        published = 0
        for topic, payload in _reports(sites, per_site, start, 10.0):
            publisher.publish(topic, payload)
            published += 1
            elapsed = time.monotonic() - t0
            if not stopped and elapsed >= before_s:
                log(f"influx-down: stopping InfluxDB for {down_s:.0f} s")
                stack.influx.stop()
                stopped = True
            if stopped and not restarted and elapsed >= before_s + down_s:
                log("influx-down: starting InfluxDB again")
                stack.influx.start()
                restarted = True
            if published % 200 == 0:
                with contextlib.suppress(Exception):
                    spool = stack.collector.metrics().get("kienco_spool_batches", 0.0)
                    max_spool = max(max_spool, spool)
            ahead = published / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if not restarted:
            stack.influx.start()
        publisher.wait_all(published + len(sites))
        stored, doubled, waited = stack.wait_stored(published, timeout_s=900)
        metrics = stack.collector.metrics()
        return [
            ("load, reports/s", rate),
            ("InfluxDB down, s", down_s),
            ("max spool depth, batches", max_spool),
            ("batches spooled", metrics.get("kienco_batches_spooled_total", float("nan"))),
            ("batches drained", metrics.get("kienco_batches_drained_total", float("nan"))),
            *_outcome(publisher.acked - len(sites), stored, doubled),
            ("all stored, s after the load ended", waited),
        ]
    finally:
        publisher.close()
        stack.close()


def _agent_site(root: Path, index: int, broker_url: str, port: int) -> Any:
    from agent.config import SiteConfig

    site = f"dr-bts-{index:03d}"
    return SiteConfig.model_validate(
        {
            "site": site,
            "province": "dr",
            "kind": "station",
            "name": f"Trạm {site}",
            "interval_s": 1,
            "broker": {"url": broker_url},
            "outbox": {"path": str(root / f"{site}.outbox.sqlite")},
            "disk_path": str(root),
            "paths": [
                {
                    "path": "fibre-a",
                    "media": "fibre",
                    "provider": "vnpt",
                    "target": {"host": "127.0.0.1", "port": port},
                    "probes": 1,
                }
            ],
        }
    )


def _healthy_within(url: str, timeout_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        with contextlib.suppress(httpx.TransportError, ValueError):
            metrics = httpx.get(f"{url}/metrics", timeout=1.0).text
            if "\nkienco_broker_connected 1.0" in metrics:
                return time.monotonic() - start
        time.sleep(0.05)
    return None


def _outbox_depth(path: Path) -> int:
    db = sqlite3.connect(path)
    with contextlib.closing(db):
        (depth,) = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
    return int(depth)


def drill_broker_restart(workdir: Path, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Real agents at a 1 s interval; Mosquitto stopped for a while and started again."""
    from agent.runner import Agent

    down_s = 20.0 if args.quick else args.broker_down_s
    stack = Stack(workdir)
    listeners = Listeners(1)
    agents_root = workdir / "agents"
    agents_root.mkdir()
    configs = [_agent_site(agents_root, i, stack.broker.url, listeners.ports[0]) for i in range(5)]
    reconnect_s: float | None = None

    async def run() -> None:
        nonlocal reconnect_s
        stop = asyncio.Event()
        tasks = [asyncio.create_task(Agent(c).run(stop)) for c in configs]
        await asyncio.sleep(20)
        log(f"broker-restart: stopping Mosquitto for {down_s:.0f} s")
        await asyncio.to_thread(stack.broker.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(stack.broker.start)
        reconnect_s = await asyncio.to_thread(_healthy_within, stack.collector.url, 120)
        # Until every agent's outbox is empty again (its backlog delivered), at most 120 s.
        for _ in range(240):
            await asyncio.sleep(0.5)
            if all(_outbox_depth(c.outbox.path) == 0 for c in configs):
                break
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(run())
        published = 0
        for config in configs:
            db = sqlite3.connect(config.outbox.path)
            with contextlib.closing(db):
                # Every seq the agent made, whether still in its outbox or delivered.
                row = db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()
            published += int(row[0]) if row else 0
        kept = sum(_outbox_depth(c.outbox.path) for c in configs)
        stored, doubled, _ = stack.wait_stored(published - kept, timeout_s=120)
        return [
            ("agents (1 s interval)", len(configs)),
            ("still in the agents' outboxes at the end", kept),
            ("Mosquitto down, s", down_s),
            ("collector back, s after Mosquitto", reconnect_s),
            ("reports made by the agents", published),
            ("stored (distinct in InfluxDB)", stored),
            ("lost", max(0, published - kept - stored)),
            ("doubled", doubled),
        ]
    finally:
        listeners.stop()
        stack.close()


def _state_report(site: Site, seq: int, at: datetime, rng: random.Random, index: int) -> bytes:
    """A report in one of several states, so the restored verdicts are not all alike."""
    report = make_report(site, seq, at, interval_s=600.0, rng=rng)
    ups, generator = report.power
    links = report.links
    match index % 5:
        case 1:  # mains lost, on battery
            ups = ups.model_copy(
                update={"mains_present": False, "on_battery": True, "battery_runtime_s": 2400.0}
            )
        case 2:  # a path down
            links = (links[0].model_copy(update={"up": False, "rtt_ms": None}), *links[1:])
        case 3:  # on generator
            ups = ups.model_copy(update={"mains_present": False})
            generator = generator.model_copy(
                update={"generator_running": True, "on_generator": True}
            )
        case _:
            pass
    changed = report.model_copy(update={"power": (ups, generator), "links": links})
    return wire(changed)


def _verdicts(url: str) -> dict[str, tuple[Any, ...]]:
    sites = httpx.get(f"{url}/api/v1/readiness", timeout=60).json()["sites"]
    return {
        s["site"]: (s["verdict"], s.get("station_state"), tuple(r["code"] for r in s["reasons"]))
        for s in sites
    }


def drill_collector_restart(workdir: Path, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """10 000 sites in varied states; restart the collector; compare every verdict."""
    count = 2_000 if args.quick else 10_000
    stack = Stack(workdir)
    sites = make_sites(count)
    publisher = Publisher(stack.broker.port, "drill-publisher")
    rng = random.Random(11)
    try:
        _metas(publisher, sites, 600.0)
        now = datetime.now(UTC)
        for index, site in enumerate(sites):
            publisher.publish(f"{site.base_topic}/report", _state_report(site, 0, now, rng, index))
        publisher.wait_all(2 * count)
        deadline = time.monotonic() + 600
        before: dict[str, tuple[Any, ...]] = {}
        while time.monotonic() < deadline:  # every site judged on its report, not its meta
            before = _verdicts(stack.collector.url)
            judged = sum(1 for v in before.values() if "no_report_yet" not in v[2])
            if judged >= count:
                break
            time.sleep(2)
        time.sleep(3)  # let the last holds and snapshots settle
        before = _verdicts(stack.collector.url)
        log(f"collector-restart: {len(before)} verdicts; restarting the collector")
        t0 = time.monotonic()
        stack.collector.stop()
        stopped_s = time.monotonic() - t0
        t1 = time.monotonic()
        stack.collector.start(timeout_s=300)
        healthy_s = time.monotonic() - t1
        after = _verdicts(stack.collector.url)
        differ = [site for site, v in before.items() if after.get(site) != v]
        changed = len(differ)
        for site in differ[:3]:
            log(f"collector-restart: {site}: {before[site]} -> {after.get(site)}")
        missing = sum(1 for site in before if site not in after)
        return [
            ("sites", count),
            ("verdicts before", len(before)),
            ("stop (SIGTERM) took, s", stopped_s),
            ("start to healthy, s", healthy_s),
            ("verdicts right after the restart", len(after)),
            ("verdicts changed by the restart", changed),
            ("sites without a verdict after", missing),
        ]
    finally:
        publisher.close()
        stack.close()


DRILLS: dict[str, Callable[[Path, argparse.Namespace], list[tuple[str, Any]]]] = {
    "collector-kill": drill_collector_kill,
    "influx-down": drill_influx_down,
    "broker-restart": drill_broker_restart,
    "collector-restart": drill_collector_restart,
}


def _agent_drills() -> dict[str, Callable[[Path, argparse.Namespace], list[tuple[str, Any]]]]:
    """The agent's drills live beside these (benchmarks/drills_agent.py: ``DRILLS``)."""
    try:
        module = importlib.import_module("drills_agent")
    except ModuleNotFoundError:
        return {}
    return dict(getattr(module, "DRILLS", {}))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("drills", nargs="*", help="which drills (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter outages and fewer sites")
    parser.add_argument("--influx-down-s", type=float, default=600.0)
    parser.add_argument("--broker-down-s", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0, help="reports/s of the steady load")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    drills = {**DRILLS, **_agent_drills()}
    chosen = args.drills or list(drills)
    unknown = [d for d in chosen if d not in drills]
    if unknown:
        print(f"unknown drill(s) {unknown}; choose from {list(drills)}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    lost = 0
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"kienco-drill-{name}-") as tmp:
            log(f"drill {name}")
            try:
                rows = drills[name](Path(tmp), args)
            except Exception as exc:  # one broken drill must not hide the others' figures
                rows = [("error", f"{type(exc).__name__}: {exc}")]
        results[name] = dict(rows)
        lost += int(dict(rows).get("lost", 0) or 0) + int(dict(rows).get("doubled", 0) or 0)
        if not args.json:
            print_summary(f"drill: {name}", rows, as_json=False)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2, default=str))
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
