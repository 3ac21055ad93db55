"""The outbox's disk going wrong: what a corrupt file (moved aside by
``plumbing.durable.move_aside``) still holds, and a reserve of disk space to give back
when the disk is full.

SQLite says a file is damaged with SQLITE_CORRUPT ("database disk image is
malformed") or SQLITE_NOTADB ("file is not a database"), at open or at any later
read; the disk is full with SQLITE_FULL. The outbox (``agent/outbox.py``) decides
what to do; these are the pieces it does it with.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26

Row = tuple[int, str, bytes, int, float]
"""An outbox row: id, topic, payload, retain, created_at."""

_ROWS = "SELECT id, topic, payload, retain, created_at FROM outbox ORDER BY id"


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_corrupt(exc: BaseException) -> bool:
    return _primary_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def is_full(exc: BaseException) -> bool:
    return _primary_code(exc) == _SQLITE_FULL


@dataclass
class Salvage:
    """What could still be read from a corrupt outbox file."""

    rows: dict[int, Row] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    last_id: int = 0  # the highest id the file ever handed out, as far as can be told

    def max_seq(self) -> int | None:
        """The highest ``seq`` among the recovered messages (None if none says one)."""
        seqs = []
        for _, _, payload, _, _ in self.rows.values():
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                seq = json.loads(payload).get("seq")
                if isinstance(seq, int):
                    seqs.append(seq)
        return max(seqs, default=None)


def salvage(path: Path) -> Salvage:
    """Every row and counter of a damaged outbox file that SQLite can still read.

    The table is read from both ends: a damaged page in the middle stops a scan, but
    the rows before it (the oldest) and after it (the newest) are still reachable.
    """
    found = Salvage()
    try:
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return found
    try:
        for order in ("", " DESC"):
            with contextlib.suppress(sqlite3.Error):
                for row in db.execute(_ROWS + order):
                    found.rows[int(row[0])] = (
                        int(row[0]),
                        str(row[1]),
                        bytes(row[2]),
                        int(row[3]),
                        float(row[4]),
                    )
        for name in ("next_seq", "outbox_id", "dropped_total", "resets_total"):
            with contextlib.suppress(sqlite3.Error, TypeError):
                query = "SELECT value FROM counters WHERE name = ?"
                (value,) = db.execute(query, (name,)).fetchone()
                found.counters[name] = int(value)
        with contextlib.suppress(sqlite3.Error, TypeError):
            (last,) = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            found.last_id = int(last)
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.close()
    found.last_id = max([found.last_id, *found.rows])
    return found


class DiskReserve:
    """A file of ``size`` bytes of disk kept beside the outbox, given back when the disk is full.

    A full disk stops every SQLite write, the one that would make room too: deleting
    the oldest messages is itself a write (to the WAL). Releasing this reserve lets
    that delete, and the checkpoint after it, go through; the freed pages then take
    new messages without the file growing. It is made again once the disk has room.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def present(self) -> bool:
        return self.size <= 0 or self.path.exists()

    def ensure(self) -> bool:
        """Make the reserve if it is missing and the disk has room for it (and as much again)."""
        if self.present():
            return True
        try:
            free = os.statvfs(self.path.parent)
            if free.f_bavail * free.f_frsize < 2 * self.size:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
                else:
                    for start in range(0, self.size, 65536):
                        os.write(fd, bytes(min(65536, self.size - start)))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            self.release()
            return False
        return True

    def release(self) -> bool:
        """Give the space back; False if there was nothing to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
