"""How fast every Grafana panel's query answers with 1 000 sites × 7 days of 30 s reports.

    .venv/bin/python benchmarks/dashboards.py [--sites 1000] [--days 7] [--interval 30]
                                              [--data DIR [--reuse]] [--json]

1. **History.** A fresh InfluxDB 1.6 (``kienco.local_services``; ``--data DIR`` keeps
   it, ``--reuse`` queries what an earlier run left there) receives ``--days`` of
   reports every ``--interval`` s from ``--sites`` sites over 63 provinces (one in four a
   meeting point; UPS + generator, three paths, host: ``benchmarks/_common.make_report``),
   with a storm: on the day before the last, the sites of 20 provinces lose mains for
   12 h (a third on battery, the rest on generator).
   Every point is made by the collector's own code: ``report_points`` for the report,
   ``Verdicts.evaluate`` (the rules, ``verdict_points``) for the readiness point and the
   findings on a change, ``fleet_points``, ``attention_points`` and ``worst_link_points``
   every 60 s, ``build_report`` + ``compliance_points`` every 300 s (the inventory is the fleet,
   hardened stations in 5 areas a province). All of it goes through the collector's writer
   (``InfluxWriter.write_durably``, two in flight), in batches of 10 000 lines.
   *How the volume is made in minutes*: each site's points are built for 12 sets of
   readings per power state (mains, battery, generator) and the fleet and compliance
   summaries for each of those sets; each 30 s tick then takes one set per site in
   turn and stamps it with the tick's time (every field of every point is written;
   values repeat with a 6-minute period). InfluxDB's ingest is the bound.
2. **Cardinality**: ``SHOW SERIES EXACT CARDINALITY``, overall and per measurement,
   and the data folder's size.
3. **Trends.** The shipped retention policies and continuous queries
   (``dashboards/influxdb/retention.influxql``) applied, the 5-minute trends
   backfilled by the continuous queries' own SELECT … INTO: the time it takes, and so
   what the continuous queries cost InfluxDB every 5 minutes.
4. **Queries.** Each dashboard is opened as Grafana opens it (``kienco/dashboards/
   replay.py``): variables resolved with "All", then every panel's every query,
   rendered with Grafana's macros, sent to ``/query``; three times each, the median
   kept. Over the dashboard's own default range (raw points), over the whole
   ``--days`` on raw points and on the trends, and with one province chosen.
   Goal: the slowest ≤ 1 s.

``--url`` times the queries on a running InfluxDB that already holds such a history
(the data folder of an earlier ``--data`` run, say, served while it is still loading).
"""

from __future__ import annotations

import argparse
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    PROVINCES,
    Site,
    log,
    make_meta,
    make_report,
    make_sites,
    print_summary,
)
from collector.history import compliance_points, fleet_points
from collector.influx import InfluxV1Client
from collector.inventory import Inventory, InventorySite
from collector.line_protocol import Point, encode_many
from collector.points import report_points, site_tags
from collector.readiness import Verdicts, verdict_points
from collector.spool import Spool
from collector.state import SiteStates
from collector.writer import InfluxWriter
from contract.wire import Report, Status
from kienco.dashboards import build, retention
from kienco.dashboards.common import Built
from kienco.dashboards.macros import TimeRange, parse_interval
from kienco.dashboards.replay import Influx, replay, resolve_variables
from kienco.demo.run import demo_policy
from kienco.local_services import Influxd
from rules import Policy, SiteSnapshot
from rules.compliance import build_report

DATABASE = "kienco"
SETS = 12  # sets of readings per site and power state
STATES = ("mains", "battery", "generator")
STORM_PROVINCES = frozenset(PROVINCES[:20])
STORM_HOURS = 12
BATCH_LINES = 10_000
FLEET_EVERY_S = 60
COMPLIANCE_EVERY_S = 300
OPERATORS = ("vnpt", "viettel", "mobifone")
GOAL_S = 1.0


# --- the fleet, as the inventory and the agents' metas describe it ---------------------


def _operator(index: int) -> str:
    return OPERATORS[index % len(OPERATORS)]


def _area(site: Site, index: int) -> str:
    return f"{site.province}-a{index % 5}"


def _coordinates(index: int) -> tuple[float, float]:
    rng = random.Random(index)
    return round(rng.uniform(8.6, 23.3), 4), round(rng.uniform(102.2, 109.4), 4)


def inventory_of(sites: Sequence[Site]) -> Inventory:
    items = []
    for index, site in enumerate(sites):
        latitude, longitude = _coordinates(index)
        items.append(
            InventorySite(
                site=site.site,
                kind=site.kind,  # type: ignore[arg-type]
                name=f"Trạm {site.site}",
                operator=_operator(index),
                province=site.province,
                area=_area(site, index),
                hardened=site.kind == "station",
                latitude=latitude,
                longitude=longitude,
            )
        )
    return Inventory(items)


def _power_state(report: Report, state: str) -> Report:
    """The same readings with the power source of ``state``."""
    if state == "mains":
        return report
    ups, generator = report.power
    running = state == "generator"
    ups = ups.model_copy(
        update={
            "mains_present": False,
            "on_battery": not running,
            "battery_runtime_s": float(ups.battery_runtime_s or 0) * (0.4 if not running else 1),
            "input_v": 0.0 if not running else ups.input_v,
        }
    )
    generator = generator.model_copy(
        update={"generator_running": running, "on_generator": running, "mains_present": False}
    )
    return report.model_copy(update={"power": (ups, generator)})


# --- what each site writes, per power state and set of readings -----------------------


@dataclass
class SiteLines:
    """A site's lines without timestamps, per (state, set): data+readiness, and findings."""

    lines: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    findings: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    judged: dict[tuple[str, int], tuple[SiteSnapshot, Status]] = field(default_factory=dict)


def _untimed(points: list[Point]) -> list[str]:
    text = encode_many(points)
    return [line.rsplit(" ", 1)[0] for line in text.split("\n") if line]


def build_site_lines(
    sites: Sequence[Site], inventory: Inventory, policy: Policy, interval_s: float, now: datetime
) -> dict[str, SiteLines]:
    # One collector state per power state, so set n is judged at the same time in each:
    # the fleet and compliance summaries then see every site fresh, whatever its state.
    judges = {}
    for state in STATES:
        states = SiteStates()
        judges[state] = (states, Verdicts(states, policy, listed=inventory.__contains__))
    built: dict[str, SiteLines] = {}
    for index, site in enumerate(sites):
        expected = inventory.get(site.site)
        assert expected is not None
        meta = make_meta(site, now - timedelta(days=30), interval_s=interval_s).model_copy(
            update={
                "operator": expected.operator,
                "area": expected.area,
                "latitude": expected.latitude,
                "longitude": expected.longitude,
            }
        )
        rng = random.Random(f"bench:{site.site}")
        lines = SiteLines()
        seq = 0
        for state in STATES:
            states, verdicts = judges[state]
            states.apply_meta(meta)
            for n in range(SETS):
                seq += 1
                at = now + timedelta(seconds=n * interval_s)
                report = _power_state(
                    make_report(site, seq, at, interval_s=interval_s, rng=rng), state
                )
                states.apply_report(report, received_at=at)
                judged = verdicts.evaluate(site.site, at)
                assert judged is not None
                status, _, _ = judged
                snapshot = states.get(site.site)
                assert snapshot is not None
                every = verdict_points(snapshot, status, at, findings=True)
                kind, operator = site_tags(snapshot)  # as the collector tags them
                lines.lines[(state, n)] = _untimed(
                    report_points(report, site_kind=kind, operator=operator)
                )
                lines.lines[(state, n)] += _untimed(every[:1])
                lines.findings[(state, n)] = _untimed(every[1:])
                lines.judged[(state, n)] = (snapshot, status)
        built[site.site] = lines
        if index % 200 == 199:
            log(f"  built the points of {index + 1} sites")
    return built


def _state_at(site: Site, index: int, at: datetime, storm: tuple[datetime, datetime]) -> str:
    if site.province in STORM_PROVINCES and storm[0] <= at < storm[1]:
        return "battery" if index % 3 == 0 else "generator"
    return "mains"


def ticks(start: datetime, end: datetime, interval_s: float) -> Iterator[tuple[int, datetime]]:
    """Newest first: the dashboards' default ranges (the last hours) can be timed while the
    older days are still loading (``--reuse`` on a copy of the folder)."""
    tick, at = 0, end
    while at >= start:
        yield tick, at
        tick += 1
        at = end - timedelta(seconds=tick * interval_s)


# --- writing ---------------------------------------------------------------------------


class Writers:
    """Batches through the collector's writer, ``in_flight`` at a time."""

    def __init__(self, url: str, workdir: Path, in_flight: int = 2) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=in_flight * 2)
        self.lines = 0
        self.refused = 0
        self.spooled = 0
        self._lock = threading.Lock()
        self._threads = []
        for n in range(in_flight):
            client = InfluxV1Client(url, DATABASE, timeout_s=120)
            writer = InfluxWriter(client, Spool(workdir / f"spool-{n}.sqlite"), budget_s=300)
            thread = threading.Thread(target=self._run, args=(writer,), daemon=True)
            thread.start()
            self._threads.append((thread, writer))

    def _run(self, writer: InfluxWriter) -> None:
        while (batch := self.queue.get()) is not None:
            outcome = writer.write_durably(batch)
            with self._lock:
                self.lines += outcome.written_points
                self.refused += outcome.refused_points
                self.spooled += int(outcome.spooled)

    def put(self, lines: list[str]) -> None:
        self.queue.put("\n".join(lines))

    def close(self) -> None:
        for _ in self._threads:
            self.queue.put(None)
        for thread, writer in self._threads:
            thread.join()
            while writer.drain_spool(max_batches=100):
                pass


def load(
    influx_url: str,
    workdir: Path,
    sites: Sequence[Site],
    inventory: Inventory,
    *,
    days: float,
    interval_s: float,
    summaries_only: bool = False,
    end: datetime | None = None,
) -> dict[str, Any]:
    # here, not at the top: influx_series.py --reuse imports this module with another
    # checkout's collector on PYTHONPATH (one from before the attention list, say)
    from collector.history import worst_link_points
    from collector.summaries import attention_points

    policy = demo_policy()
    # summaries on whole minutes; rewritten summaries at the times of the history there
    end = end or datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    storm_start = (end - timedelta(days=1)).replace(hour=0, minute=0, second=0)
    storm = (storm_start, storm_start + timedelta(hours=STORM_HOURS))
    log(f"building each site's points ({len(STATES)} power states × {SETS} sets)")
    per_site = build_site_lines(sites, inventory, policy, interval_s, end + timedelta(days=1))
    summaries: dict[tuple[bool, int, str], list[str]] = {}

    def summary(storming: bool, n: int, kind: str, at: datetime) -> list[str]:
        key = (storming, n, kind)
        if key not in summaries:
            judged = [
                per_site[s.site].judged[(_state_at(s, i, at, storm), n)]
                for i, s in enumerate(sites)
            ]
            points: list[Point] = []
            fresh_at = judged[0][1].evaluated_at  # set n of every site was judged then
            if kind == "fleet":
                points = fleet_points(judged, policy, fresh_at)
                # the sites needing attention, as the sweeper lists them with the fleet
                # (no point for a site leaving the list: each minute's set is made alone)
                points += attention_points(judged, fresh_at, set())[0]
                points += worst_link_points(judged, policy, fresh_at, fresh_at)
            else:
                snapshots = {snapshot.site: snapshot for snapshot, _ in judged}
                for province in sorted(inventory.by_province):
                    report = build_report(snapshots, inventory, policy, fresh_at, province=province)
                    points += compliance_points(report, fresh_at)
            summaries[key] = _untimed(points)
        return summaries[key]

    writers = Writers(influx_url, workdir)
    client = InfluxV1Client(influx_url, DATABASE)
    client.create_database()
    client.close()
    total_ticks = int(days * 86_400 / interval_s) + 1
    previous: dict[str, str] = {}
    batch: list[str] = []
    started = time.monotonic()
    made = 0
    for tick, at in ticks(start, end, interval_s):
        ts = f" {int(at.timestamp()) * 1_000_000_000}"
        n = tick % SETS
        for index, site in enumerate([] if summaries_only else sites):
            state = _state_at(site, index, at, storm)
            key = (state, (n + index) % SETS)
            lines = per_site[site.site]
            batch.extend(line + ts for line in lines.lines[key])
            if previous.get(site.site) != state:  # a change of power state: its findings
                batch.extend(line + ts for line in lines.findings[key])
                previous[site.site] = state
        seconds = int(at.timestamp())
        storming = storm[0] <= at < storm[1]
        if seconds % FLEET_EVERY_S < interval_s:
            batch.extend(line + ts for line in summary(storming, n, "fleet", at))
        if seconds % COMPLIANCE_EVERY_S < interval_s:
            batch.extend(line + ts for line in summary(storming, n, "compliance", at))
        if len(batch) >= BATCH_LINES:
            made += len(batch)
            writers.put(batch)
            batch = []
        if tick % 2880 == 0 and tick:
            rate = writers.lines / (time.monotonic() - started)
            log(f"  {tick * interval_s / 86_400:.0f} of {days:g} days: {writers.lines:,} points "
                f"written, {rate:,.0f}/s")  # fmt: skip
    made += len(batch)
    writers.put(batch)
    writers.close()
    elapsed = time.monotonic() - started
    return {
        "points written": writers.lines,
        "points made": made,
        "points refused": writers.refused,
        "batches spooled (then drained)": writers.spooled,
        "ticks": total_ticks,
        "load time (s)": elapsed,
        "points/s": writers.lines / elapsed,
        "storm": f"{storm[0]:%Y-%m-%d %H:%M} UTC +{STORM_HOURS} h, "
        f"{len(STORM_PROVINCES)} provinces",
    }


# --- measuring -------------------------------------------------------------------------


def cardinality(influx: Influx) -> dict[str, int]:
    counts: dict[str, int] = {}
    series, error, _ = influx.query("SHOW MEASUREMENTS")
    assert error is None, error
    measurements = [str(v) for s in series for v in s.column("name")]
    total, error, _ = influx.query("SHOW SERIES EXACT CARDINALITY")
    assert error is None, error
    counts["all"] = sum(int(v) for s in total for v in s.column("count"))
    for measurement in measurements:
        found, error, _ = influx.query(f'SHOW SERIES EXACT CARDINALITY FROM "{measurement}"')
        assert error is None, error
        counts[measurement] = sum(int(v) for s in found for v in s.column("count"))
    return counts


@dataclass(frozen=True)
class Timing:
    dashboard: str
    panel: str
    ref_id: str
    span: str
    seconds: float
    rows: int
    sent: str


def time_dashboard(
    built: Built,
    influx: Influx,
    span: TimeRange,
    label: str,
    *,
    choose: dict[str, list[str]] | None = None,
    repeat: int = 3,
) -> list[Timing]:
    templating = built.json["templating"]["list"]
    variables = resolve_variables(templating, influx, choose=choose, span=span)
    runs = [replay(built.checks, variables, span, influx) for _ in range(repeat)]
    timings = []
    for outcomes in zip(*runs, strict=True):
        first = outcomes[0]
        if first.error is not None:
            raise RuntimeError(f"{built.uid} {first.check.panel}: {first.error}\n{first.sent}")
        timings.append(
            Timing(
                built.uid,
                f"#{first.check.panel_id} {first.check.panel}",
                first.check.ref_id,
                label,
                statistics.median(o.seconds for o in outcomes),
                sum(len(s.values) for s in first.series),
                first.sent,
            )
        )
    return timings


def trends(influx: Influx, span: TimeRange) -> list[tuple[str, Any]]:
    """The shipped retention policies and continuous queries, applied; the trends backfilled
    a day at a time by each query's own SELECT … INTO (what InfluxDB runs every 5 min)."""
    for name in retention.continuous_queries(DATABASE):  # an earlier run's, perhaps older
        influx.query(f'DROP CONTINUOUS QUERY "{name}" ON "{DATABASE}"')
    for statement in retention.statements(DATABASE):
        _, error, _ = influx.query(statement)
        assert error is None, (statement, error)
    started = time.perf_counter()
    day = span.start
    while day < span.end:
        until = min(day + timedelta(days=1), span.end)
        bounds = f"WHERE time >= {int(day.timestamp())}s AND time < {int(until.timestamp())}s"
        for select in retention.continuous_queries(DATABASE).values():
            _, error, _ = influx.query(select.replace(" GROUP BY ", f" {bounds} GROUP BY "))
            assert error is None, error
        day = until
    seconds = time.perf_counter() - started
    buckets = (span.end - span.start) / timedelta(minutes=5)
    log(f"trends backfilled in {seconds:.0f} s")
    return [
        ("trend backfill (s)", seconds),
        ("continuous queries' cost per 5 min (ms)", 1000 * seconds / buckets),
    ]


def newest(influx: Influx) -> datetime:
    """The history's newest report: "now" for the dashboards (it ends when loading began)."""
    series, error, _ = influx.query('SELECT last("seq") FROM "report"')
    assert error is None and series, error
    return datetime.fromtimestamp(series[0].values[0][0] / 1000, UTC)


def default_span(built: Built, now: datetime) -> TimeRange:
    text = built.json["time"]["from"].removeprefix("now-")
    return TimeRange.last(timedelta(milliseconds=parse_interval(text)), now=now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--data", type=Path, help="InfluxDB's folder, kept (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="query what --data holds; load none")
    parser.add_argument("--url", help="time the queries on this running InfluxDB (loads none)")
    parser.add_argument(
        "--summaries-only",
        action="store_true",
        help="write only the fleet and compliance summaries again (same series and times: "
        "InfluxDB merges the fields), e.g. after the collector's summaries gained a field",
    )
    parser.add_argument("--load-only", action="store_true", help="load and count; time nothing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = args.data or Path(tempfile.mkdtemp(prefix="kienco-bench-dashboards-"))
    sites = make_sites(args.sites)
    inventory = inventory_of(sites)
    server = None if args.url else Influxd.start(workdir / "influxdb")
    url = args.url or (server.url if server else "")
    rows: list[tuple[str, Any]] = [("sites", args.sites), ("days", args.days)]
    try:
        if args.summaries_only or not (args.reuse or args.url):
            log(f"loading {args.days:g} days × {args.sites} sites every {args.interval:g} s")
            figures = load(
                url,
                workdir,
                sites,
                inventory,
                days=args.days,
                interval_s=args.interval,
                summaries_only=args.summaries_only,
                end=newest(Influx(url, DATABASE)) if args.summaries_only else None,
            )
            rows += list(figures.items())
        influx = Influx(url, DATABASE, timeout_s=300)
        counts = cardinality(influx)
        rows.append(("series (all)", counts.pop("all")))
        rows += [(f"series: {m}", c) for m, c in sorted(counts.items())]
        data = workdir / "influxdb" / "data"
        if data.exists():
            du = subprocess.run(["du", "-sb", str(data)], capture_output=True, text=True)
            rows.append(("data folder (MB)", int(du.stdout.split()[0]) / 1e6))
        if args.load_only:
            influx.close()
            print_summary("Dashboards: history loaded", rows, as_json=args.json)
            return
        now = newest(influx)
        whole = TimeRange.last(timedelta(days=args.days), now=now)
        rows += trends(influx, whole)
        # a province with stations and meeting points, hit by the storm
        one = next(
            s.province for s in sites if s.kind == "meeting_point" and s.province in STORM_PROVINCES
        )
        raw, trend = {"rp": [retention.RAW]}, {"rp": [retention.TREND]}
        days = f"{args.days:g} d"
        timings: list[Timing] = []
        for built in build.build_all():
            log(f"timing {built.uid}")
            span = default_span(built, now)
            timings += time_dashboard(built, influx, span, "default range", choose=raw)
            timings += time_dashboard(built, influx, whole, f"{days}, raw", choose=raw)
            timings += time_dashboard(built, influx, whole, f"{days}, trend", choose=trend)
            timings += time_dashboard(
                built, influx, span, "one province", choose={**raw, "province": [one]}
            )
        influx.close()
    finally:
        if server is not None:
            server.stop()
        if args.data is None and not args.url:
            shutil.rmtree(workdir, ignore_errors=True)
    timings.sort(key=lambda t: t.seconds, reverse=True)
    slowest = timings[0]
    for span in ("default range", f"{days}, raw", f"{days}, trend", "one province"):
        worst = max((t for t in timings if t.span == span), key=lambda t: t.seconds)
        rows.append((f"slowest query, {span} (s)", worst.seconds))
        rows.append((f"  which ({span})", f"{worst.dashboard} {worst.panel} {worst.ref_id}"))
    over = [t for t in timings if t.seconds > GOAL_S]
    rows.append((f"queries over {GOAL_S:g} s", f"{len(over)} of {len(timings)}"))
    rows.append(("goal: slowest ≤ 1 s", "MET" if slowest.seconds <= GOAL_S else "NOT MET"))
    if not args.json:
        print("\nslowest 15 queries (median of 3):")
        for t in timings[:15]:
            print(f"  {t.seconds:7.3f} s  {t.rows:>7} rows  {t.span:<14} {t.dashboard} {t.panel}")
    print_summary("Dashboards: panel queries on InfluxDB 1.6", rows, as_json=args.json)


if __name__ == "__main__":
    main()
