"""What the silence sweep costs a fleet that reports on time, and that it still finds the
sites that stop.

A real fleet reports every 10–60 s. The collector judges a site at each report, and its
sweeper judges the sites whose silence may have changed their verdict
(collector/readiness.py ``Verdicts.due``). Each judgement costs the rules, a ``readiness``
point for InfluxDB and a row for the state saver. This plays that on a simulated clock,
in this process (no broker, no InfluxDB; the state saver writes its real SQLite file):

- ``--sites`` stations (a meta each; a quarter on battery), each reporting every
  ``--interval`` s at its own phase, for ``--minutes`` of simulated time; each report
  folded (``SiteStates``), judged (``Verdicts.evaluate``) and its points encoded as
  line protocol, as the collector's MQTT thread does;
- every simulated second the sweeper's work: ``due(now)``, each due site judged and its
  points encoded; and the state saver's ``save_changed`` (one transaction);
- ``--silent`` of the sites stop reporting half-way: each must be judged ``unknown``
  within a second of the end of its stale window (3 intervals by the default policy).

Printed: judgements per report (the reports' own and the sweep's), ``readiness`` points
per report, rows saved per report, CPU µs per report (all of it, and the sweep's part),
and the same fleet played again with the sweep turned off in the same run (the floor: a
judgement, a point and a save per report) — the ratio says what the sweep adds. Run it
against two checkouts to compare (the benchmark imports the collector from PYTHONPATH):

    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/silence_sweep.py
    PYTHONPATH=<other checkout> .venv/bin/python benchmarks/silence_sweep.py --sites 2000

``--decode`` hands each report to the fold as the collector's MQTT thread does: its JSON
decoded and validated by ``collector.decode`` (the models the fold keeps are the decoder's).

``--heap-as-run`` keeps the heap as ``kienco collector run`` does (collector/heap.py:
``settle`` at the start, ``keep_settled`` after) and prints the time spent in garbage
collections by generation (``GcPauses``), for both plays together: run against two
checkouts, it compares their garbage collector policies on the fleet's pattern.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import make_meta, make_report, make_sites, print_summary, wire
from prometheus_client import CollectorRegistry
from state_restore import _on_battery

from collector.decode import Decoded, decode
from collector.heap import GcPauses, keep_settled, settle
from collector.line_protocol import encode_many
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_store import StateStore
from contract.wire import Report
from rules import load_policy

START = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)


def play(
    sites: int,
    interval_s: float,
    minutes: float,
    silent: int,
    *,
    sweep: bool,
    workdir: Path,
    decoded: bool = False,
) -> dict[str, Any]:
    """One simulated run; its counts and CPU seconds."""
    clock = [START]
    states = SiteStates(clock=lambda: clock[0])
    verdicts = Verdicts(states, load_policy())
    store = StateStore(
        workdir / f"state-{sweep}.sqlite",
        states,
        verdicts,
        CollectorRegistry(),
        save_every_s=1.0,
    )
    fleet = make_sites(sites)
    rng = random.Random(5)
    phase = {s.site: rng.uniform(0, interval_s) for s in fleet}
    stop_at = START + timedelta(seconds=minutes * 30)  # the silent ones stop half-way
    quiet = {s.site for s in rng.sample(fleet, silent)}
    on_battery = {s.site for s in fleet[::4]}  # a quarter, the same every run
    last_report: dict[str, datetime] = {}
    seq: Counter[str] = Counter()
    for site in fleet:
        states.apply_meta(make_meta(site, START - timedelta(days=1), interval_s=interval_s))
    counts: Counter[str] = Counter()
    found_late: list[float] = []  # seconds past its window a silent site was judged unknown
    unknown_at: dict[str, datetime] = {}
    cpu = {"all": 0.0, "sweep": 0.0}
    gc.collect()
    seconds = int(minutes * 60)
    # Each second: the reports taken in it (by phase), then the sweep, then the saver.
    by_second: dict[int, list[Any]] = {}
    for site in fleet:
        for k in range(int(seconds / interval_s) + 1):
            t = phase[site.site] + k * interval_s
            if t < seconds:
                by_second.setdefault(int(t), []).append((t, site))
    for second in range(seconds):
        now = START + timedelta(seconds=second + 1)
        clock[0] = now
        started = time.thread_time()
        for t, site in by_second.get(second, ()):
            at = START + timedelta(seconds=t)
            if site.site in quiet and at >= stop_at:
                continue
            seq[site.site] += 1
            report = make_report(site, seq[site.site], at, interval_s=interval_s, rng=rng)
            if site.site in on_battery:
                report = _on_battery(report, seq[site.site] % 30)
            if decoded:
                topic = f"kienco/v1/{report.province}/{report.site}/report"
                got = decode(
                    topic,
                    wire(report),
                    now=now,
                    max_bytes=65_536,
                    future_tolerance_s=300,
                )
                assert isinstance(got, Decoded) and isinstance(got.message, Report), got
                report = got.message
            states.apply_report(report, received_at=now)
            last_report[site.site] = at
            judged = verdicts.evaluate(site.site, now)
            counts["reports"] += 1
            if judged is not None:
                counts["judgements: reports"] += 1
                counts["readiness points"] += sum(p.measurement == "readiness" for p in judged[2])
                encode_many(judged[2])
        if sweep:
            swept = time.thread_time()
            for site_id in verdicts.due(now):
                judged = verdicts.evaluate(site_id, now)
                if judged is None:
                    continue
                counts["judgements: sweep"] += 1
                counts["readiness points"] += sum(p.measurement == "readiness" for p in judged[2])
                encode_many(judged[2])
                if site_id in quiet and judged[0].verdict == "unknown":
                    unknown_at.setdefault(site_id, now)
            cpu["sweep"] += time.thread_time() - swept
        counts["rows saved"] += store.save_changed()
        cpu["all"] += time.thread_time() - started
    store.close()
    for site_id in quiet:
        window_end = last_report[site_id] + timedelta(seconds=3 * interval_s)
        if site_id in unknown_at:
            found_late.append((unknown_at[site_id] - window_end).total_seconds())
    return {
        "counts": counts,
        "cpu": cpu,
        "found": len(unknown_at),
        "late_max_s": max(found_late, default=None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=5_000)
    parser.add_argument("--interval", type=float, default=60.0, help="each site's, s")
    parser.add_argument("--minutes", type=float, default=12.0, help="simulated")
    parser.add_argument("--silent", type=int, default=50, help="sites that stop half-way")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--heap-as-run", action="store_true", help="freeze the heap as `collector run` does"
    )
    parser.add_argument(
        "--decode", action="store_true", help="each report's JSON decoded as the collector does"
    )
    args = parser.parse_args()
    pauses = GcPauses()
    if args.heap_as_run:
        settle()
        keep_settled()
    with tempfile.TemporaryDirectory(prefix="kienco-bench-sweep-") as folder:
        swept, floor = (
            play(
                args.sites,
                args.interval,
                args.minutes,
                args.silent,
                sweep=sweep,
                workdir=Path(folder),
                decoded=args.decode,
            )
            for sweep in (True, False)
        )
    counts, reports = swept["counts"], swept["counts"]["reports"]
    per_report = swept["cpu"]["all"] / reports * 1e6
    floor_per_report = floor["cpu"]["all"] / floor["counts"]["reports"] * 1e6
    rows: list[tuple[str, Any]] = [
        (
            "sites / interval s / simulated minutes",
            f"{args.sites} / {args.interval:g} / {args.minutes:g}",
        ),
        ("reports", reports),
        (
            "judgements per report: the reports' own",
            round(counts["judgements: reports"] / reports, 3),
        ),
        ("judgements per report: the sweep's", round(counts["judgements: sweep"] / reports, 3)),
        ("readiness points per report", round(counts["readiness points"] / reports, 3)),
        ("rows saved per report", round(counts["rows saved"] / reports, 3)),
        ("CPU µs per report, all", round(per_report, 1)),
        ("CPU µs per report, of it the sweep", round(swept["cpu"]["sweep"] / reports * 1e6, 1)),
        ("floor (no sweep, same run): CPU µs per report", round(floor_per_report, 1)),
        (
            "floor: rows saved per report",
            round(floor["counts"]["rows saved"] / floor["counts"]["reports"], 3),
        ),
        ("all ÷ floor", round(per_report / floor_per_report, 3)),
        (
            "garbage collections, s: young / middle / full (both plays)",
            " / ".join(f"{seconds:.2f}" for seconds in pauses.sum_s),
        ),
        ("heap as `collector run` keeps it", args.heap_as_run),
        ("reports decoded from their JSON", args.decode),
        (f"silent sites judged unknown (of {args.silent})", swept["found"]),
        ("latest past its stale window, s", swept["late_max_s"]),
    ]
    print_summary("silence sweep over a fleet reporting on time", rows, as_json=args.json)
    ok = swept["found"] == args.silent and (swept["late_max_s"] or 0) <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
