"""Instructions and cache misses a report costs the collector, counted by valgrind's
cachegrind: the same count run after run on a shared machine, where timings move ×3.

Timings on this machine move by more than most levers change (docs/throughput.md:
"within the runs' spread", again and again). Cachegrind runs the process on a simulated
CPU and counts what it executes: instructions, and misses of a simulated first-level
data cache (D1) and last-level cache (LL). With the hash seed and the run's clock fixed,
instructions repeat to ~0.01 % and D1 misses to ~2 % (measured: docs/throughput.md,
"Counting instead of timing"); what it does not see is time (a miss to RAM costs far
more than an instruction) and what other processes do to the caches.

Each figure is the difference of two runs in fresh processes, ``--reports`` and twice as
many fresh reports through ``Collector.handle`` (the same workload, made whole in both,
the heap kept as ``kienco collector run`` keeps it), divided by ``--reports``: start-up,
imports and the workload's making cancel. In the same run, the raw limits: pydantic's
``Report.model_validate_json`` alone over the same payloads (what any consumer that
validates pays at least), and ``json.loads`` alone.

    .venv/bin/python benchmarks/instructions.py
    .venv/bin/python benchmarks/instructions.py --checkout /path/to/other/checkout
    .venv/bin/python benchmarks/instructions.py --stages

``--stages`` also cuts this checkout's ingest path after each stage in turn (decode,
admission and fold, the judgement, lines: as ``collector_stages.py`` times them) and
prints what each stage adds, counted the same way. The judgement is cut into its parts:
``rules.evaluate``, the ``Status`` made from its evaluation (the reasons, their texts,
pydantic's validation), that Status's JSON, and what the whole ``Verdicts.evaluate`` adds
to those three (hysteresis, the site's look at its silence, the verdict points).

``--checkout`` (repeatable) measures another checkout's collector code in the same run
(its folder first on ``PYTHONPATH``; this file and its workload are this checkout's):
an A/B of a lever's instructions to a tenth of a per cent. Each run takes a minute or
two (cachegrind is ~50 times slower); needs valgrind (``apt-get install -y valgrind``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import PYTHON, REPO, print_summary

MODES = ("handle", "validate", "json")
NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # the run's clock (see child)
# --stages: the ingest path cut after each stage, in order (each run does all before it)
STAGES = {
    "decode": "decode + validation",
    "fold": "admission + state fold",
    # the judgement's parts: the rules on the snapshot, the Status built from their
    # evaluation, its JSON; then Verdicts.evaluate whole (what it adds to the three:
    # hysteresis, the site's look at its silence, the verdict points)
    "rules": "judgement: rules.evaluate",
    "status": "judgement: the Status (reasons, texts, pydantic)",
    "status_json": "judgement: the Status's JSON",
    "judge": "judgement: the rest of Verdicts.evaluate (hysteresis, silence look, points)",
    "lines": "report and verdict lines",
}
_JUDGEMENT_PARTS = ("rules", "status", "status_json")
_COUNTS = {
    "instructions": re.compile(r"I\s+refs:\s+([\d,]+)"),
    "D1 misses": re.compile(r"D1\s+misses:\s+([\d,]+)"),
    "LL misses": re.compile(r"LL misses:\s+([\d,]+)"),
}


def child(mode: str, n: int, total: int, sites: int) -> None:
    """In the measured process: make ``total`` reports, put the first ``n`` through ``mode``."""
    from collector_stages import PROVINCES, make_collector
    from ingest import FRESH_SPAN_S, generate

    from collector.heap import keep_settled, settle
    from contract.wire import Report

    # One instant for the whole run, the workload's and the collector's clock: under
    # cachegrind a run takes minutes, and on the wall clock reports would age past the stale
    # window while it runs (the rules then stop at freshness: fewer instructions, varying).
    reports, metas, _ = generate(
        total, sites, 30.0, 1, PROVINCES, fresh_span_s=FRESH_SPAN_S, now=NOW
    )
    settle()
    keep_settled()  # as `kienco collector run` keeps its heap
    if mode == "json":
        for _, payload in reports[:n]:
            json.loads(payload)
        return
    if mode == "validate":
        for _, payload in reports[:n]:
            Report.model_validate_json(payload)
        return
    with tempfile.TemporaryDirectory(prefix="kienco-bench-instructions-") as tmp:
        collector = make_collector(Path(tmp), None, clock=lambda: NOW)
        collector.client.publish = lambda *_a, **_k: None  # type: ignore[method-assign,assignment]
        try:
            if mode == "handle":
                for topic, payload in metas:
                    collector.handle(topic, payload, 0, 0)
                for mid, (topic, payload) in enumerate(reports[:n]):
                    collector.handle(topic, payload, (mid % 65_000) + 1, 1)
            else:
                _stages_up_to(collector, mode, metas, reports[:n])
        finally:
            collector.stop()


def _stages_up_to(
    collector: Any, last: str, metas: list[tuple[str, bytes]], reports: list[tuple[str, bytes]]
) -> None:
    """The ingest path's stages in order, as collector_stages.py times them, up to ``last``."""
    from collector.decode import Decoded, decode_within
    from collector.line_protocol import encode_many
    from collector.points import report_lines, site_tags
    from contract.wire import Report
    from rules import evaluate, to_status

    now = NOW
    for topic, payload in metas:
        collector.process(topic, payload, now)
    limits, states, verdicts = collector.config.limits, collector.states, collector.verdicts
    for topic, payload in reports:
        decoded = decode_within(limits, topic, payload, now)
        if last == "decode":
            continue
        assert isinstance(decoded, Decoded) and isinstance(decoded.message, Report), decoded
        assert collector.admission.check(decoded) is None
        report = decoded.message
        changed = states.apply_report(report, received_at=now)
        if last == "fold":
            continue
        if last in _JUDGEMENT_PARTS:  # the parts of Verdicts.evaluate, done by hand
            snapshot = states.get(report.site)
            assert changed and snapshot is not None
            evaluation = evaluate(snapshot, verdicts.policy, now)
            if last == "rules":
                continue
            status = to_status(evaluation, snapshot)
            if last == "status":
                continue
            status.model_dump_json(exclude_none=True)
            continue
        outcome = verdicts.evaluate(report.site, now) if changed else None
        if last == "judge":
            continue
        kind, operator = site_tags(states.get(report.site))
        text = report_lines(report, site_kind=kind, operator=operator)
        if outcome:
            text += "\n" + encode_many(outcome[2])


def counted(checkout: Path, mode: str, n: int, total: int, sites: int) -> dict[str, int]:
    """Cachegrind's totals for one child process."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": f"{checkout}{os.pathsep}{REPO}"}
    argv = [PYTHON, str(Path(__file__).resolve()), "--child", mode, str(n), str(total), str(sites)]
    # Once natively first: byte-code compiled and cached, so neither counted run compiles.
    subprocess.run([*argv[:4], "0", str(total), str(sites)], env=env, check=True)
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=yes",
            "--cachegrind-out-file=/dev/null",
            *argv,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {n} in {checkout} failed:\n{done.stderr[-2000:]}")
    found = {}
    for name, pattern in _COUNTS.items():
        match = pattern.search(done.stderr)
        if match is None:
            raise RuntimeError(f"no {name!r} in cachegrind's summary:\n{done.stderr[-2000:]}")
        found[name] = int(match.group(1).replace(",", ""))
    return found


def per_report(checkout: Path, mode: str, n: int, sites: int) -> dict[str, float]:
    total = 2 * n
    short = counted(checkout, mode, n, total, sites)
    long = counted(checkout, mode, total, total, sites)
    return {name: (long[name] - short[name]) / n for name in _COUNTS}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--reports", type=int, default=2_000, help="reports counted")
    parser.add_argument("--sites", type=int, default=1_000, help="distinct sites")
    parser.add_argument(
        "--checkout",
        type=Path,
        action="append",
        default=[],
        help="another checkout's collector code, measured in the same run (repeatable)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also this checkout's path cut after each stage: instructions a stage adds",
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="counts run side by side"
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument(
        "--child", nargs=4, metavar=("MODE", "N", "TOTAL", "SITES"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        mode, n, total, sites = args.child
        child(mode, int(n), int(total), int(sites))
        return 0
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install -y valgrind", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    rows: list[tuple[str, Any]] = [
        ("reports counted (the difference of N and 2N) / sites", f"{args.reports} / {args.sites}")
    ]
    # Every count is its own pair of processes: run them side by side, one a core.
    checkouts = [REPO, *(c.resolve() for c in args.checkout)]
    tasks = [(REPO, mode) for mode in MODES[1:]] + [(c, "handle") for c in checkouts]
    if args.stages:
        tasks += [(REPO, mode) for mode in STAGES]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        counts = dict(
            zip(
                tasks,
                pool.map(lambda t: per_report(t[0], t[1], args.reports, args.sites), tasks),
                strict=True,
            )
        )
    limits = {mode: counts[REPO, mode] for mode in MODES[1:]}
    for mode, figures in limits.items():
        for name, value in figures.items():
            rows.append((f"raw limit, {mode}: {name} a report", round(value)))
    for checkout in checkouts:
        figures = counts[checkout, "handle"]
        label = "this checkout" if checkout == REPO else str(checkout)
        for name, value in figures.items():
            rows.append((f"{label}: Collector.handle, {name} a report", round(value)))
        rows.append(
            (
                f"{label}: instructions ÷ pydantic's validation alone",
                round(figures["instructions"] / limits["validate"]["instructions"], 2),
            )
        )
    if args.stages:
        before: dict[str, float] = dict.fromkeys(_COUNTS, 0.0)
        for mode, stage in STAGES.items():
            upto = counts[REPO, mode]
            for name in _COUNTS:
                rows.append((f"stage {stage}: {name} a report", round(upto[name] - before[name])))
            before = upto
    rows.append(("minutes", round((datetime.now(UTC) - started).total_seconds() / 60, 1)))
    print_summary("instructions and cache misses a report (cachegrind)", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
