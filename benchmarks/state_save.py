"""What saving the collector's state costs per site, and per report in a real fleet.

The collector's ``state-saver`` thread (collector/state_store.py) writes every site that
changed since its last pass, every ``state.save_every_s`` (1 s), in one SQLite
transaction. In a real fleet a site reports every 10–60 s, slower than that period, so
every report costs one site save. This measures that cost, in this process, no broker:

1. N sites (``--sites``, default 1 000 and 10 000) built as benchmarks/state_restore.py
   builds them: a meta and ``HISTORY_LEN + 1`` reports each (the battery history full for
   every device), folded by ``SiteStates`` and judged by ``Verdicts``.
2. Building a site's row, µs of CPU per site: the snapshot's JSON (``site_json``; also
   its parts alone: the meta, the battery history) and the held verdict's
   (``held_json``); bytes per site (snapshot, held, status).
3. SQLite, µs of CPU per site: the rows built in 2, upserted by the store's own
   statement into the store's own file (``open_durable``: WAL, ``synchronous=FULL``), all
   N in one transaction, every site already in the file (as in a running collector).
4. The whole ``StateStore.save_changed`` with every site changed, and the fleet pattern:
   every site reports once (folded and judged, not timed), then one save: its CPU ÷ the
   reports of the round = µs per report. ``4 × --rounds`` rounds rotate the saver's
   snapshot encoding: ``site_json`` whole (what it did before), ``SiteEncoder`` keeping
   only each device's battery history encoded between saves, only the meta, and both
   (the saver's): each lever alone and together, A/B in one run. The encoding alone is
   timed too, every round for every way, on spare encoders kept in step.
5. The two tiers (``state.snapshot_every_s``): the fleet pattern again, a round every
   ``INTERVAL_S`` of the saver's clock, each report also logged as the collector logs it
   (its payload bytes, made outside the timing), for 1 s (a snapshot at every change, as
   the saver before the tiers), 120 s and 300 s: save CPU per report over
   ``--tier-rounds`` rounds, the mean (snapshot passes included) and the least pass.
   Then a crash (the last pass is all there is) and a restore: seconds with the log
   folded again and without (the same file), and µs per message folded again.
6. Raw limits in the same run: ``json.dumps`` and ``pydantic_core.to_json`` of the same
   data as plain Python values (what the rows decode to), and SQLite's bare upsert of rows
   of the same byte size into a two-column table (one transaction; ``synchronous=FULL``
   and ``NORMAL``). The ratios say how far each part is from what its engine allows.

CPU is this thread's (``time.thread_time``: includes the kernel's work in fsync
calls, not the wait for the disk). Best of ``--repeat`` passes. Run it under the heavy
lock (2 shared cores):

    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/state_save.py
    flock /tmp/kienco-heavy.lock .venv/bin/python benchmarks/state_save.py --sites 1000 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import make_report, make_sites
from pydantic_core import to_json
from state_restore import _on_battery, build

from collector.config import Limits
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_codec import SiteEncoder, held_json, site_json
from collector.state_store import _SNAPSHOT, _VERDICT, StateStore, refolder
from contract.wire import Meta
from plumbing.durable import open_durable
from rules import SiteSnapshot, load_policy
from rules.snapshot import HISTORY_LEN

INTERVAL_S = 30.0


def cpu_us_per(items: Sequence[Any], work: Callable[[Any], object], repeat: int) -> float:
    """Best-of-``repeat`` CPU µs per item of ``work`` over ``items``."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.thread_time()
        for item in items:
            work(item)
        best = min(best, time.thread_time() - started)
    return best / len(items) * 1e6


def cpu_us_once(count: int, work: Callable[[], object]) -> float:
    gc.collect()
    started = time.thread_time()
    work()
    return (time.thread_time() - started) / count * 1e6


def upsert_all(db: sqlite3.Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    db.execute("BEGIN")
    db.executemany(statement, rows)
    db.execute("COMMIT")


def fold_round(
    states: SiteStates,
    verdicts: Verdicts,
    sites: Sequence[Any],
    step: int,
    store: StateStore | None = None,
) -> None:
    """Every site reports once more (a new report folded and judged; logged for
    ``store`` as the collector logs it, its payload made here as the agent made it)."""
    now = datetime.now(UTC)
    for index, site in enumerate(sites):
        report = make_report(site, step, now, interval_s=INTERVAL_S, rng=_RNG)
        if index % 4 == 0:
            report = _on_battery(report, step % 30)
        states.apply_report(report, received_at=now)
        if store is not None:
            topic = f"kienco/v1/{report.province}/{report.site}/report"
            store.folded((report.site, topic, report.model_dump_json().encode(), now, True, False))
        verdicts.evaluate(site.site, now)


_RNG = random.Random(11)


class WholeEncoder(SiteEncoder):
    """The saver's encoding before it kept the history: every site's JSON whole."""

    def site_json(self, snapshot: SiteSnapshot) -> bytes:
        return site_json(snapshot)


ENCODINGS: dict[str, Callable[[], SiteEncoder]] = {
    "site_json whole (before)": WholeEncoder,
    "history kept": lambda: SiteEncoder(history=True, meta=False),
    "meta kept": lambda: SiteEncoder(history=False, meta=True),
    "history + meta kept (the saver's)": SiteEncoder,
}


TIER_PERIODS = (1.0, 120.0, 300.0)


def measure_tiers(
    figures: dict[str, float],
    states: SiteStates,
    verdicts: Verdicts,
    sites: Sequence[Any],
    workdir: Path,
    period: float,
    rounds: int,
    step: int,
) -> int:
    """The fleet pattern with the saver in two tiers, snapshots every ``period`` s of its
    clock; then a crash and the restores. Returns the next report step."""
    clock = [0.0]
    path = workdir / f"tiers-{period:g}.sqlite"
    store = StateStore(
        path,
        states,
        verdicts,
        None,
        save_every_s=1.0,
        snapshot_every_s=period,
        clock=lambda: clock[0],
    )
    for snapshot in states.all():
        states.mark_dirty(snapshot.site)
    store.save_changed()  # every site on disk once, as in a running collector
    per_round = []
    for _ in range(rounds):
        clock[0] += INTERVAL_S
        fold_round(states, verdicts, sites, step, store)
        step += 1
        per_round.append(cpu_us_once(len(sites), store.save_changed))
    label = f"two tiers, snapshot every {period:g} s"
    # The mean is what the saver spends (its snapshot passes included); the least, a
    # pass of verdicts and log alone once the period is longer than a round.
    figures[f"{label}: save CPU per report, mean"] = sum(per_round) / rounds
    figures[f"{label}: save CPU per report, least pass"] = min(per_round)
    store._db.close()  # a crash: what the last pass committed is all there is
    figures[f"{label}: file MB at the crash"] = (
        sum(f.stat().st_size for f in workdir.glob(f"{path.name}*")) / 1e6
    )
    plain = workdir / f"tiers-{period:g}-plain.sqlite"
    for suffix in ("", "-wal"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{plain}{suffix}")
    seconds = {}
    for name, file, refold in (("with the log", path, True), ("snapshots only", plain, False)):
        fresh = SiteStates()
        judged = Verdicts(fresh, load_policy())
        reader = StateStore(file, fresh, judged, None, save_every_s=1.0, snapshot_every_s=period)
        now = datetime.now(UTC)
        started = time.perf_counter()
        reader.restore(
            now,
            listed_in=lambda _s: None,
            not_before=now,
            refold=refolder(fresh, Limits()) if refold else None,
        )
        seconds[name] = time.perf_counter() - started
        if refold:
            refolded = reader.refolded.labels("folded")._value.get()
        reader._db.close()
    figures[f"{label}: messages folded again at the restore"] = refolded
    figures[f"{label}: restore s, with the log"] = seconds["with the log"]
    figures[f"{label}: restore s, snapshots only"] = seconds["snapshots only"]
    if refolded:
        figures[f"{label}: µs per message folded again"] = (
            (seconds["with the log"] - seconds["snapshots only"]) / refolded * 1e6
        )
    return step


def measure(
    count: int, rounds: int, repeat: int, workdir: Path, tier_rounds: int
) -> dict[str, float]:
    states, verdicts, _ = build(count, HISTORY_LEN + 1, INTERVAL_S)
    sites = make_sites(count)
    snapshots = states.all()
    helds = [verdicts.saved_of(s.site) for s in snapshots]
    assert all(h is not None for h in helds)
    held_values = [h[0] for h in helds if h is not None]
    statuses = [h[1] for h in helds if h is not None]
    metas: list[Meta] = [s.meta for s in snapshots if s.meta is not None]
    histories = [s.power_history for s in snapshots]
    figures: dict[str, float] = {}

    encoded = [site_json(s) for s in snapshots]
    held_encoded = [held_json(h) for h in held_values]
    figures["bytes: snapshot JSON per site"] = sum(map(len, encoded)) / count
    figures["bytes: held verdict JSON per site"] = sum(map(len, held_encoded)) / count
    figures["bytes: status JSON per site"] = sum(map(len, statuses)) / count
    figures["bytes: whole row per site"] = (
        figures["bytes: snapshot JSON per site"]
        + figures["bytes: held verdict JSON per site"]
        + figures["bytes: status JSON per site"]
    )

    figures["site_json (snapshot)"] = cpu_us_per(snapshots, site_json, repeat)
    figures["  of which the meta alone"] = cpu_us_per(
        metas, lambda m: Meta.__pydantic_serializer__.to_json(m, exclude_none=True), repeat
    )
    figures["  of which the battery history alone"] = cpu_us_per(
        histories, lambda h: to_json({d: list(s) for d, s in h.items()}), repeat
    )
    figures["  the battery history, times as floats (timestamp())"] = cpu_us_per(
        histories,
        lambda h: to_json(
            {d: [(s[0].timestamp(), s[1], s[2], s[3]) for s in x] for d, x in h.items()}
        ),
        repeat,
    )
    figures["held_json (held verdict)"] = cpu_us_per(held_values, held_json, repeat)
    plain = [json.loads(b) for b in encoded]
    figures["raw: json.dumps of the same data"] = cpu_us_per(
        plain, lambda p: json.dumps(p, separators=(",", ":"), ensure_ascii=False), repeat
    )
    figures["raw: pydantic_core.to_json of the same data"] = cpu_us_per(plain, to_json, repeat)

    # SQLite: the store's statements into the store's file, every site already there: a
    # snapshot row and a verdict row per site (what a save of a site whose snapshot is due
    # writes), and the verdict row alone (the other passes).
    now = datetime.now(UTC)
    snapshot_rows = [
        (s.site, s.province, 1, now.isoformat(), e, 0)
        for s, e in zip(snapshots, encoded, strict=True)
    ]
    verdict_rows = [
        (s.site, now.isoformat(), h, st)
        for s, h, st in zip(snapshots, held_encoded, statuses, strict=True)
    ]
    db = open_durable(workdir / "upsert.sqlite", StateStore.SCHEMA)

    def both() -> None:
        db.execute("BEGIN")
        db.executemany(_SNAPSHOT, snapshot_rows)
        db.executemany(_VERDICT, verdict_rows)
        db.execute("COMMIT")

    both()
    figures["SQLite upserts (store's statements, FULL)"] = min(
        cpu_us_once(count, both) for _ in range(repeat)
    )
    figures["SQLite upsert of the verdict row alone"] = min(
        cpu_us_once(count, lambda: upsert_all(db, _VERDICT, verdict_rows)) for _ in range(repeat)
    )
    db.close()
    size = int(figures["bytes: whole row per site"])
    bare = [(s.site, b"x" * size) for s in snapshots]
    for sync in ("FULL", "NORMAL"):
        raw = open_durable(workdir / f"raw-{sync}.sqlite", "CREATE TABLE t (k TEXT PRIMARY KEY, v)")
        raw.execute(f"PRAGMA synchronous={sync}")
        statement = "INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        upsert_all(raw, statement, bare)
        figures[f"raw: SQLite bare upsert, same bytes ({sync})"] = min(
            cpu_us_once(count, lambda r=raw, s=statement: upsert_all(r, s, bare))  # type: ignore[misc]
            for _ in range(repeat)
        )
        raw.close()

    # What the saver's encoder keeps in memory (tracemalloc: what it allocates and holds).
    tracemalloc.start()
    held = SiteEncoder()
    for s in snapshots:
        held.site_json(s)
    figures["memory: kept encodings per site, bytes (tracemalloc)"] = (
        tracemalloc.get_traced_memory()[0] / count
    )
    tracemalloc.stop()
    del held

    # The whole save, every site changed (the encoding as the saver keeps it); then the
    # fleet pattern, rounds rotating over the saver's encodings (A/B in one run).
    store = StateStore(workdir / "state.sqlite", states, verdicts, None, save_every_s=1.0)
    try:
        store.save_changed()  # every site in the file once
        whole = []
        for _ in range(repeat):
            for s in snapshots:
                states.mark_dirty(s.site)
            whole.append(cpu_us_once(count, store.save_changed))
        figures["StateStore.save_changed, every site changed"] = min(whole)
        # Per way: the store's encoder and a spare one (the encoding timed alone), each
        # kept in step: every round, every encoder encodes every site once.
        ways = {label: (make(), make()) for label, make in ENCODINGS.items()}
        for pair in ways.values():
            for encoder in pair:
                for s in states.all():
                    encoder.site_json(s)
        per_report: dict[str, list[float]] = {label: [] for label in ways}
        encode: dict[str, list[float]] = {label: [] for label in ways}
        labels = list(ways)
        for step in range(len(ways) * rounds):
            fold_round(states, verdicts, sites, HISTORY_LEN + 1 + step)
            current = states.all()
            turn = labels[step % len(labels)]
            for label in labels[step % len(labels) :] + labels[: step % len(labels)]:
                encode[label].append(cpu_us_per(current, ways[label][1].site_json, 1))
            store._encoder = ways[turn][0]
            per_report[turn].append(cpu_us_once(count, store.save_changed))
            for label, (encoder, _spare) in ways.items():
                if label != turn:
                    for s in current:
                        encoder.site_json(s)
        for label in labels:
            figures[f"fleet: snapshot JSON per report ({label})"] = min(encode[label])
        for label in labels:
            figures[f"fleet: save CPU per report ({label})"] = min(per_report[label])
    finally:
        store.close()
    step = HISTORY_LEN + 1 + len(ENCODINGS) * rounds
    for period in TIER_PERIODS:
        step = measure_tiers(figures, states, verdicts, sites, workdir, period, tier_rounds, step)
    figures["ratio: site_json / raw pydantic_core.to_json"] = (
        figures["site_json (snapshot)"] / figures["raw: pydantic_core.to_json of the same data"]
    )
    figures["ratio: store upsert / raw SQLite upsert (FULL)"] = (
        figures["SQLite upserts (store's statements, FULL)"]
        / figures["raw: SQLite bare upsert, same bytes (FULL)"]
    )
    raw_total = (
        figures["raw: pydantic_core.to_json of the same data"]
        + figures["raw: SQLite bare upsert, same bytes (FULL)"]
    )
    for label in ENCODINGS:
        figures[f"ratio: fleet per report ({label}) / (raw to_json + raw upsert FULL)"] = (
            figures[f"fleet: save CPU per report ({label})"] / raw_total
        )
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sites", type=int, action="append", help="sites (repeatable; default 1000 and 10000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="fleet rounds; the best is shown")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best is shown")
    parser.add_argument(
        "--tier-rounds", type=int, default=20, help="rounds (30 s each) per snapshot period"
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    counts = args.sites or [1_000, 10_000]
    tables: dict[int, dict[str, float]] = {}
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="kienco-state-save-") as tmp:
            tables[count] = measure(count, args.rounds, args.repeat, Path(tmp), args.tier_rounds)
    if args.json:
        print(json.dumps({str(c): t for c, t in tables.items()}, indent=2))
        return 0
    keys = list(next(iter(tables.values())))
    width = max(len(k) for k in keys)
    print(f"\n{'µs of CPU per site (bytes, ratios as said)'.ljust(width)}", end="")
    print("".join(f"  {f'{c} sites':>12}" for c in counts))
    print("-" * (width + 14 * len(counts)))
    for key in keys:
        print(key.ljust(width) + "".join(f"  {tables[c][key]:12.2f}" for c in counts))
    print(f"\nhistory: {HISTORY_LEN} samples per device; passes (best shown): {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
