"""What boxes whose clocks are months behind cost the writer, with and without the floor.

A fresh ``influxd`` (InfluxDB 1.x, as the tests use) with the shipped raw retention of
35 days as its default policy. Batches of ``--reports`` reports (each 3 power lines, as
one message's unit), ``--old`` of them stamped half a year ago (a spare from a drawer),
written through ``collector.writer.InfluxWriter`` as the collector writes them:

- ``clean``: no old report; the raw cost of a batch, the yardstick;
- ``traced``: old reports, no floor (the writer before collector/retention_floor.py):
  each batch traced by writing halves again, up to 64 more requests;
- ``floor``: old reports, the floor armed by the first refusal.

For each: requests a batch, lines sent a batch, seconds a batch, messages named refused a
batch (the old ones are the right answer), and the time as a ratio of ``clean``'s, in the
same run. Run by hand (figures move with the machine's load; ratios hold better):

    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/retention_floor.py
    .venv/bin/python benchmarks/retention_floor.py --reports 1000 --old 1 5 20 --batches 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import log, print_summary

from collector.influx import InfluxV1Client, WriteResult
from collector.line_protocol import Point, encode_many
from collector.retention_floor import RetentionFloor
from collector.spool import Spool
from collector.writer import InfluxWriter
from kienco.local_services import Influxd

DATABASE = "retention"
HALF_YEAR_NS = 182 * 86_400 * 10**9


class Counting(InfluxV1Client):
    """The real client, counting requests and lines sent."""

    requests = 0
    lines = 0

    def write(self, lines: str) -> WriteResult:
        self.requests += 1
        self.lines += lines.count("\n") + 1
        return super().write(lines)


def _batch(n: int, old: int, at_ns: int) -> list[str]:
    every = max(1, n // old) if old else n + 1
    units = []
    for i in range(n):
        stamp = at_ns - HALF_YEAR_NS if old and i % every == 0 and i // every < old else at_ns
        stamp -= i * 1_000  # distinct points
        points = [
            Point.make("power", {"site": f"s{i}", "device": f"ups{d}"}, {"load_pct": 1.0}, stamp)
            for d in range(3)
        ]
        units.append(encode_many(points))
    return units


def run(url: str, root: Path, mode: str, reports: int, old: int, batches: int) -> dict[str, float]:
    client = Counting(url, DATABASE, timeout_s=60.0)
    floor = RetentionFloor(client.retention_s) if mode == "floor" else None
    with Spool(root / f"spool-{mode}-{old}.sqlite") as spool:
        writer = InfluxWriter(client, spool, retention=floor)
        if floor is not None:  # armed as in a run: by a first refusal
            writer.write_durably(_batch(reports, max(1, old), time.time_ns()))
        client.requests = client.lines = 0
        named = 0
        started = time.perf_counter()
        for _ in range(batches):
            outcome = writer.write_durably(_batch(reports, old, time.time_ns()))
            named += len(outcome.refusals)
        seconds = time.perf_counter() - started
    client.close()
    return {
        "requests": client.requests / batches,
        "lines": client.lines / batches,
        "seconds": seconds / batches,
        "named": named / batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=1_000, help="reports a batch")
    parser.add_argument("--old", type=int, nargs="+", default=[1, 5, 20], help="old ones")
    parser.add_argument("--batches", type=int, default=20, help="batches a measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kienco-retention-") as folder:
        root = Path(folder)
        influxd = Influxd.start(root / "influxd")
        try:
            with InfluxV1Client(influxd.url, DATABASE) as admin:
                admin.create_database()
                admin.query(
                    f'ALTER RETENTION POLICY "autogen" ON "{DATABASE}" DURATION 35d DEFAULT'
                )
            log("influxd up; 35-day default policy")
            run(influxd.url, root, "clean", args.reports, 0, args.batches)  # warm: not counted
            clean = run(influxd.url, root, "clean", args.reports, 0, args.batches)
            ms = clean["seconds"] * 1e3
            rows: list[tuple[str, object]] = [
                (
                    "clean: requests / lines / ms a batch",
                    f"{clean['requests']:.1f} / {clean['lines']:.0f} / {ms:.1f}",
                )
            ]
            for old in args.old:
                for mode in ("traced", "floor"):
                    got = run(influxd.url, root, mode, args.reports, old, args.batches)
                    rows.append(
                        (
                            f"{old} old, {mode}: requests / lines / ms / named a batch",
                            f"{got['requests']:.1f} / {got['lines']:.0f} / "
                            f"{got['seconds'] * 1e3:.1f} / {got['named']:.1f}"
                            f"  (time ×{got['seconds'] / clean['seconds']:.2f} of clean)",
                        )
                    )
        finally:
            influxd.stop()
    print_summary(
        f"writer, {args.reports} reports a batch, {args.batches} batches", rows, as_json=args.json
    )


if __name__ == "__main__":
    main()
