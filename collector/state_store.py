"""The collector's state on disk, so a restart changes no verdict.

Every site's snapshot (readings, meta, the discharge history behind the runtime
cross-check), its held verdict (what is shown, a change waiting out its hold and
since when) and its published status live in ``data_dir/state.sqlite``
(``plumbing.durable``: WAL, fsync per commit). At start they are put back before
the first message is read, so the API answers the same verdicts at once, held
changes keep their timers, and a silent site still turns stale when it would
have (no sooner than ``state.restore_grace_s`` after the restart: what the site
sent meanwhile is still queued at the broker).

Saving is off the ingest path, in two tiers, by the collector's ``state-saver`` loop
(``step``, supervised like every loop: an error is logged once, counted, and the sites
are saved with the next period). Every ``state.save_every_s`` (one transaction):

- each site judged or heard from since the last pass gets its held verdict, its status
  and when it was last heard (a small row update);
- each message folded into a site's state since is appended, as it arrived (topic,
  payload, receive time), to the ``folded`` log: bytes the collector already has, no
  encoding;
- a site's snapshot (~5 kB of JSON, most of a save's cost) is written only when it is
  due: at once for a site not yet on disk, else ``state.snapshot_every_s`` after its
  last one. Writing it covers that site's logged messages; the log keeps only what
  some snapshot does not cover yet.

At start each snapshot is read, and the messages logged after it are folded into it
again, through the same code as live. Folding is idempotent and order-free (newest
wins per reading, the battery history merged by time: rules/snapshot.py), so a message
folded both into a snapshot and from the log gives the same state. A crash thus loses
at most one ``save_every_s`` of state, as before; a site reporting every 60 s has its
5 kB written once per ``snapshot_every_s`` instead of at every report. ``close`` writes
every snapshot at a clean stop (nothing left to fold again). A row this version cannot
read is skipped (counted, logged), a file SQLite cannot read is set aside with a
timestamp and a fresh one started: the collector always starts.
"""

from __future__ import annotations

import gc
import heapq
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from collector.config import Limits, StateConfig
from collector.decode import Decoded, decode_within
from collector.inventory import Inventory
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_codec import (
    FORMAT,
    SiteEncoder,
    held_from_json,
    held_json,
    site_from_json,
)
from contract.wire import Status
from plumbing.durable import DurableStore, move_aside, open_durable
from rules import SiteSnapshot
from rules.hysteresis import Held

log = logging.getLogger("kienco.collector")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS site (
    site TEXT PRIMARY KEY,
    province TEXT NOT NULL,
    format INTEGER NOT NULL,
    heard_at TEXT NOT NULL,
    snapshot BLOB NOT NULL,
    held BLOB,
    status BLOB,
    folded_upto INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS verdict (
    site TEXT PRIMARY KEY,
    heard_at TEXT NOT NULL,
    held BLOB,
    status BLOB
);
CREATE TABLE IF NOT EXISTS folded (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    topic TEXT NOT NULL,
    received_at TEXT NOT NULL,
    heard INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""
# A file of an earlier release: its snapshots cover everything (it had no log), and its
# verdicts are in the site table (read when the verdict table has no row for the site).
_LATER_COLUMNS = {"site": {"folded_upto": "INTEGER NOT NULL DEFAULT 0"}}
# The snapshot apart from the verdict: SQLite rewrites a whole row at any update, so the
# verdict saved every pass must not share a row with the 5 kB snapshot (measured: the
# update cost as much as writing the snapshot).
_SNAPSHOT = (
    "INSERT INTO site (site, province, format, heard_at, snapshot, held, status, folded_upto) "
    "VALUES (?, ?, ?, ?, ?, NULL, NULL, ?) ON CONFLICT (site) DO UPDATE SET "
    "province = excluded.province, format = excluded.format, heard_at = excluded.heard_at, "
    "snapshot = excluded.snapshot, held = NULL, status = NULL, "
    "folded_upto = excluded.folded_upto"
)
_VERDICT = (
    "INSERT INTO verdict (site, heard_at, held, status) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (site) DO UPDATE SET heard_at = excluded.heard_at, held = excluded.held, "
    "status = excluded.status"
)
_VOUCHED = 2  # the log's ``heard`` of a message heard and vouched for
_LOG = "INSERT INTO folded (id, site, topic, received_at, heard, payload) VALUES (?, ?, ?, ?, ?, ?)"
_Row = tuple[str, str, int, str, bytes, bytes | None, bytes | None, int]
# A message as folded: (site, topic, payload, received_at, heard: the site spoke then,
# vouched: no queue held it, collector/backlog.py). Logged with ``heard`` 0 (a dead letter
# replayed), 1 (heard) or 2 (heard, vouched): a log written before vouching reads back.
Folded = tuple[str, str, bytes, datetime, bool, bool]
# Messages waiting in memory for the log, at most (~110 MB of reports): past it (a saver
# stuck or failing for a long time) a site's messages are no longer kept for the log, its
# whole snapshot is written with the next save that succeeds instead.
MAX_PENDING = 100_000
# How a logged message is folded again at start: (topic, payload, received_at, heard,
# vouched).
Refold = Callable[[str, bytes, datetime, bool, bool], bool]


@dataclass(frozen=True, slots=True)
class Restored:
    sites: int
    skipped: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Site:
    snapshot: SiteSnapshot
    heard_at: datetime
    held: Held | None
    status: Status | None
    encoded: bytes | None
    folded_upto: int


class StateStore(DurableStore):
    """Saves what changed, periodically and at stop; restores everything at start."""

    SCHEMA = _SCHEMA
    LATER_COLUMNS = _LATER_COLUMNS

    def __init__(
        self,
        path: Path,
        states: SiteStates,
        verdicts: Verdicts,
        registry: Any,
        *,
        save_every_s: float,
        snapshot_every_s: float | None = None,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.states = states
        self.verdicts = verdicts
        self.save_every_s = save_every_s
        self.snapshot_every_s = save_every_s if snapshot_every_s is None else snapshot_every_s
        self.stopping = stopping or threading.Event()
        self._clock = clock
        self._retry: set[str] = set()  # taken for a save that failed: saved with the next one
        self._logged: set[str] = set()
        self._encoder = SiteEncoder()  # keeps each site's battery history encoded
        # The two tiers' bookkeeping (under the lock, but for the deque: the paho thread
        # appends to it, the saver takes from its left end; both are thread-safe).
        self._folded: deque[Folded] = deque()
        self._retry_log: list[tuple[int, str, str, str, int, bytes]] = []
        self._next_id = 1  # the folded log's next id; never one a snapshot says it covers
        self._written: dict[str, float] = {}  # sites with a snapshot on disk: when written
        self._due: dict[str, float] = {}  # sites whose snapshot is behind: when it is due
        self._due_heap: list[tuple[float, str]] = []  # the same, in time order (stale ones left)
        self._open_from: dict[str, int] = {}  # each site's oldest message no snapshot covers
        self.max_pending = MAX_PENDING
        self._unlogged: set[str] = set()  # sites with a message not kept for the log
        self.restored = Gauge(
            "kienco_state_restored_sites", "Sites restored from disk at start", registry=registry
        )
        self.restore_seconds = Gauge(
            "kienco_state_restore_seconds", "How long the restore at start took", registry=registry
        )
        self.saved = Counter(
            "kienco_state_saved_sites",
            "Site rows written to disk (part: snapshot, or verdict: the held verdict, the "
            "status and when last heard)",
            ["part"],
            registry=registry,
        )
        self.refolded = Counter(
            "kienco_state_refolded_messages",
            "Messages of the folded log folded again at start (outcome: folded, or refused: "
            "the decoder of this version refused it)",
            ["outcome"],
            registry=registry,
        )
        self.set_aside = Counter(
            "kienco_state_files_set_aside",
            "State files SQLite could not read, moved aside for a fresh one",
            registry=registry,
        )
        super().__init__(path)  # its lock: one save at a time; guards the connection

    # --- the file --------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            db = open_durable(self.path, _SCHEMA, later_columns=_LATER_COLUMNS)
            db.execute("SELECT COUNT(*) FROM site").fetchone()
            return db
        except sqlite3.DatabaseError as exc:
            self._set_aside(exc)
            return open_durable(self.path, _SCHEMA, later_columns=_LATER_COLUMNS)

    def _set_aside(self, exc: Exception) -> None:
        moved = move_aside(self.path, datetime.now(UTC), "unreadable")
        self.set_aside.inc()
        log.error(
            "state file %s unreadable (%s): set aside as %s; starting empty "
            "(sites are unknown until they report)",
            self.path,
            exc,
            moved.name,
        )

    # --- restore ---------------------------------------------------------------------

    def restore(
        self,
        now: datetime,
        *,
        listed_in: Callable[[str], str | None],
        not_before: datetime,
        refold: Refold | None = None,
    ) -> Restored:
        """Put every saved site back into the state and the verdicts.

        ``listed_in`` gives the province the inventory lists a site under: a site the
        inventory now puts in another province is not restored (the inventory wins).
        ``refold`` folds a logged message into the state again (:func:`refolder`); without
        it the snapshots are restored as they are.
        """
        started = time.perf_counter()
        sites: list[_Site] = []
        skipped = 0
        refolded: set[str] = set()
        # Tens of thousands of objects a second and none of them garbage: the cyclic
        # collector would only walk them again and again (it halves the time, measured).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for row in self._rows():
                try:
                    site = _decode(row)
                except (ValidationError, ValueError) as exc:
                    skipped += 1
                    self._log_once("row", "state of %s not restored: %s", row[0], exc)
                    continue
                listed = listed_in(site.snapshot.site)
                if listed is not None and listed != site.snapshot.province:
                    skipped += 1
                    continue
                sites.append(site)
            self.states.restore((s.snapshot, s.heard_at) for s in sites)
            self._next_id = self._first_free_id()
            written_at = self._clock()
            self._written = {s.snapshot.site: written_at for s in sites}
            if refold is not None:
                refolded = self._refold(refold, {s.snapshot.site: s.folded_upto for s in sites})
        except sqlite3.DatabaseError as exc:  # corrupt pages: keep what was read
            with self._lock:
                self._db.close()
                self._set_aside(exc)
                self._db = open_durable(self.path, _SCHEMA, later_columns=_LATER_COLUMNS)
            self.states.restore((s.snapshot, s.heard_at) for s in sites)
            self._next_id = 1
            self._written = {}  # the fresh file must hold them all again
            self._open_from = {}
            for site in sites:
                self.states.mark_dirty(site.snapshot.site)
        finally:
            if collecting:
                gc.enable()
        # A refolded site was heard when the light tier last said, not at the refold; and
        # its snapshot on disk is behind: written again with the first save.
        self.states.restore_heard({s.snapshot.site: s.heard_at for s in sites})
        for name in refolded:
            self._written.pop(name, None)
        for s in sites:
            self.verdicts.restore(
                self.states.get(s.snapshot.site) or s.snapshot,
                s.held,
                s.status,
                s.encoded,
                now=now,
                not_before=not_before,
            )
        seconds = time.perf_counter() - started
        self.restored.set(len(sites))
        self.restore_seconds.set(seconds)
        if sites or skipped:
            log.info(
                "restored %d site(s) from %s in %.2f s (%d skipped, %d with messages folded again)",
                len(sites),
                self.path,
                seconds,
                skipped,
                len(refolded),
            )
        return Restored(len(sites), skipped, seconds)

    def _rows(self) -> Iterator[_Row]:
        cursor = self._db.execute(
            "SELECT s.site, s.province, s.format, COALESCE(v.heard_at, s.heard_at), s.snapshot, "
            "COALESCE(v.held, s.held), COALESCE(v.status, s.status), s.folded_upto "
            "FROM site AS s LEFT JOIN verdict AS v ON v.site = s.site"
        )
        yield from cursor

    def _first_free_id(self) -> int:
        logged = self._db.execute("SELECT MAX(id) FROM folded").fetchone()[0] or 0
        covered = self._db.execute("SELECT MAX(folded_upto) FROM site").fetchone()[0] or 0
        return max(logged, covered) + 1

    def _refold(self, refold: Refold, upto: dict[str, int]) -> set[str]:
        """Fold again the logged messages each restored site's snapshot does not cover (a
        site not restored, forgotten or skipped, stays so); the sites that got any."""
        refolded: set[str] = set()
        cursor = self._db.execute(
            "SELECT id, site, topic, received_at, heard, payload FROM folded ORDER BY id"
        )
        for entry_id, site, topic, received_at, heard, payload in cursor:
            covered = upto.get(site)
            if covered is None or entry_id <= covered:
                continue
            try:
                at = datetime.fromisoformat(received_at)
                folded = refold(topic, payload, at, bool(heard), heard == _VOUCHED)
            except Exception as exc:  # a message this version cannot fold: the rest go on
                folded = False
                self._log_once("refold", "logged message of %s not folded again: %s", site, exc)
            self.refolded.labels("folded" if folded else "refused").inc()
            refolded.add(site)
            self._open_from.setdefault(site, entry_id)
        return refolded

    # --- save ------------------------------------------------------------------------

    def folded(self, message: Folded) -> None:
        """A message was folded into its site's state (called after the fold, on the
        ingest path: an append, nothing else)."""
        if len(self._folded) < self.max_pending:
            self._folded.append(message)
        else:  # the saver is far behind: this site's next save writes its whole snapshot
            self._unlogged.add(message[0])

    def save_changed(self, *, every_snapshot: bool = False) -> int:
        """Write what changed since the last save (``every_snapshot``: every snapshot
        behind too, as at a clean stop); return how many site rows were written."""
        with self._lock:
            now = self._clock()
            # The log first, then the state: every message logged here was folded before
            # its site's snapshot is read below, so the snapshot covers it.
            entries = self._take_log()
            # A site with a message logged is due a snapshot that covers it, even when the
            # snapshot read before it was logged already did (folded before the last pass,
            # logged after it): else a site silent from then on would hold the log forever.
            changed = self.states.take_dirty() | self._take_unlogged() | {e[1] for e in entries}
            sites = changed | self.verdicts.take_changed() | self._retry
            self._retry = set()
            snapshots = self._snapshots_due(changed, now, every=every_snapshot)
            sites |= snapshots
            if not sites and not entries:
                return 0
            snapshot_rows: list[tuple[str, str, int, str, bytes, int]] = []
            verdict_rows: list[tuple[str, str, bytes | None, bytes | None]] = []
            deletes: list[tuple[str]] = []
            for site in sites:
                snapshot = self.states.get(site)
                heard = self.states.heard_at(site)
                if snapshot is None or heard is None:
                    deletes.append((site,))  # forgotten (expired)
                    self._forget(site)
                    snapshots.discard(site)
                    continue
                saved = self.verdicts.saved_of(site)
                heard_at = heard.isoformat()
                verdict_rows.append(
                    (
                        site,
                        heard_at,
                        None if saved is None else held_json(saved[0]),
                        None if saved is None else saved[1],
                    )
                )
                if site in snapshots or site not in self._written:
                    snapshots.add(site)
                    snapshot_rows.append(
                        (
                            site,
                            snapshot.province,
                            FORMAT,
                            heard_at,
                            self._encoder.site_json(snapshot),
                            # Every message taken from the log so far was folded before
                            # this snapshot was read: it covers them all.
                            self._next_id - 1,
                        )
                    )
            # What no snapshot will cover once this commits: the log is kept from there.
            # Only a snapshot written or a site forgotten moves it (a look at every site:
            # not done on passes that can change nothing).
            keep_from = None
            if snapshots or deletes:
                keep_from = min(
                    (first for s, first in self._open_from.items() if s not in snapshots),
                    default=self._next_id,
                )
            try:
                self._db.execute("BEGIN")
                self._db.executemany(_LOG, entries)
                self._db.executemany(_SNAPSHOT, snapshot_rows)
                self._db.executemany(_VERDICT, verdict_rows)
                self._db.executemany("DELETE FROM site WHERE site = ?", deletes)
                self._db.executemany("DELETE FROM verdict WHERE site = ?", deletes)
                if keep_from is not None:
                    self._db.execute("DELETE FROM folded WHERE id < ?", (keep_from,))
                self._db.execute("COMMIT")
            except Exception:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._retry = sites
                self._retry_log = entries
                for site in snapshots:  # due at once with the next save
                    if site in self._written:
                        self._due[site] = now
                        heapq.heappush(self._due_heap, (now, site))
                raise
            for site in snapshots:
                self._written[site] = now
                self._open_from.pop(site, None)
        self.saved.labels("snapshot").inc(len(snapshot_rows))
        self.saved.labels("verdict").inc(len(verdict_rows))
        return len(verdict_rows)

    def _take_unlogged(self) -> set[str]:
        """The sites with a message not kept for the log: their snapshot is written now."""
        sites = set()
        while self._unlogged:
            sites.add(self._unlogged.pop())
        for site in sites:
            self._written.pop(site, None)
        return sites

    def _take_log(self) -> list[tuple[int, str, str, str, int, bytes]]:
        """The messages folded since the last save, numbered for the log (with those of a
        save that failed first)."""
        entries, self._retry_log = self._retry_log, []
        if len(entries) > self.max_pending:  # saves failing for long: snapshots instead
            for entry in entries:
                self._unlogged.add(entry[1])
            entries = []
        folded = self._folded
        for _ in range(len(folded)):
            site, topic, payload, received_at, heard, vouched = folded.popleft()
            heard_as = _VOUCHED if heard and vouched else int(heard)
            entry_id = self._next_id
            self._next_id += 1
            entries.append((entry_id, site, topic, received_at.isoformat(), heard_as, payload))
            self._open_from.setdefault(site, entry_id)
        return entries

    def _snapshots_due(self, changed: set[str], now: float, *, every: bool) -> set[str]:
        """The sites whose snapshot is written with this save: those not on disk yet, and
        those changed whose last one is ``snapshot_every_s`` old (or all behind: ``every``)."""
        due_now: set[str] = set()
        for site in changed:
            written = self._written.get(site)
            if written is None:
                due_now.add(site)
            elif site not in self._due:
                due = written + self.snapshot_every_s
                self._due[site] = due
                heapq.heappush(self._due_heap, (due, site))
        if every:
            due_now |= self._due.keys()
            self._due.clear()
            self._due_heap.clear()
            return due_now
        heap = self._due_heap
        while heap and heap[0][0] <= now:
            due, site = heapq.heappop(heap)
            if self._due.get(site) == due:  # else written meanwhile, or due again later
                del self._due[site]
                due_now.add(site)
        return due_now

    def _forget(self, site: str) -> None:
        self._encoder.forget(site)
        self._written.pop(site, None)
        self._due.pop(site, None)
        self._open_from.pop(site, None)  # its logged messages: never folded again (no row)

    def step(self) -> bool:
        """One period of the saver loop; False once the collector stops. A failed save
        (disk full) raises to the loop, and its sites are saved with the next one."""
        if self.stopping.wait(self.save_every_s):
            return False
        self.save_changed()
        return True

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.error(message + " (logged once; counted in kienco_state_*)", *args)

    def close(self) -> None:
        """Save everything left, every snapshot included (the caller has stopped changing
        the state), then close."""
        started = time.perf_counter()
        try:
            saved = self.save_changed(every_snapshot=True)
            log.info(
                "saved %d changed site(s) to %s at stop in %.2f s",
                saved,
                self.path,
                time.perf_counter() - started,
            )
        except Exception as exc:
            log.error("could not save the state at stop: %s", exc)
        super().close()


def _decode(row: _Row) -> _Site:
    _site, _province, form, heard_at, snapshot, held, status, folded_upto = row
    if form != FORMAT:
        raise ValueError(f"saved in format {form}, this collector reads {FORMAT}")
    restored = site_from_json(snapshot)
    try:
        shown = None if held is None else held_from_json(held)
        said = None if status is None else Status.model_validate_json(status)
    except (ValidationError, ValueError):
        shown = said = None  # the site comes back, its verdict is judged again
    encoded = status if said is not None else None
    return _Site(restored, datetime.fromisoformat(heard_at), shown, said, encoded, folded_upto)


def refolder(states: SiteStates, limits: Limits) -> Refold:
    """How a logged message is folded again at start: decoded as it was when it arrived
    (its receive time as the decoder's now, the same limits), folded by the same code."""

    def refold(
        topic: str, payload: bytes, received_at: datetime, heard: bool, vouched: bool
    ) -> bool:
        result = decode_within(limits, topic, payload, received_at)
        if not isinstance(result, Decoded):
            return False
        states.apply(result.message, received_at=received_at if heard else None, vouched=vouched)
        return True

    return refold


def open_and_restore(
    config: StateConfig,
    path: Path,
    states: SiteStates,
    verdicts: Verdicts,
    inventory: Inventory,
    registry: Any,
    now: datetime,
    *,
    limits: Limits,
    stopping: threading.Event,
) -> StateStore | None:
    """The store of a collector about to start, its saved sites already put back (or None
    when ``state.persist`` is off)."""
    if not config.persist:
        return None
    store = StateStore(
        path,
        states,
        verdicts,
        registry,
        save_every_s=config.save_every_s,
        snapshot_every_s=config.snapshot_every_s,
        stopping=stopping,
    )

    def listed_in(site: str) -> str | None:
        listed = inventory.get(site)
        return None if listed is None else listed.province

    store.restore(
        now,
        listed_in=listed_in,
        not_before=now + timedelta(seconds=config.restore_grace_s),
        refold=refolder(states, limits),
    )
    return store
