"""The dead-letter store: every rejected message, kept with its reason, never lost."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from plumbing.durable import open_durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letter_reason ON dead_letter (reason);
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_at: str
    topic: str
    reason: str
    detail: str
    payload: bytes


class DeadLetterStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_durable(path, _SCHEMA)

    def put(
        self, *, received_at: datetime, topic: str, reason: str, detail: str, payload: bytes
    ) -> None:
        """Durable when it returns: the message may then be acknowledged to the broker."""
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letter (received_at, topic, reason, detail, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                (received_at.isoformat(), topic, reason, detail, payload),
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT reason, COUNT(*) FROM dead_letter GROUP BY reason"
            ).fetchall()
        return {reason: int(n) for reason, n in rows}

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received_at, topic, reason, detail, payload FROM dead_letter "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
