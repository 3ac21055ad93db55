"""The agent's disk outbox: every message is stored here before it is published.

A transaction in three steps: :meth:`Outbox.add` a message, :meth:`Outbox.take`
a batch to publish, :meth:`Outbox.ack` what the broker accepted (anything not
acknowledged stays and is taken again). SQLite in WAL mode with
``synchronous=FULL``: a message is on disk when ``add`` returns, so kill -9 or a
power cut loses nothing that was added.

The outbox is bounded by age and size; when it is full the oldest messages are
dropped and counted (``dropped_total``), and the agent reports that counter.
It also holds the agent's sequence counter, so sequence numbers stay monotonic
across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from plumbing.durable import open_durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('next_seq', 0), ('dropped_total', 0), ('bytes', 0);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    topic: str
    payload: bytes
    retain: bool
    created_at: float


class Outbox:
    """A bounded, durable FIFO of MQTT messages, oldest first."""

    def __init__(
        self,
        path: Path,
        *,
        max_age_s: float = 96 * 3600,
        max_bytes: int = 512 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_age_s = max_age_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        # Fsynced at each commit: an added message survives power loss.
        self._db = open_durable(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reserve_seq(self) -> int:
        """The next sequence number, durably reserved (monotonic across restarts)."""
        with self._lock, self._tx():
            (seq,) = self._db.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'next_seq' RETURNING value - 1"
            ).fetchone()
        return int(seq)

    def add(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Store one message durably; drop the oldest if the outbox is over its bounds."""
        now = self._clock()
        with self._lock, self._tx():
            (row_id,) = self._db.execute(
                "INSERT INTO outbox (topic, payload, retain, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (topic, payload, int(retain), now),
            ).fetchone()
            self._bump("bytes", len(payload))
            self._enforce_bounds(now)
        return int(row_id)

    def take(self, limit: int, *, fresh_after: int | None = None) -> list[Entry]:
        """Up to ``limit`` messages to publish, each group oldest first.

        Messages added after id ``fresh_after`` (the end of the backlog when the link
        came back) come first, then the backlog from its oldest: a day of backlog
        drains in order without delaying the site's current reports.
        """
        columns = "SELECT id, topic, payload, retain, created_at FROM outbox"
        with self._lock:
            if fresh_after is None:
                rows = self._db.execute(f"{columns} ORDER BY id LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute(
                    f"{columns} WHERE id > ? ORDER BY id LIMIT ?", (fresh_after, limit)
                ).fetchall()
                rows += self._db.execute(
                    f"{columns} WHERE id <= ? ORDER BY id LIMIT ?",
                    (fresh_after, limit - len(rows)),
                ).fetchall()
        return [
            Entry(id=r[0], topic=r[1], payload=bytes(r[2]), retain=bool(r[3]), created_at=r[4])
            for r in rows
        ]

    def last_id(self) -> int:
        """The id of the newest message (0 when empty): the end of the current backlog."""
        with self._lock:
            (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()
        return int(last)

    def ack(self, ids: Iterable[int]) -> None:
        """Remove messages the broker has accepted."""
        id_list = list(ids)
        if not id_list:
            return
        with self._lock, self._tx():
            marks = ",".join("?" * len(id_list))
            (size,) = self._db.execute(
                f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox WHERE id IN ({marks})",
                id_list,
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", id_list)
            self._bump("bytes", -int(size))

    def depth(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def dropped_total(self) -> int:
        with self._lock:
            return self._counter("dropped_total")

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
        (value,) = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
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
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
