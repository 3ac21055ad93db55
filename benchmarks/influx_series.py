"""InfluxDB 1.6 at the national fleet's cardinality (103 400 sites, ~1.1 M series), measured.

What it does, for each ``--sites`` count (the national fleet and a tenth of it by default,
so that the two rates are compared in one run), on a fresh ``influxd`` started by
``kienco.local_services.Influxd`` (its loopback config; ``--index``: ``inmem``, 1.6's
default and what that config leaves, or ``tsi1``):

1. **Lines.** The fleet of ``kienco simulate`` (``kienco.fleet.fleet``: 34 provinces, one
   site in 30 a meeting point, half the stations hardened, a storm over the first two
   provinces) reports ``--rounds`` times, ``--interval`` s apart. Every message goes
   through the collector's own ``Collector.process`` (decode, admission, state fold,
   rules; ``report_lines`` and the verdict's ``readiness`` and ``finding`` points):
   after the storm, one box in 10 of its provinces says its clock is not synchronised,
   of the others one agent in 5 does not say (``clock_synced``, :func:`clock_synced`);
   the lines are exactly what a collector shard would write, the agents' ``online``
   state included, and after each round the ``fleet`` summary its sweeper writes each
   minute (``collector/summaries.py``; the chunks' summed into one fleet's). Made
   before any timing, in chunks of 5 000 sites (a fresh collector
   each), so that the collector's CPU is not in the figures.
2. **Series created.** The first round (plus the agents' state) written in batches of
   2 000 messages (the shipped ``batch.max_messages``) by ``--writers`` threads, each with
   the collector's ``InfluxV1Client``: each line's series is new. Time, points/s, series/s,
   influxd's CPU; refused lines counted with InfluxDB's reason; a batch InfluxDB does not
   take (HTTP 5xx: 1.6 answers ``timeout`` past its 10 s write timeout) counted and sent
   again 1 s later, as the collector's writer would (the wait is in the time).
3. **Steady writes.** The other rounds: the same series, new points. Points/s and
   influxd's CPU. The ratio of the two rates, and of each to the same at the smaller
   count, is printed.
4. **After**: ``SHOW SERIES EXACT CARDINALITY`` (and its time), influxd's RSS, the data
   and WAL folders' size.
5. **Queries at that cardinality.** ``--history-sites`` sites get 6 h of reports every
   60 s (written untimed); the board's site page history (``collector/board/history.py``
   ``site_charts``, 6 h: its two queries, run through the collector's client) for one of
   them, and every Grafana dashboard opened as Grafana opens it
   (``benchmarks/dashboards.py`` ``time_dashboard``, ``kienco/dashboards/replay.py``:
   variables resolved, every panel's queries rendered and run) over its default range,
   with all provinces and with one: the slowest panel of each. Median of 3 for the site
   page, 1 run for the dashboards.
6. **Restart.** influxd stopped (SIGTERM) and started again on the same folder: seconds
   until ``/ping`` answers (1.6 opens every shard, and with ``inmem`` rebuilds the index
   from the TSM files and the WAL, before it listens), the first site-page query after
   it, and the RSS then.

InfluxDB 1.6 refuses new series past ``max-series-per-database`` (default 1 000 000) and
new values of a tag past ``max-values-per-tag`` (default 100 000: the ``site`` tag has
103 400). ``--limits default`` keeps those defaults (to see what a stock config does with
the national fleet); the default ``--limits off`` sets both to 0, as the InfluxDB serving
the national fleet must.

CPU of 2 shared cores: run it under the heavy lock.

    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/influx_series.py
    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/influx_series.py --index tsi1
    # the dashboards alone, on what a --keep run left (another checkout's: PYTHONPATH=it)
    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/influx_series.py --index tsi1 \
        --sites 103400 --reuse /tmp/kienco-bench-influx-series-XXXX/influx-103400
    .venv/bin/python benchmarks/influx_series.py --sites 10000 1000 --rounds 2 --json
"""

from __future__ import annotations

import argparse
import logging
import pickle
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import Sampler, log, print_summary

from collector.board.history import site_charts
from collector.config import CollectorConfig
from collector.influx import InfluxUnavailable, InfluxV1Client
from collector.line_protocol import Point, encode_many
from collector.service import Collector
from kienco.fleet.fleet import (
    PROVINCES,
    Site,
    Storm,
    make_sites,
    meta_payload,
    report_payload,
    state_payload,
    utc_iso,
)
from kienco.local_services import Influxd

DATABASE = "kienco"
BATCH_MESSAGES = 2000  # firmware-configs/collector.yaml batch.max_messages
CHUNK_SITES = 5000
STORM_AT = 0.45  # mains out in the first province, its fibre and the second's cut
HISTORY_HOURS = 6
HISTORY_EVERY_S = 60.0
RETRIES = 10
CLOCK_LOST_EVERY = 10  # boxes in the storm's provinces that rebooted with no time source
OLD_AGENT_EVERY = 5  # agents too old to say whether their clock is synchronised


# --- the collector's lines -------------------------------------------------------------


def _lines_of(collector: Collector, topic: str, payload: bytes, now: datetime) -> str:
    text = collector.process(topic, payload, now)
    if not isinstance(text, str):
        raise RuntimeError(f"the collector refused {topic}: {text}")
    return text


def merge_summaries(points: Sequence[Point]) -> list[str]:
    """The summaries of several collectors (one per chunk of sites) as one collector over
    them all would write them: counts summed per series and minute, the minimum kept."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...], int], dict[str, Any]] = {}
    for point in points:
        key = (point.measurement, point.tags, point.time_ns)
        fields = merged.get(key)
        if fields is None:
            merged[key] = dict(point.fields)
            continue
        for name, value in point.fields.items():
            held = fields.get(name)
            if value is None or held is None:
                fields[name] = held if value is None else value
            elif name.endswith("_min"):
                fields[name] = min(held, value)
            else:
                fields[name] = held + value
    return [encode_many([Point(m, tags, fields, at)]) for (m, tags, at), fields in merged.items()]


def clock_synced(site: Site, storm: Storm) -> bool | None:
    """What the site's box says of its clock after the storm: in the provinces it hit, one
    box in 10 rebooted with no time source (false); of the others one in 5 is an older agent
    that does not say (null); the rest keep time."""
    draw = zlib.crc32(site.site.encode())  # not tied to the province, kind or hardening
    if site.province in storm.provinces_cut and draw % CLOCK_LOST_EVERY == 0:
        return False
    return None if draw % OLD_AGENT_EVERY == 1 else True


def generate(
    sites: Sequence[Site],
    times: Sequence[datetime],
    interval_s: float,
    workdir: Path,
    *,
    with_state: bool = True,
    summaries: bool = False,
) -> list[list[str]]:
    """Per time, each message's lines as the collector makes them (the first holds the
    agents' ``online`` state too); a site dark in the storm sends nothing, as in the
    simulator. ``summaries``: after each time, the ``fleet`` summary its sweeper writes
    (``collector/summaries.py``), each chunk's merged into one fleet's."""
    storm = Storm.over(PROVINCES)
    out: list[list[str]] = [[] for _ in times]
    fleet: list[list[Point]] = [[] for _ in times]
    logging.getLogger("collector").setLevel(logging.ERROR)
    for first in range(0, len(sites), CHUNK_SITES):
        part = sites[first : first + CHUNK_SITES]
        root = workdir / f"gen-{first}"
        collector = Collector(CollectorConfig(data_dir=root, influx=None, provinces=PROVINCES))
        try:
            born = times[0] - timedelta(seconds=interval_s)
            for site in part:
                _lines_of(collector, site.topic("meta"), meta_payload(site, interval_s, born), born)
                state = _lines_of(
                    collector, site.topic("state"), state_payload(site, "online", born), born
                )
                if with_state and state:
                    out[0].append(state)
            for index, at in enumerate(times):
                now = at + timedelta(seconds=0.5)
                taken = utc_iso(at.timestamp())
                for site in part:
                    if storm.dark(site, STORM_AT):
                        continue
                    payload = report_payload(
                        site,
                        index + 1,
                        taken,
                        interval_s,
                        storm,
                        STORM_AT,
                        clock_synced=clock_synced(site, storm),
                    )
                    text = _lines_of(collector, site.topic("report"), payload, now)
                    if text:
                        out[index].append(text)
                if summaries:  # the sweeper's, once the round is in
                    fleet[index] += collector.summaries.due(now, collector._judged)
        finally:
            collector.stop()
            shutil.rmtree(root, ignore_errors=True)
    for index, points in enumerate(fleet):
        out[index] += merge_summaries(points)
    return out


def batches_of(messages: Sequence[str]) -> list[str]:
    return [
        "\n".join(messages[i : i + BATCH_MESSAGES]) for i in range(0, len(messages), BATCH_MESSAGES)
    ]


# --- writing ---------------------------------------------------------------------------


@dataclass
class Written:
    points: int = 0
    seconds: float = 0.0
    refused: int = 0
    unavailable: int = 0  # a batch InfluxDB did not (surely) take, sent again
    errors: list[str] = field(default_factory=list)
    influxd_cpu_pct: float = 0.0
    machine_cpu_pct: float = 0.0

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0


def write(url: str, batches: Sequence[str], writers: int, pid: int) -> Written:
    """All ``batches`` through ``writers`` threads, each with its own client; timed."""
    local = threading.local()
    lock = threading.Lock()
    figures = Written(points=sum(b.count("\n") + 1 for b in batches))

    def send(batch: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = InfluxV1Client(url, DATABASE, timeout_s=600)
        for attempt in range(RETRIES + 1):
            try:
                result = client.write(batch)
                break
            except InfluxUnavailable as error:  # as the collector's writer: send it again
                with lock:
                    figures.unavailable += 1
                    if len(figures.errors) < 3:
                        figures.errors.append(f"{error}"[:300])
                if attempt == RETRIES:
                    raise
                time.sleep(1.0)
        if not result.ok:
            with lock:
                figures.refused += result.refused
                if len(figures.errors) < 3 and result.error:
                    figures.errors.append(result.error[:300])

    sampler = Sampler({"influxd": pid}, every_s=1.0).start()
    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(send, batches))
    figures.seconds = time.perf_counter() - started
    stats = sampler.stop()
    figures.influxd_cpu_pct = stats["influxd"].cpu_pct
    figures.machine_cpu_pct = sampler.machine_cpu_pct
    return figures


# --- one count of sites ----------------------------------------------------------------


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def median_s(action: Any, repeat: int = 3) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def cardinality(url: str) -> dict[str, int]:
    """``SHOW SERIES EXACT CARDINALITY``: series per measurement."""
    answer = httpx.post(
        f"{url}/query",
        data={"db": DATABASE, "q": "SHOW SERIES EXACT CARDINALITY"},
        timeout=600,
    ).json()
    return {
        str(item["name"]): int(item["values"][0][0])
        for item in answer["results"][0].get("series", [])
    }


def data_settings(args: argparse.Namespace) -> dict[str, str]:
    settings = {"index-version": f'"{args.index}"'}
    if args.limits == "off":
        settings |= {"max-series-per-database": "0", "max-values-per-tag": "0"}
    return settings


def dashboards(url: str, now: datetime, one: str) -> list[tuple[str, Any]]:
    """Every dashboard over its default range, all provinces and one: the slowest panel."""
    from dashboards import default_span, time_dashboard  # benchmarks/dashboards.py
    from kienco.dashboards import build, retention
    from kienco.dashboards.replay import Influx

    influx = Influx(url, DATABASE, timeout_s=600)
    rows: list[tuple[str, Any]] = []
    try:
        raw = {"rp": [retention.RAW]}
        for label, choose in (("all provinces", raw), ("one province", {**raw, "province": [one]})):
            timings = []
            started = time.perf_counter()
            skipped = []
            for built in build.build_all():
                span = default_span(built, now)
                try:
                    timings += time_dashboard(built, influx, span, label, choose=choose, repeat=1)
                except ValueError as error:  # a variable over what is not written here
                    log(f"{label}: {built.uid} skipped: {error}")
                    skipped.append(built.uid)
            total = time.perf_counter() - started
            timings.sort(key=lambda t: t.seconds, reverse=True)
            worst = timings[0]
            rows += [
                (f"dashboards, {label}: queries / all (s)", f"{len(timings)} / {total:.1f}"),
                (f"dashboards, {label}: slowest (s)", worst.seconds),
                (f"  which ({label})", f"{worst.dashboard} {worst.panel} {worst.ref_id}"),
                (f"  skipped ({label}: compliance summaries not written)", skipped),
            ]
            for t in timings[:5]:
                log(f"{label}: {t.seconds:7.3f} s {t.rows:>7} rows {t.dashboard} {t.panel}")
    finally:
        influx.close()
    return rows


def run(count: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sites = make_sites(count)
    steps = int(HISTORY_HOURS * 3600 / HISTORY_EVERY_S)
    cache = None if args.cache is None else args.cache / f"lines-{count}-{args.rounds}-fleet.pickle"
    started = time.perf_counter()
    if cache is not None and cache.exists():
        log(f"{count} sites: lines from {cache}")
        with cache.open("rb") as file:
            times, rounds, history, history_names = pickle.load(file)  # our own file
        history_sites = [s for s in sites if s.site in history_names]
    else:
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        times = [
            end - timedelta(seconds=args.interval * (args.rounds - 1 - r))
            for r in range(args.rounds)
        ]
        log(f"{count} sites: the collector makes {args.rounds} rounds of lines")
        rounds = generate(sites, times, args.interval, workdir, summaries=True)
        storm = Storm.over(PROVINCES)
        history_sites = [s for s in sites if not storm.dark(s, STORM_AT)][: args.history_sites]
        history_times = [
            times[0] - timedelta(seconds=HISTORY_EVERY_S * (steps - i)) for i in range(steps)
        ]
        history = generate(history_sites, history_times, HISTORY_EVERY_S, workdir, with_state=False)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("wb") as file:
                names = [s.site for s in history_sites]
                pickle.dump((times, rounds, history, names), file, pickle.HIGHEST_PROTOCOL)
    made_s = time.perf_counter() - started
    figures: dict[str, Any] = {
        "sites": count,
        "reports per round": len(rounds[-1]),
        "lines made in (s, not timed below)": made_s,
    }
    log(f"made in {made_s:.0f} s; starting influxd ({args.index}, limits {args.limits})")
    root = workdir / f"influx-{count}"
    settings = data_settings(args)
    influxd = Influxd.start(root, data=settings)
    try:
        InfluxV1Client(influxd.url, DATABASE).create_database()
        pid = influxd.process.pid
        rss0 = rss_mb(pid)
        created = write(influxd.url, batches_of(rounds[0]), args.writers, pid)
        log(f"first round: {created.points} points in {created.seconds:.1f} s")
        steady = write(
            influxd.url, [b for r in rounds[1:] for b in batches_of(r)], args.writers, pid
        )
        log(f"steady rounds: {steady.points} points in {steady.seconds:.1f} s")
        write(influxd.url, [b for r in history for b in batches_of(r)], args.writers, pid)
        client = InfluxV1Client(influxd.url, DATABASE, timeout_s=600)
        t0 = time.perf_counter()
        breakdown = cardinality(influxd.url)
        cardinality_s = time.perf_counter() - t0
        series = sum(breakdown.values())
        rss_after = rss_mb(pid)
        data_mb, wal_mb = du(root / "data") / 1e6, du(root / "wal") / 1e6
        tsm_mb = sum(f.stat().st_size for f in (root / "data").rglob("*.tsm")) / 1e6
        series_file_mb = sum(du(d) for d in (root / "data").rglob("_series")) / 1e6
        site = history_sites[0].site
        now = times[-1] + timedelta(seconds=1)

        def page() -> None:
            charts = site_charts(client, site, HISTORY_HOURS, now)
            assert charts.rtt is not None

        page_s = median_s(page)
        rows_6h = len(
            client.query(
                f'SELECT "rtt_ms" FROM "link" WHERE "site" = \'{site}\' '
                f"AND time > {int((now - timedelta(hours=HISTORY_HOURS)).timestamp())}s"
            )
        )
        figures |= {
            "influxd RSS at start (MB)": rss0,
            "series (SHOW SERIES EXACT CARDINALITY)": series,
            "series per site": series / count,
            "series by measurement": breakdown,
            "SHOW SERIES EXACT CARDINALITY took (s)": cardinality_s,
            "create: points (first write of each series, + agents' state)": created.points,
            "create: seconds": created.seconds,
            "create: points/s": created.rate,
            "create: series/s": series / created.seconds,
            "create: influxd CPU (% of a core) / machine busy (% of 200)": (
                f"{created.influxd_cpu_pct:.0f} / {created.machine_cpu_pct:.0f}"
            ),
            "create: lines refused": created.refused,
            "create: batches not taken (HTTP 5xx, timeout), sent again": created.unavailable,
            "steady: points": steady.points,
            "steady: seconds": steady.seconds,
            "steady: points/s": steady.rate,
            "steady: influxd CPU (% of a core) / machine busy (% of 200)": (
                f"{steady.influxd_cpu_pct:.0f} / {steady.machine_cpu_pct:.0f}"
            ),
            "steady: lines refused": steady.refused,
            "steady: batches not taken (HTTP 5xx, timeout), sent again": steady.unavailable,
            "create ÷ steady (points/s)": created.rate / steady.rate if steady.rate else 0.0,
            "influxd RSS after the writes (MB)": rss_after,
            "influxd RSS per series (B)": (rss_after - rss0) * 2**20 / max(series, 1),
            "data + wal on disk (MB)": f"{data_mb:.0f} + {wal_mb:.0f}",
            "  of data: TSM files / series file (_series) / the rest (index) (MB)": (
                f"{tsm_mb:.0f} / {series_file_mb:.0f} / {data_mb - tsm_mb - series_file_mb:.0f}"
            ),
            f"site page, {HISTORY_HOURS} h ({steps} reports; median of 3, s)": page_s,
            f"  link rows of that site in {HISTORY_HOURS} h": rows_6h,
        }
        for label, w in (("create", created), ("steady", steady)):
            for n, error in enumerate(w.errors):
                figures[f"{label}: refusal {n + 1}"] = error
        if args.dashboards:
            # one province, with meeting points (the province dashboard's default choice)
            one = next(s.province for s in sites if s.kind == "meeting_point")
            figures |= dict(dashboards(influxd.url, now, one))
        client.close()
        log("restarting influxd")
        t0 = time.perf_counter()
        influxd.stop()
        stop_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        influxd = Influxd.start(root, data=settings, timeout_s=1800)
        ping_s = time.perf_counter() - t0
        client = InfluxV1Client(influxd.url, DATABASE, timeout_s=600)
        t0 = time.perf_counter()
        site_charts(client, site, HISTORY_HOURS, now)
        first_s = time.perf_counter() - t0
        figures |= {
            "restart: stop (s)": stop_s,
            "restart: start until /ping (s)": ping_s,
            "restart: first site page after it (s)": first_s,
            "restart: influxd RSS then (MB)": rss_mb(influxd.process.pid),
        }
        client.close()
    finally:
        influxd.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return figures


def reuse(args: argparse.Namespace) -> int:
    """Every dashboard timed, all provinces and one, on a kept folder: "now" is its newest
    report, the province the same as a full run's (``--sites``: the first count)."""
    import kienco

    influxd = Influxd.start(args.reuse, data=data_settings(args), timeout_s=1800)
    try:
        client = InfluxV1Client(influxd.url, DATABASE, timeout_s=600)
        newest = client.query('SELECT last("seq") FROM "report"')
        client.close()
        now = datetime.fromtimestamp(int(newest[0]["time"]) / 1e9, UTC) + timedelta(seconds=1)
        one = next(s.province for s in make_sites(args.sites[0]) if s.kind == "meeting_point")
        rows: list[tuple[str, Any]] = [
            ("dashboards of", str(Path(kienco.__file__).parents[1])),
            ("folder / now", f"{args.reuse} / {now:%Y-%m-%d %H:%M:%S} UTC"),
        ]
        rows += dashboards(influxd.url, now, one)
    finally:
        influxd.stop()
    print_summary("Dashboards on a kept InfluxDB folder", rows, as_json=args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sites", type=int, nargs="+", default=[103_400, 10_000], help="site counts, in order"
    )
    parser.add_argument("--rounds", type=int, default=3, help="reports per site (first + steady)")
    parser.add_argument("--interval", type=float, default=60.0, help="s between rounds")
    parser.add_argument("--writers", type=int, default=2, help="concurrent write threads")
    parser.add_argument("--index", choices=("inmem", "tsi1"), default="inmem")
    parser.add_argument("--limits", choices=("off", "default"), default="off")
    parser.add_argument("--history-sites", type=int, default=3)
    parser.add_argument(
        "--no-dashboards", dest="dashboards", action="store_false", help="skip the dashboards"
    )
    parser.add_argument("--keep", action="store_true", help="keep the InfluxDB folders")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the collector's lines in this folder and use them again (same --sites, "
        "--rounds): the lines' times are those of the run that made them",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="only time the dashboards, on an InfluxDB folder an earlier --keep run left "
        "(its influx-<sites> folder); PYTHONPATH=<another checkout> times that checkout's "
        "dashboards on the same data",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the first creates the series)")
    workdir = Path(tempfile.mkdtemp(prefix="kienco-bench-influx-series-"))
    if args.keep:
        log(f"keeping {workdir}")
    if args.reuse is not None:
        return reuse(args)
    results = []
    try:
        for count in args.sites:
            results.append(run(count, args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    rows: list[tuple[str, Any]] = [
        ("index / limits", f"{args.index} / {args.limits}"),
        ("rounds / interval (s) / writers", f"{args.rounds} / {args.interval:g} / {args.writers}"),
    ]
    for figures in results:
        rows += [(f"[{figures['sites']}] {label}", value) for label, value in figures.items()]
    if len(results) > 1:
        big, small = results[0], results[-1]
        for phase in ("create", "steady"):
            ratio = big[f"{phase}: points/s"] / small[f"{phase}: points/s"]
            rows.append((f"{phase} points/s, {big['sites']} ÷ {small['sites']} sites", ratio))
        rows.append(
            (
                f"restart until /ping, {big['sites']} ÷ {small['sites']} sites",
                big["restart: start until /ping (s)"] / small["restart: start until /ping (s)"],
            )
        )
    print_summary("InfluxDB 1.6 at the national cardinality", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
