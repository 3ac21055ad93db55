"""The collector's "rules + status" stage alone: µs per report, fresh or stale reports.

What ``benchmarks/collector_stages.py`` times as "rules + status (when judged)":
``Verdicts.evaluate`` (collector/readiness.py: the rules, hysteresis, the ``Status``
and its JSON, the verdict points), here with nothing else around it, so a change to
the rules can be measured to a few per cent. In process, no broker:

1. N realistic reports (benchmarks/ingest.py's generator: 1 000 sites, a UPS, a
   generator, 3 paths and a host) are parsed first; the sites' metas are folded in.
2. Each report is folded into its site (``SiteStates.apply_report``, not timed), then
   the site is judged at the report's ``taken_at`` + ``--lag-s``: 1 s by default, so
   every report is fresh and every rule runs, as in a fleet reporting on time;
   ``--stale`` judges 150 s after, beyond the stale window (3 intervals of 30 s), where
   every verdict stops at freshness. Timed, µs per report, best of ``--repeat`` passes
   (each over fresh state):
   - the stage: ``Verdicts.evaluate(site, now)``;
   - the rules alone: ``rules.evaluate(snapshot, policy, now)`` on the same snapshot;
   - raw limit, pydantic: the same ``Status`` validated again from its fields
     (``Status.model_validate``) and dumped to JSON, what building and encoding one
     status costs pydantic alone. The ratio stage ÷ raw says how far the stage is from it.
3. Python calls per evaluation (cProfile over one pass's first ``--profile-reports``),
   and with ``--profile`` the functions that take the most time.

CPU of one core on a shared machine: run it under the heavy lock.

    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/rules_eval.py
    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/rules_eval.py --stale --json
    .venv/bin/python benchmarks/rules_eval.py --reports 4000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from _common import passes_parser
from ingest import generate

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Report, Status
from rules import evaluate

PROVINCES = ("p0",)
STALE_LAG_S = 150.0  # beyond 3 intervals of 30 s: the site is stale when judged


def make_collector(root: Path) -> Collector:
    return Collector(CollectorConfig(data_dir=root, provinces=PROVINCES))


def one_pass(
    root: Path,
    metas: Sequence[tuple[str, bytes]],
    reports: Sequence[Report],
    lag: timedelta,
    *,
    profile_reports: int = 0,
) -> tuple[dict[str, float], int]:
    """µs per report of the stage, the rules alone and the raw limit; Python calls
    per evaluation (when ``profile_reports``: cProfile over that many, then no timing)."""
    collector = make_collector(root)
    try:
        start = reports[0].taken_at
        for topic, payload in metas:
            collector.process(topic, payload, start)
        states, verdicts, policy = collector.states, collector.verdicts, collector.verdicts.policy
        if profile_reports:
            profiler = cProfile.Profile()
            for report in reports[:profile_reports]:
                now = report.taken_at + lag
                states.apply_report(report, received_at=now)
                profiler.enable()
                verdicts.evaluate(report.site, now)
                profiler.disable()
            stats = pstats.Stats(profiler)
            return {}, round(stats.total_calls / profile_reports)  # type: ignore[attr-defined]
        clock = time.perf_counter_ns
        stage = alone = raw = 0
        # What is alive now (the parsed reports, the collector) out of the collector's
        # walks, as collector/heap.py does at start: only what the stage makes is walked.
        gc.collect()
        gc.freeze()
        for report in reports:
            now = report.taken_at + lag
            site = report.site
            states.apply_report(report, received_at=now)
            t0 = clock()
            judged = verdicts.evaluate(site, now)
            t1 = clock()
            snapshot = states.get(site)
            assert judged is not None and snapshot is not None
            t2 = clock()
            evaluate(snapshot, policy, now, risk_level=0)
            t3 = clock()
            fields = dict(judged[0])  # the Status's fields, as they are (no dump)
            t4 = clock()
            Status.model_validate(fields).model_dump_json(exclude_none=True)
            t5 = clock()
            stage += t1 - t0
            alone += t3 - t2
            raw += t5 - t4
    finally:
        gc.unfreeze()
        collector.stop()
    n = len(reports)
    return {
        "stage: Verdicts.evaluate (rules, hysteresis, Status, JSON, points)": stage / n / 1e3,
        "rules alone: rules.evaluate": alone / n / 1e3,
        "raw: Status.model_validate + model_dump_json": raw / n / 1e3,
    }, 0


def profile_top(
    root: Path,
    metas: Sequence[tuple[str, bytes]],
    reports: Sequence[Report],
    lag: timedelta,
    top: int,
) -> str:
    collector = make_collector(root)
    try:
        for topic, payload in metas:
            collector.process(topic, payload, reports[0].taken_at)
        profiler = cProfile.Profile()
        for report in reports:
            now = report.taken_at + lag
            collector.states.apply_report(report, received_at=now)
            profiler.enable()
            collector.verdicts.evaluate(report.site, now)
            profiler.disable()
    finally:
        collector.stop()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = passes_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best is shown")
    parser.add_argument("--lag-s", type=float, default=1.0, help="judged this long after a report")
    parser.add_argument(
        "--stale", action="store_true", help=f"judged {STALE_LAG_S:.0f} s after: freshness only"
    )
    parser.add_argument("--profile-reports", type=int, default=2_000, help="for calls per eval")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--top", type=int, default=25, help="functions shown with --profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    payloads, metas, _ = generate(args.reports, args.sites, 30.0, args.seed, PROVINCES)
    reports = [Report.model_validate_json(payload) for _, payload in payloads]
    lag = timedelta(seconds=STALE_LAG_S if args.stale else args.lag_s)
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="kienco-rules-eval-") as tmp:
        for i in range(args.repeat):
            figures, _ = one_pass(Path(tmp) / f"pass{i}", metas, reports, lag)
            runs.append(figures)
        _, calls = one_pass(
            Path(tmp) / "calls", metas, reports, lag, profile_reports=args.profile_reports
        )
        profile = (
            profile_top(Path(tmp) / "profile", metas, reports, lag, args.top)
            if args.profile
            else ""
        )
    table = {key: min(run[key] for run in runs) for key in runs[0]}
    stage = table["stage: Verdicts.evaluate (rules, hysteresis, Status, JSON, points)"]
    raw = table["raw: Status.model_validate + model_dump_json"]
    info: dict[str, object] = {
        "reports": "stale (freshness only)" if args.stale else "fresh (every rule runs)",
        "judged after taken_at, s": lag.total_seconds(),
        "reports per pass": len(reports),
        "sites": args.sites,
        "passes (best shown)": args.repeat,
        "Python calls per evaluation (cProfile)": calls,
        "ratio stage / raw pydantic status": round(stage / raw, 2),
        "evaluations/s one core could make at this cost": round(1e6 / stage),
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if args.json:
        print(json.dumps({"us_per_report": table, **info}, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in table)
    print(f"\n{'µs per report'.ljust(width)}  {'best':>8}  {'passes':>24}")
    for key, value in table.items():
        passes = " ".join(f"{run[key]:7.1f}" for run in runs)
        print(f"{key.ljust(width)}  {value:8.1f}  {passes:>24}")
    print()
    for name, said in info.items():
        print(f"{name}: {said}")
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
