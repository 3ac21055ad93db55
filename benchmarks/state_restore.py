"""Restart cost: how long a collector carrying N sites takes to come back with every verdict,
what a site costs in memory, and what saving the state costs.

What it measures (loopback only; Mosquitto from the shipped config, no InfluxDB):

1. In this process. N sites (default 10 000, over the 63 benchmark provinces, one in four a
   meeting point) are built as the collector builds them: a meta and --reports reports each
   (realistic readings from _common; a quarter of the sites on battery, so the discharge
   history behind the runtime cross-check fills), folded by ``collector.state.SiteStates``
   and judged by ``collector.readiness.Verdicts`` under the shipped policy. Then one
   ``StateStore.save_changed()`` writes them all to ``state.sqlite`` (time, µs per site,
   file size), and a ``StateStore.restore()`` into an empty SiteStates + Verdicts reads
   them back (time, µs per site); every restored status must equal the one saved.
   The save cost per site is what the saver thread spends per changed site: at R changed
   sites a second it takes R × that of one core, off the ingest thread (GIL shared).
2. The real collector. ``kienco collector run`` (a subprocess) is started on an empty data
   folder (its RSS with no site), stopped, then started on the folder holding the N saved
   sites: start → /healthz 200, and start → the readiness API serving all N verdicts;
   RSS with N sites, so memory per site = (RSS_N − RSS_0) / N. Then SIGTERM (the clean stop
   saves what changed) and a second start: verdicts that changed across that restart
   (signature: verdict, station state, reason codes) must be 0.

The ingest-path cost end to end: ``benchmarks/ingest.py --state on`` vs ``--state off``
(the same run with and without the saver thread).

Run (about a minute with the defaults):

    /work/main/.venv/bin/python benchmarks/state_restore.py
    /work/main/.venv/bin/python benchmarks/state_restore.py --sites 2000 --json
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import CollectorProcess, log, make_meta, make_report, make_sites, print_summary

from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_store import StateStore
from contract.wire import PowerReading, Report
from kienco.local_services import Mosquitto
from rules import load_policy


def _on_battery(report: Report, step: int) -> Report:
    """The same report with its UPS on battery, charge falling by 2 % a report."""
    ups = report.power[0].model_copy(
        update={
            "mains_present": False,
            "on_battery": True,
            "battery_charge_pct": max(5.0, 95.0 - 2.0 * step),
            "battery_runtime_s": max(600.0, 14_000.0 - 300.0 * step),
        }
    )
    power: tuple[PowerReading, ...] = (ups, *report.power[1:])
    return report.model_copy(update={"power": power})


def build(count: int, reports: int, interval_s: float) -> tuple[SiteStates, Verdicts, float]:
    """N sites folded and judged as the collector would; the seconds it took."""
    policy = load_policy()
    states = SiteStates()
    verdicts = Verdicts(states, policy)
    rng = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for index, site in enumerate(make_sites(count)):
        states.apply_meta(make_meta(site, now - timedelta(days=1), interval_s=interval_s))
        for step in range(reports):
            at = now - timedelta(seconds=interval_s * (reports - 1 - step))
            report = make_report(site, step, at, interval_s=interval_s, rng=rng)
            if index % 4 == 0:
                report = _on_battery(report, step)
            states.apply_report(report, received_at=at)
        verdicts.evaluate(site.site, now)
    return states, verdicts, time.perf_counter() - started


def _signatures(url: str) -> dict[str, tuple[Any, ...]]:
    sites = httpx.get(f"{url}/api/v1/readiness", timeout=120).json()["sites"]
    return {
        s["site"]: (s["verdict"], s.get("station_state"), tuple(r["code"] for r in s["reasons"]))
        for s in sites
    }


def _serving(collector: CollectorProcess, count: int, timeout_s: float) -> float:
    """Seconds until the readiness API serves ``count`` verdicts."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(f"{collector.url}/api/v1/readiness", timeout=120).json()
        if answer["count"] >= count:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"the collector served fewer than {count} verdicts in {timeout_s} s")


def _timed_start(collector: CollectorProcess) -> float:
    started = time.perf_counter()
    collector.start(timeout_s=300)
    return time.perf_counter() - started


def _cpu_s(collector: CollectorProcess) -> float:
    """CPU seconds the collector process has used (wall time says more about the machine's
    other load than about the collector on a shared 2-core box)."""
    times = psutil.Process(collector.pid).cpu_times()
    return float(times.user + times.system)


def run(args: argparse.Namespace, workdir: Path) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("sites", args.sites), ("reports per site", args.reports)]
    process = psutil.Process()
    rss_before = process.memory_info().rss
    states, verdicts, build_s = build(args.sites, args.reports, args.interval)
    rss_after = process.memory_info().rss
    log(f"built {args.sites} sites in {build_s:.1f} s")
    rows += [
        ("build (fold + judge), s", build_s),
        ("in-process RSS per site, KB", (rss_after - rss_before) / args.sites / 1024),
    ]

    data = workdir / "collector" / "collector-data"
    data.mkdir(parents=True)
    store = StateStore(data / "state.sqlite", states, verdicts, None, save_every_s=1.0)
    started, cpu = time.perf_counter(), time.process_time()
    saved = store.save_changed()
    save_s, save_cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    size = (data / "state.sqlite").stat().st_size + sum(
        p.stat().st_size for p in data.glob("state.sqlite-*")
    )
    rows += [
        ("save all, s (CPU s)", f"{save_s:.2f} ({save_cpu:.2f})"),
        ("save per site, CPU µs", save_cpu / saved * 1e6),
        ("state file, MB", size / 1e6),
        ("state file per site, KB", size / saved / 1024),
    ]

    fresh_states = SiteStates()
    fresh = Verdicts(fresh_states, load_policy())
    reader = StateStore(data / "state.sqlite", fresh_states, fresh, None, save_every_s=1.0)
    now = datetime.now(UTC)
    cpu = time.process_time()
    restored = reader.restore(now, listed_in=lambda _site: None, not_before=now)
    restore_cpu = time.process_time() - cpu
    reader.close()
    same = sum(1 for s in states.all() if fresh.json_of(s.site) == verdicts.json_of(s.site))
    rows += [
        ("restore all (in process), s (CPU s)", f"{restored.seconds:.2f} ({restore_cpu:.2f})"),
        ("restore per site, CPU µs", restore_cpu / max(1, restored.sites) * 1e6),
        ("statuses restored identical", f"{same}/{args.sites}"),
    ]
    del states, verdicts, fresh_states, fresh

    log("starting Mosquitto and the collector (empty, then with the saved sites)")
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    saved_state = workdir / "state.sqlite"
    shutil.move(data / "state.sqlite", saved_state)
    for part in data.glob("state.sqlite-*"):
        part.unlink()
    collector = CollectorProcess(
        workdir / "collector",
        broker.port,
        None,
        client_id=f"bench-restart-{os.getpid()}",
        topic_filter="kienco/v1/+/+/#",
        state={"restore_grace_s": args.grace},
    )
    try:
        empty_start_s = _timed_start(collector)
        empty_cpu = _cpu_s(collector)
        time.sleep(1.0)
        rss_empty = psutil.Process(collector.pid).memory_info().rss
        collector.stop()
        for part in data.glob("state.sqlite*"):
            part.unlink()
        shutil.copy(saved_state, data / "state.sqlite")

        healthy_s = _timed_start(collector)
        serving_s = healthy_s + _serving(collector, args.sites, 300)
        serving_cpu = _cpu_s(collector)
        rss_full = psutil.Process(collector.pid).memory_info().rss
        before = _signatures(collector.url)
        log(f"restored: healthy after {healthy_s:.2f} s, all verdicts after {serving_s:.2f} s")
        started = time.perf_counter()
        collector.stop()
        stop_s = time.perf_counter() - started
        again_s = _timed_start(collector)
        again_serving_s = again_s + _serving(collector, args.sites, 300)
        after = _signatures(collector.url)
        changed = sum(1 for site, v in before.items() if after.get(site) != v)
        rows += [
            (
                "collector start, empty: healthy, s (CPU s)",
                f"{empty_start_s:.2f} ({empty_cpu:.2f})",
            ),
            (f"collector start, {args.sites} sites: healthy, s", healthy_s),
            (
                f"collector start, {args.sites} sites: all verdicts served, s (CPU s)",
                f"{serving_s:.2f} ({serving_cpu:.2f})",
            ),
            ("collector RSS empty, MB", rss_empty / 1e6),
            (f"collector RSS with {args.sites} sites, MB", rss_full / 1e6),
            ("collector memory per site, KB", (rss_full - rss_empty) / args.sites / 1024),
            ("clean stop (final save), s", stop_s),
            ("second restart: all verdicts served, s", again_serving_s),
            ("verdicts changed by the restart", changed),
            ("verdicts missing after the restart", sum(1 for s in before if s not in after)),
            ("machine load average (1 min) at the end", os.getloadavg()[0]),
        ]
    finally:
        collector.stop()
        broker.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--reports", type=int, default=10, help="reports folded per site")
    parser.add_argument("--interval", type=float, default=60.0, help="report interval_s")
    parser.add_argument("--grace", type=float, default=30.0, help="state.restore_grace_s")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kienco-restart-"))
    try:
        rows = run(args, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_summary(f"collector restart with {args.sites} sites", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
