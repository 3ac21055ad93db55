"""The agent's disk outbox: every message is stored here before it is published.

A transaction in three steps: :meth:`Outbox.add` a message, :meth:`Outbox.take`
a batch to publish, :meth:`Outbox.ack` what the broker accepted (anything not
acknowledged stays and is taken again). SQLite in WAL mode with
``synchronous=FULL``: a message is on disk when ``add`` returns, so kill -9 or a
power cut loses nothing that was added.

The outbox is bounded by age and size; when it is full the oldest messages are
dropped and counted (``dropped_total``), and the agent reports that counter.
It also holds the agent's sequence counter, so sequence numbers stay monotonic
across restarts. A new outbox (a new box, or its file deleted) numbers from the clock
(Unix seconds), not from 0: above any number an earlier outbox of the same site can
have reached while it made under one message a second, so a box *replaced* with its
clock behind is still told by the collector from a replay of the old one (a report
numbered after the newest but stamped before it is a clock that stepped back,
rules/snapshot.py). That holds unless the new box's clock is behind by more than the
old outbox's age times (1 − its messages per second); so each outbox also has an id,
a random number made with the file and sent with every report (``Report.outbox``): a
report of an outbox the collector has not heard from at the site is a new numbering,
whatever the clock says (a spare from a drawer whose clock is months behind, or reset
to 1970). A corrupt file's salvage keeps the id with the counter; when the counter is
lost, the numbering is new and so is the id.

The disk itself may fail it, and the policy holds then too:

- **Full disk**: the newest message matters most, so the oldest are dropped
  (counted in ``dropped_total``) until it fits. When the disk is nearly full, a new
  message goes into pages freed inside the file (the oldest messages' pages), so
  the file stops growing; should a write still fail (SQLITE_FULL: another program
  filled the disk at once), a reserve file beside the outbox (``<name>.reserve``,
  1 MiB) is given back, since the delete that makes room is itself a write, and the
  oldest are dropped then. The reserve is made again once the disk has room.
- **Corrupt file** (SQLITE_CORRUPT, SQLITE_NOTADB), at start or later: it is moved
  aside as ``<name>.corrupt-<UTC time>``, what SQLite can still read from it is
  copied into a fresh file, and ``resets_total`` counts it (reported as
  ``host.outbox_resets_total``). Sequence numbers carry on above any issued
  before; when the old counter cannot be read, from the clock (Unix seconds),
  above any count the agent can have reached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from agent.outbox_repair import DiskReserve, Salvage, is_corrupt, is_full, salvage
from plumbing.durable import DurableStore, move_aside, open_durable

log = logging.getLogger("kienco.agent")

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
-- The age bound looks up the oldest by time at each add: without it, a scan of the backlog.
CREATE INDEX IF NOT EXISTS outbox_created_at ON outbox (created_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped_total', 0), ('bytes', 0), ('resets_total', 0);
"""
# A new file's sequence counter starts at the clock (the module's docstring says why).
_FIRST_SEQ = "INSERT OR IGNORE INTO counters VALUES ('next_seq', ?)"
# And the file gets its own random id, sent with every report (the docstring says why).
_FIRST_ID = "INSERT OR IGNORE INTO counters VALUES ('outbox_id', ?)"
# Checkpoint the WAL into the main file every 64 pages (256 KiB; SQLite's default is
# 1 000): on a full disk, a checkpoint must never need more new space than the reserve.
_WAL_PAGES = 64
_ROOM_CHUNK = 64 * 1024  # the oldest messages dropped at a time to make room, in bytes
_FULL_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    topic: str
    payload: bytes
    retain: bool
    created_at: float


class Outbox(DurableStore):
    """A bounded, durable FIFO of MQTT messages, oldest first."""

    SCHEMA = _SCHEMA

    def __init__(
        self,
        path: Path,
        *,
        max_age_s: float = 96 * 3600,
        max_bytes: int = 512 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = 1024 * 1024,
    ) -> None:
        self._max_age_s = max_age_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._reserve = DiskReserve(path.with_name(f"{path.name}.reserve"), reserve_bytes)
        # Below this much free disk, new messages go into pages freed inside the file.
        self._low_water = max(reserve_bytes, 256 * 1024)
        self._last_id_seen = 0  # ids handed out by this process: never handed out again
        self._full_logged_at: float | None = None
        self._full_dropped = 0
        super().__init__(path)  # opens it: _open() below
        self._reserve.ensure()

    def reserve_seq(self) -> int:
        """The next sequence number, durably reserved (monotonic across restarts)."""

        def reserve() -> int:
            with self._tx():
                (seq,) = self._db.execute(
                    "UPDATE counters SET value = value + 1 WHERE name = 'next_seq' "
                    "RETURNING value - 1"
                ).fetchone()
            return int(seq)

        return self._run(reserve, make_room=True)

    def add(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Store one message durably; drop the oldest if the outbox (or the disk) is full."""

        def insert() -> int:
            self._free_pages_for(len(payload))
            now = self._clock()
            with self._tx():
                (row_id,) = self._db.execute(
                    "INSERT INTO outbox (topic, payload, retain, created_at) VALUES (?, ?, ?, ?) "
                    "RETURNING id",
                    (topic, payload, int(retain), now),
                ).fetchone()
                self._bump("bytes", len(payload))
                self._enforce_bounds(now)
            self._last_id_seen = max(self._last_id_seen, int(row_id))
            return int(row_id)

        return self._run(insert, make_room=True)

    def take(self, limit: int, *, fresh_after: int | None = None) -> list[Entry]:
        """Up to ``limit`` messages to publish, each group oldest first.

        Messages added after id ``fresh_after`` (the end of the backlog when the link
        came back) come first, then the backlog from its oldest: a day of backlog
        drains in order without delaying the site's current reports.
        """
        columns = "SELECT id, topic, payload, retain, created_at FROM outbox"

        def select() -> list[tuple[int, str, bytes, int, float]]:
            if fresh_after is None:
                return self._db.execute(f"{columns} ORDER BY id LIMIT ?", (limit,)).fetchall()
            rows = self._db.execute(
                f"{columns} WHERE id > ? ORDER BY id LIMIT ?", (fresh_after, limit)
            ).fetchall()
            return (
                rows
                + self._db.execute(
                    f"{columns} WHERE id <= ? ORDER BY id LIMIT ?",
                    (fresh_after, limit - len(rows)),
                ).fetchall()
            )

        return [
            Entry(id=r[0], topic=r[1], payload=bytes(r[2]), retain=bool(r[3]), created_at=r[4])
            for r in self._run(select)
        ]

    def last_id(self) -> int:
        """The id of the newest message (0 when empty): the end of the current backlog."""

        def newest() -> int:
            (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()
            return int(last)

        return self._run(newest)

    def ack(self, ids: Iterable[int]) -> None:
        """Remove messages the broker has accepted."""
        id_list = list(ids)
        if not id_list:
            return

        def delete() -> None:
            with self._tx():
                marks = ",".join("?" * len(id_list))
                (size,) = self._db.execute(
                    f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE id IN ({marks})",
                    id_list,
                ).fetchone()
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", id_list)
                self._bump("bytes", -int(size))

        # A delete needs no new space once the reserve is back; if it still fails, the
        # messages stay and are published again (a duplicate, never a loss).
        self._run(delete)

    def depth(self) -> int:
        def count() -> int:
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            return int(n)

        return self._run(count)

    def dropped_total(self) -> int:
        return self._run(lambda: self._counter("dropped_total"))

    def resets_total(self) -> int:
        """How many times the outbox file was found corrupt and replaced."""
        return self._run(lambda: self._counter("resets_total"))

    def outbox_id(self) -> int:
        """This outbox's random id (``Report.outbox``): the numbering its ``seq`` belongs to."""
        return self._run(lambda: self._counter("outbox_id"))

    # --- the disk going wrong ---------------------------------------------------------

    def _run(self, step: Callable[[], T], *, make_room: bool = False) -> T:
        """Run one step under the lock; replace a corrupt file, make room on a full disk."""
        with self._lock:
            replaced = False
            for attempt in range(32):
                try:
                    result = step()
                except sqlite3.DatabaseError as exc:
                    if is_corrupt(exc) and not replaced:
                        self._db = self._replace_corrupt(exc)
                        replaced = True
                        continue
                    if is_full(exc) and self._reserve.release():
                        log.error("DISK FULL under the outbox %s: gave back its reserve", self.path)
                        continue  # the reserve's space may be all this step needs
                    if is_full(exc) and make_room and self._drop_oldest(attempt):
                        continue
                    raise
                if not self._reserve.present() and self._reserve.ensure() and self._full_dropped:
                    log.warning(
                        "outbox %s: the disk has room again (%d oldest message(s) dropped)",
                        self.path,
                        self._full_dropped,
                    )
                    self._full_logged_at, self._full_dropped = None, 0
                return result
            raise sqlite3.OperationalError("outbox: the disk stays full after dropping the oldest")

    def _free_pages_for(self, size: int) -> None:
        """On a nearly full disk, drop the oldest until ``size`` bytes fit in free pages.

        A message that needs a new page grows the file at the next checkpoint; on a
        full disk that checkpoint fails and the WAL can no longer be reset, so no
        write, not even the delete that would make room, gets through. Pages freed
        inside the file take the message without the disk growing.
        """
        disk = os.statvfs(self.path.parent)
        if disk.f_bavail * disk.f_frsize >= self._low_water:
            return
        (page,) = self._db.execute("PRAGMA page_size").fetchone()
        for attempt in range(32):
            (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
            if free * page >= size + 4 * page or not self._drop_oldest(attempt):
                return

    def _drop_oldest(self, attempt: int) -> bool:
        """Drop the oldest messages (more at each attempt) so the newest fits; False if none."""
        want = _ROOM_CHUNK * 2 ** min(attempt, 16)
        try:
            with self._tx():
                (upto,) = self._db.execute(
                    "SELECT COALESCE(("
                    "SELECT id FROM (SELECT id, SUM(LENGTH(payload)) OVER (ORDER BY id) AS size "
                    "FROM outbox) WHERE size >= ? ORDER BY id LIMIT 1"
                    "), (SELECT MAX(id) FROM outbox))",
                    (want,),
                ).fetchone()
                if upto is None:
                    return False
                dropped = self._db.execute(
                    "DELETE FROM outbox WHERE id <= ? RETURNING LENGTH(payload)", (upto,)
                ).fetchall()
                self._bump("dropped_total", len(dropped))
                self._bump("bytes", -sum(r[0] for r in dropped))
            # Into the main file now: the freed pages take the next messages, no new space.
            self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except sqlite3.OperationalError as exc:
            if is_full(exc):
                return False
            raise
        self._full_dropped += len(dropped)
        now = self._clock()
        if self._full_logged_at is None or now - self._full_logged_at >= _FULL_LOG_EVERY_S:
            log.error(
                "DISK FULL under the outbox %s: dropped the %d oldest message(s) so far to "
                "store the newest (fresh first, oldest dropped); free some disk space",
                self.path,
                self._full_dropped,
            )
            self._full_logged_at = now
        return True

    def _connect(self) -> sqlite3.Connection:
        db = open_durable(self.path, _SCHEMA)
        db.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
        db.execute(_FIRST_SEQ, (max(0, int(self._clock())),))
        db.execute(_FIRST_ID, (secrets.randbits(53),))
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            return self._replace_corrupt(exc)

    def _replace_corrupt(self, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        """Move the corrupt file aside, start a fresh one with what could be read from it."""
        old = getattr(self, "_db", None)
        if old is not None:
            old.close()
        moved = move_aside(self.path, datetime.fromtimestamp(self._clock(), UTC), "corrupt")
        found = salvage(moved)
        db = self._connect()
        # The moved-aside files count too: a file too damaged to read keeps no counter.
        aside = [
            f
            for f in self.path.parent.glob(f"{self.path.name}.corrupt-*")
            if not f.name.endswith(("-wal", "-shm"))
        ]
        resets = max(found.counters.get("resets_total", 0) + 1, len(aside))
        self._restore(db, found, resets)
        log.error(
            "OUTBOX FILE CORRUPT (%s): moved aside to %s and started a fresh outbox at %s "
            "with the %d message(s) still readable in it; sequence numbers go on from %d. "
            "Replaced %d time(s) so far; check the disk (SMART, dmesg)",
            exc,
            moved,
            self.path,
            len(found.rows),
            self._counter_of(db, "next_seq"),
            resets,
        )
        return db

    def _restore(self, db: sqlite3.Connection, found: Salvage, resets: int) -> None:
        next_seq = found.counters.get("next_seq")
        if next_seq is None:  # unreadable: the clock is above any count reached so far
            next_seq = max(int(self._clock()), (found.max_seq() or -1) + 1)
        last_id = max(found.last_id, self._last_id_seen)
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO outbox (id, topic, payload, retain, created_at) VALUES (?, ?, ?, ?, ?)",
            sorted(found.rows.values()),
        )
        counters = {
            "next_seq": next_seq,
            "dropped_total": found.counters.get("dropped_total", 0),
            "bytes": sum(len(row[2]) for row in found.rows.values()),
            "resets_total": resets,
        }
        # The numbering goes on under its id; a new one (its counter lost) under the new
        # file's (``_connect``).
        same_id = found.counters.get("outbox_id") if "next_seq" in found.counters else None
        if same_id is not None:
            counters["outbox_id"] = same_id
        db.executemany(
            "UPDATE counters SET value = ? WHERE name = ?",
            [(value, name) for name, value in counters.items()],
        )
        # Ids go on too: one the runner holds from the old file never names a new message.
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (last_id,))
        db.execute("COMMIT")

    # --- bounds and counters --------------------------------------------------------------

    def _enforce_bounds(self, now: float) -> None:
        dropped = self._db.execute(
            "DELETE FROM outbox WHERE created_at < ? RETURNING LENGTH(payload)",
            (now - self._max_age_s,),
        ).fetchall()
        size = self._counter("bytes") - sum(r[0] for r in dropped)
        while size > self._max_bytes:
            victims = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 1) "
                "RETURNING LENGTH(payload)"
            ).fetchall()
            if not victims:
                break
            dropped += victims
            size -= sum(r[0] for r in victims)
        if dropped:
            self._bump("dropped_total", len(dropped))
            self._bump("bytes", -sum(r[0] for r in dropped))

    def _counter(self, name: str) -> int:
        return self._counter_of(self._db, name)

    @staticmethod
    def _counter_of(db: sqlite3.Connection, name: str) -> int:
        (value,) = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(value)

    def _bump(self, name: str, delta: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
            # The error that got us here is the one to report (a corrupt file, a full disk).
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
