"""A national fleet's traffic on one machine: ``kienco simulate`` into Mosquitto, and
optionally into collector shards by province with InfluxDB.

What it measures, in one run (loopback only):

1. Connections. ``kienco simulate`` (its own process: asyncio, the light MQTT client of
   kienco/fleet/mqtt_lite.py) opens ``--connections`` MQTT connections to one Mosquitto
   started from the shipped config, each carrying ``--sites / --connections`` sites, and
   holds them idle for ``--hold`` s: the broker's RSS over its RSS before, and its CPU
   while idle (keepalives), per 10 000 connections.
2. Messages. Each site then reports every ``--interval`` s for ``--duration`` s (a storm:
   a province loses mains, fibre cut, sites go dark): reports/s the broker acknowledged,
   against the rate asked; the broker's and the simulator's CPU and RSS.
3. Collectors (``--shards N``, N > 0): N real collectors (``kienco collector run``), the
   34 provinces dealt over them (``provinces:``), InfluxDB on. Sampled every 2 s: each
   shard's reports accepted and acked, and ``kienco_report_lag_seconds`` (receive time
   minus the newest report's taken_at); after the window, how long until every report
   made was accepted (catch-up). What saturates shows in the CPU figures and the
   machine's busy CPU (2 cores here, shared with other work: the summary shows how much
   was not this benchmark).
4. Where the shards' time goes (``--profile``): py-spy on every shard over the window,
   the samples holding the GIL summed and split by stage as benchmarks/ingest.py does
   (needs py-spy in the venv).

Run (all from the repository, as root or with ``ulimit -n`` above the connections):

    .venv/bin/python benchmarks/fleet.py --sites 100000 --connections 10000 --interval 30
    .venv/bin/python benchmarks/fleet.py --sites 10000 --interval 3 --shards 2 --json
    .venv/bin/python benchmarks/fleet.py --sites 20000 --interval 60 --shards 1 --profile
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from _common import (
    PYTHON,
    REPO,
    CollectorProcess,
    PySpy,
    Sampler,
    gc_summary,
    log,
    log_heap_audits,
    percentile,
    print_profile,
    print_summary,
    stage_shares,
    summarize_pyspy,
)
from ingest import STAGES, merge_profiles

from collector.config import BatchConfig
from kienco.fleet.fleet import PROVINCES
from kienco.local_services import Influxd, Mosquitto, ServiceError, shipped_influxdb_data
from plumbing.data import firmware_configs

SHIPPED_SHARD = firmware_configs() / "collector-shard.yaml"
REFUSED = "kienco_points_refused_total"


class Simulator:
    """``kienco simulate`` as a subprocess; its progress lines timestamped as they come."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        command = [
            PYTHON, "-m", "kienco.cli", "simulate",
            "--sites", str(args.sites),
            "--connections", str(args.connections or args.sites),
            "--interval", str(args.interval),
            "--duration", str(args.duration),
            "--hold", str(args.hold),
            "--provinces", str(args.provinces),
            "--broker", f"mqtt://127.0.0.1:{port}",
            "--ramp", str(args.ramp),
            "--drain", str(args.drain),
            "--progress-every", "5",
            "--json",
        ]  # fmt: skip
        if args.calm:
            command += ["--scenario", "calm"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
        )
        self.events: dict[str, float] = {}
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())
            log(f"simulate: {line.rstrip()}")
            for event in ("connections up", "reporting"):
                if event in line and event not in self.events:
                    self.events[event] = time.monotonic()

    def wait_for(self, event: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while event not in self.events:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.lines[-20:])
                raise RuntimeError(f"the simulator never said {event!r}:\n{tail}")
            time.sleep(0.05)
        return self.events[event]

    def summary(self, timeout_s: float) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=timeout_s)
        self._reader.join(5)
        return dict(json.loads(out.strip().splitlines()[-1]))


def _reconnects(collector: CollectorProcess) -> int:
    """Times the shard lost its broker connection: the broker then sends again what the
    shard had not acknowledged, which the shard accepts a second time (QoS 1)."""
    if not collector.log_path.exists():
        return 0
    return collector.log_path.read_text(errors="replace").count("disconnected from the broker")


def _shards(count: int, provinces: list[str]) -> list[list[str]]:
    return [provinces[i::count] for i in range(count)]


def _scrape(
    collector: CollectorProcess, client: httpx.Client, failures: list[str]
) -> dict[str, float]:
    """A shard's /metrics, or {} with the failure noted: one refused scrape (a shard busy
    past the timeout, or dead) must not end a run whose other figures still stand.

    A reset on a kept-alive connection is asked again once, on a new one: scraping every
    ~2 s races the shard closing an idle connection after its 5 s (collector/api.py
    KEEP_ALIVE_S), more so while the machine is full; that is the client's race, not a
    shard that failed to answer."""
    try:
        try:
            return collector.metrics(client)
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            log(f"scrape reset, asked again: {collector.workdir.name}: {exc!r}")
            return collector.metrics(client)
    except httpx.HTTPError as exc:
        code = collector.process.poll() if collector.process is not None else None
        state = "running" if code is None else f"exited with {code}"
        failures.append(f"{collector.workdir.name}: {exc!r} (shard {state})")
        log(f"scrape failed: {failures[-1]}")
        return {}


def _accepted_reports(
    collectors: list[CollectorProcess], client: httpx.Client, failures: list[str]
) -> list[float]:
    values = []
    for collector in collectors:
        metrics = _scrape(collector, client, failures)
        values.append(metrics.get('kienco_messages_accepted_total{kind="report"}', math.nan))
    return values


def run(
    args: argparse.Namespace, workdir: Path
) -> tuple[list[tuple[str, Any]], dict[str, Any] | None]:
    """The summary's rows, and with ``--profile`` the shards' profile."""
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    assert broker.process is not None
    influx: Influxd | None = None
    collectors: list[CollectorProcess] = []
    simulator: Simulator | None = None
    spies: list[PySpy] = []
    profile: dict[str, Any] | None = None
    provinces = list(PROVINCES[: args.provinces])
    try:
        if args.shards:
            # As shipped: tsi1 and no series or tag-value limits (the stock ones refuse the
            # national fleet's sites beyond 100 000), and the shards' batch size.
            influx = Influxd.start(workdir / "influxdb", data=shipped_influxdb_data())
            batch = BatchConfig(**yaml.safe_load(SHIPPED_SHARD.read_text())["batch"])
            for number, mine in enumerate(_shards(args.shards, provinces)):
                collector = CollectorProcess(
                    workdir / f"shard-{number}",
                    broker.port,
                    influx.url,
                    provinces=mine,
                    client_id=f"fleet-shard-{number}",
                    read_window_ms=args.read_window_ms,
                    batch_max_messages=batch.max_messages,
                    batch_max_delay_s=batch.max_delay_s,
                )
                collector.start()
                collectors.append(collector)
            log(f"{len(collectors)} collector shards up")
        time.sleep(1.0)
        broker_pid = broker.process.pid
        baseline = Sampler({"broker": broker_pid}).start()
        time.sleep(1.0)
        broker_rss_before = baseline.stop()["broker"].peak_rss_mb
        simulator = Simulator(args, broker.port)
        sim_pid = simulator.process.pid
        simulator.wait_for("connections up", args.connect_timeout)
        held = Sampler({"broker": broker_pid, "simulator": sim_pid}).start()
        time.sleep(max(1.0, args.hold - 2.0))
        idle = held.stop()
        simulator.wait_for("reporting", args.hold + 30)
        processes = {"broker": broker_pid, "simulator": sim_pid}
        processes |= {f"shard-{i}": c.pid for i, c in enumerate(collectors)}
        if influx is not None:
            processes["influxd"] = influx.process.pid
        window = Sampler(processes).start()
        spies += [PySpy(c.pid, c.workdir / "shard-profile.txt") for c in collectors if args.profile]
        lags: list[float] = []
        accepted_series: list[tuple[float, float]] = []
        client = httpx.Client()
        failures: list[str] = []
        end = time.monotonic() + args.duration
        while time.monotonic() < end and simulator.process.poll() is None:
            time.sleep(2.0)
            if collectors:
                for collector in collectors:
                    metrics = _scrape(collector, client, failures)
                    lags.append(metrics.get("kienco_report_lag_seconds", math.nan))
                accepted = sum(_accepted_reports(collectors, client, failures))
                if not math.isnan(accepted):  # a failed scrape leaves no point
                    accepted_series.append((time.monotonic(), accepted))
        stats = window.stop()
        if spies:
            merged = merge_profiles([spy.stop() for spy in spies], workdir / "shards-profile.txt")
            profile = summarize_pyspy(merged)
            profile["stages"] = stage_shares(profile, STAGES)
        summary = simulator.summary(args.duration + args.drain + 120)
        catch_up_s = math.nan
        accepted_at_end = math.nan
        if collectors:
            made = summary["reports_made"]
            deadline = time.monotonic() + args.catch_up
            ended = time.monotonic()
            while time.monotonic() < deadline:
                accepted_at_end = sum(_accepted_reports(collectors, client, failures))
                if accepted_at_end >= made:
                    catch_up_s = time.monotonic() - ended
                    break
                time.sleep(0.5)
        per_10k = 10_000 / max(1, summary["connections_held"])
        rows: list[tuple[str, Any]] = [
            ("sites", summary["sites"]),
            (
                "connections asked / held",
                f"{summary['connections']} / {summary['connections_held']}",
            ),
            ("connect time (s)", summary["connect_s"]),
            ("reports/s asked", summary["target_msgs_per_s"]),
            ("reports/s made", summary["made_msgs_per_s"]),
            ("messages/s acked by the broker (window)", summary["acked_msgs_per_s"]),
            ("unacked at the end", summary["unacked_at_end"]),
            ("lost connections / resent", f"{summary['lost_connections']} / {summary['resent']}"),
            ("shard scrapes failed", len(failures)),
            (
                "ack latency p50 / p99 (ms)",
                f"{summary['ack_latency_p50_ms']} / {summary['ack_latency_p99_ms']}",
            ),
            ("simulator late max (ms)", summary["scheduler_late_max_ms"]),
            ("sites dark at the storm's peak", summary["sites_dark_at_peak"]),
            ("broker RSS before (MB)", broker_rss_before),
            ("broker RSS, connections idle (MB)", idle["broker"].peak_rss_mb),
            (
                "broker RSS per 10 000 connections (MB)",
                (idle["broker"].peak_rss_mb - broker_rss_before) * per_10k,
            ),
            (
                "broker CPU idle, % of a core per 10 000 connections",
                idle["broker"].cpu_pct * per_10k,
            ),
            ("simulator RSS (MB)", stats["simulator"].peak_rss_mb),
            ("broker CPU under load (% of a core)", stats["broker"].cpu_pct),
            ("broker RSS under load (MB)", stats["broker"].peak_rss_mb),
            ("simulator CPU (% of a core)", stats["simulator"].cpu_pct),
            ("machine busy CPU (% of one core, 2 cores = 200)", window.machine_cpu_pct),
            ("of which not this benchmark", window.others_cpu_pct()),
        ]
        if collectors:
            window_s = stats["broker"].wall_s
            first = accepted_series[0] if accepted_series else (0.0, 0.0)
            last = accepted_series[-1] if accepted_series else (0.0, 0.0)
            rate = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else math.nan
            rows += [
                ("shards", len(collectors)),
                ("collectors: reports accepted/s in the window (all shards)", rate),
                (
                    "collector lag p50 / p95 / max (s)",
                    " / ".join(
                        f"{percentile([x for x in lags if not math.isnan(x)], q):.2f}"
                        for q in (50, 95, 100)
                    ),
                ),
                (
                    "reports accepted / made at the end",
                    f"{accepted_at_end:.0f} / {summary['reports_made']}",
                ),
                ("catch-up after the window (s)", catch_up_s),
                ("window (s)", window_s),
            ]
            for i in range(len(collectors)):
                shard = stats[f"shard-{i}"]
                rows.append(
                    (
                        f"shard-{i} CPU % / peak RSS MB",
                        f"{shard.cpu_pct:.0f} / {shard.peak_rss_mb:.0f}",
                    )
                )
            if influx is not None:
                rows.append(("influxd CPU (% of a core)", stats["influxd"].cpu_pct))
            final = [_scrape(collector, client, failures) for collector in collectors]
            rows += [
                (f"shard-{i} garbage collection: count / s", gc_summary(metrics))
                for i, metrics in enumerate(final)
            ]
            rows += [
                (
                    "points InfluxDB refused (dead-lettered)",
                    sum(m.get(REFUSED, 0) for m in final) if all(final) else "n/a (scrape failed)",
                ),
                (
                    "shards' reconnects to the broker (their logs)",
                    sum(_reconnects(collector) for collector in collectors),
                ),
            ]
        return rows, profile
    finally:
        for spy in spies:
            spy.stop()
        if simulator is not None and simulator.process.poll() is None:
            simulator.process.kill()
        for collector in collectors:
            collector.stop()
        log_heap_audits(collectors, "shard")
        if influx is not None:
            influx.stop()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--hold", type=float, default=15.0, help="connected and idle, s")
    parser.add_argument("--provinces", type=int, default=34)
    parser.add_argument("--shards", type=int, default=0, help="collector shards (0: none)")
    parser.add_argument("--ramp", type=float, default=2000.0, help="new connections per s")
    parser.add_argument("--drain", type=float, default=120.0)
    parser.add_argument("--catch-up", type=float, default=300.0, help="wait for the shards, s")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--calm", action="store_true", help="no storm")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, data)")
    parser.add_argument(
        "--read-window-ms",
        type=float,
        default=None,
        help="the shards' broker.read_window_ms (default: the collector's)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on the shards over the window"
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="kienco-fleet-")
    try:
        rows, profile = run(args, Path(tmp))
    except ServiceError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:  # the shards' logs, Mosquitto's and InfluxDB's data
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    title = (
        f"fleet: {args.sites} sites, {args.connections} connections, "
        f"every {args.interval:g} s, {args.shards} shards"
    )
    print_summary(title, rows, as_json=args.json)
    if profile is not None and not args.json:
        print_profile(profile, stages=profile["stages"], of="the shards, summed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
