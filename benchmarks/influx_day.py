"""InfluxDB 1.6 disk per day: a day of reports from a sample of the national fleet, compacted.

``--sites`` sites of ``kienco simulate``'s fleet (every n-th of its 103 400, so that kinds and
provinces come in proportion, with its storm over two provinces) report every
``--interval`` s for ``--hours`` hours (by default a day at 60 s). Every message goes
through the collector's own ``Collector.process`` (``influx_series.generate``): the lines
are what a shard writes for them. They are written to a fresh ``influxd`` with the shipped
file's index and limits (tsi1, no series or tag-value limits), which is then stopped;
``benchmarks/influx_disk.py`` opens the folder again with short cold durations, so that
the cache goes to TSM files and is fully compacted, and measures bytes per report.

Unlike ``ingest.py``'s short runs, TSM sees each series over the whole day here, as a
day's shard does; this is the figure docs/capacity.md's disk per day takes. Left out: the
collector's per-minute summaries (``fleet``, ``attention``), whose size does not grow
with the sites, and the series file, which grows with the series, not the days.

CPU of 2 shared cores: run it under the heavy lock.

    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/influx_day.py
    .venv/bin/python benchmarks/influx_day.py --sites 50 --hours 2 --keep
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import log, print_summary
from influx_series import DATABASE, batches_of, generate, write

from collector.influx import InfluxV1Client
from kienco.fleet.fleet import make_sites
from kienco.local_services import Influxd, shipped_influxdb_data

NATIONAL_SITES = 103_400
DAY_S = 86_400


def sample(count: int) -> list[Any]:
    """Every n-th site of the national fleet: its mix of kinds and provinces."""
    fleet = make_sites(NATIONAL_SITES)
    step = max(1, len(fleet) // count)
    return fleet[::step][:count]


def compacted(root: Path, settle_s: float) -> dict[str, Any]:
    """benchmarks/influx_disk.py on the stopped server's folder, its JSON."""
    script = Path(__file__).with_name("influx_disk.py")
    command = [sys.executable, str(script), str(root), "--settle", str(settle_s), "--json"]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    start = run.stdout.index("{")
    result: dict[str, Any] = json.loads(run.stdout[start:])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sites", type=int, default=200, help="sampled from the national fleet")
    parser.add_argument("--hours", type=float, default=24.0, help="reported over, h")
    parser.add_argument("--interval", type=float, default=60.0, help="s between reports")
    parser.add_argument("--writers", type=int, default=2, help="concurrent write threads")
    parser.add_argument("--settle", type=float, default=300.0, help="wait for compaction, s")
    parser.add_argument("--keep", action="store_true", help="keep the InfluxDB folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    sites = sample(args.sites)
    steps = int(args.hours * 3600 / args.interval)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    times = [end - timedelta(seconds=args.interval * (steps - 1 - i)) for i in range(steps)]
    workdir = Path(tempfile.mkdtemp(prefix="kienco-bench-influx-day-"))
    log(f"{len(sites)} sites x {steps} reports ({args.hours:g} h at {args.interval:g} s)")
    started = time.perf_counter()
    rounds = generate(sites, times, args.interval, workdir)
    made_s = time.perf_counter() - started
    messages = [text for round_ in rounds for text in round_]
    log(f"lines made in {made_s:.0f} s; writing them to influxd (tsi1, no limits)")
    root = workdir / "influx"
    influxd = Influxd.start(root, data=shipped_influxdb_data())
    try:
        InfluxV1Client(influxd.url, DATABASE).create_database()
        written = write(influxd.url, batches_of(messages), args.writers, influxd.process.pid)
    finally:
        influxd.stop()
    if written.refused or written.errors:
        log(f"InfluxDB refused {written.refused} points: {written.errors}")
    log(f"{written.points:,} points in {written.seconds:.0f} s; compacting (influx_disk.py)")
    disk = compacted(root, args.settle)
    reports = int(disk["reports (count(seq) of report)"])
    tsm_per_report = float(disk["compacted: TSM bytes per report"])
    wal_left = int(disk["compacted: WAL left (bytes)"])
    # The upper bound: the WAL segment influxd had not yet removed counted as if it stayed.
    per_report = tsm_per_report + wal_left / reports
    rows: list[tuple[str, Any]] = [
        ("sites (every n-th of the national fleet)", len(sites)),
        ("reported over (h) / every (s)", f"{args.hours:g} / {args.interval:g}"),
        ("reports stored (count(seq))", reports),
        ("points written / refused", f"{written.points:,} / {written.refused}"),
        ("series (exact cardinality)", disk["series (exact cardinality)"]),
        ("compacted: TSM bytes per report (lower bound)", tsm_per_report),
        ("compacted: TSM + WAL left, bytes per report (upper bound)", per_report),
        ("series file and index, not per day (bytes)", disk["series file and index (bytes)"]),
    ]
    for interval in (60, 30, 10):
        per_day = NATIONAL_SITES * DAY_S / interval
        rows.append(
            (
                f"national disk per day at {interval} s, lower / upper (GB)",
                f"{per_day * tsm_per_report / 1e9:.1f} / {per_day * per_report / 1e9:.1f}",
            )
        )
    title = f"InfluxDB 1.6: disk per day ({args.hours:g} h of reports measured)"
    print_summary(title, rows, as_json=args.json)
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
