"""The dead-letter store: the one place a rejected thing lives, with its reason, never lost.

Two kinds of entry:

- ``message``: an MQTT message the collector did not store — refused by decode
  (``invalid_json``, ``schema``, …), raising after decode (``unprocessable``), or
  with lines InfluxDB refused (``influx_refused``). Topic and payload as received.
- ``lines``: line protocol InfluxDB refused that no message stands behind any
  more (a spooled batch, a verdict written on a timer). The payload is the lines.

An entry stays *kept* until a replay stores it (``kienco deadletter replay``
re-drives messages through the collector's decode path, lines through its
writer); it is then marked replayed, not deleted, so what happened stays readable.
A replay refused again leaves it kept, with the new reason and a replay count.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from plumbing.durable import DurableStore, LaterColumns

__all__ = ["DeadLetter", "DeadLetterStore", "Kind", "NewDeadLetter"]

Kind = Literal["message", "lines"]

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
# Added after the first release: created on open when an older file lacks them.
_LATER_COLUMNS = {
    "kind": "TEXT NOT NULL DEFAULT 'message'",
    "replays": "INTEGER NOT NULL DEFAULT 0",
    "replayed_at": "TEXT",
}
_FIELDS = "id, received_at, topic, reason, detail, payload, kind, replays, replayed_at"


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    received_at: datetime
    topic: str
    reason: str
    detail: str
    payload: bytes
    kind: Kind = "message"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_at: str
    topic: str
    reason: str
    detail: str
    payload: bytes
    kind: str = "message"
    replays: int = 0
    replayed_at: str | None = None

    @property
    def kept(self) -> bool:
        return self.replayed_at is None

    def summary(self) -> dict[str, object]:
        """Everything but the payload (its size instead), for listings."""
        return {
            "id": self.id,
            "received_at": _time(self.received_at),
            "kind": self.kind,
            "topic": self.topic,
            "reason": self.reason,
            "detail": self.detail,
            "payload_bytes": len(self.payload),
            "replays": self.replays,
            "replayed_at": _time(self.replayed_at),
        }

    def full(self) -> dict[str, object]:
        """With the payload: as text when it is UTF-8, else base64."""
        try:
            payload, encoding = self.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(self.payload).decode(), "base64"
        return {**self.summary(), "payload": payload, "payload_encoding": encoding}


def _time(stored: str | None) -> datetime | None:
    """A time as stored (``isoformat``, UTC), for the API to write in its one form."""
    return None if stored is None else datetime.fromisoformat(stored)


def _row(r: Any) -> DeadLetter:
    return DeadLetter(
        int(r[0]),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        str(r[4]),
        bytes(r[5]),
        str(r[6]),
        int(r[7]),
        None if r[8] is None else str(r[8]),
    )


class DeadLetterStore(DurableStore):
    SCHEMA = _SCHEMA
    LATER_COLUMNS: ClassVar[LaterColumns] = {"dead_letter": _LATER_COLUMNS}

    def put(
        self,
        *,
        received_at: datetime,
        topic: str,
        reason: str,
        detail: str,
        payload: bytes,
        kind: Kind = "message",
    ) -> int:
        """Durable when it returns: the message may then be acknowledged to the broker."""
        return self.put_many([NewDeadLetter(received_at, topic, reason, detail, payload, kind)])[0]

    def put_many(self, entries: Iterable[NewDeadLetter]) -> list[int]:
        """Several in one transaction (one fsync); their ids."""
        ids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for e in entries:
                    cursor = self._db.execute(
                        "INSERT INTO dead_letter "
                        "(received_at, topic, reason, detail, payload, kind) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (e.received_at.isoformat(), e.topic, e.reason, e.detail, e.payload, e.kind),
                    )
                    ids.append(int(cursor.lastrowid or 0))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def counts(self, *, kept_only: bool = False) -> dict[str, int]:
        where = "WHERE replayed_at IS NULL" if kept_only else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT reason, COUNT(*) FROM dead_letter {where} GROUP BY reason"
            ).fetchall()
        return {reason: int(n) for reason, n in rows}

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_FIELDS} FROM dead_letter ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row(r) for r in rows]

    def select(
        self,
        *,
        reason: str | None = None,
        id: int | None = None,
        kept_only: bool = True,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[DeadLetter]:
        """Entries matching every filter given, oldest first (the order they came in)."""
        where: list[str] = []
        args: list[object] = []
        if reason is not None:
            where.append("reason = ?")
            args.append(reason)
        if id is not None:
            where.append("id = ?")
            args.append(id)
        if kept_only:
            where.append("replayed_at IS NULL")
        sql = f"SELECT {_FIELDS} FROM dead_letter"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_row(r) for r in rows]

    def get(self, id: int) -> DeadLetter | None:
        found = self.select(id=id, kept_only=False)
        return found[0] if found else None

    def replayed(self, ids: Iterable[int], at: datetime) -> None:
        """These entries are stored now: no longer kept (their record stays)."""
        with self._lock:
            self._db.executemany(
                "UPDATE dead_letter SET replays = replays + 1, replayed_at = ? WHERE id = ?",
                [(at.isoformat(), i) for i in ids],
            )

    def refused_again(self, id: int, reason: str, detail: str) -> None:
        """A replay was refused: the entry stays kept, with the reason of this time."""
        with self._lock:
            self._db.execute(
                "UPDATE dead_letter SET replays = replays + 1, reason = ?, detail = ? WHERE id = ?",
                (reason, detail, id),
            )
