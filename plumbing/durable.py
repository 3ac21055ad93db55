"""One way to open, migrate, guard, set aside and close the SQLite files kienco keeps.

The agent's outbox, the collector's spool, dead letters, risk levels, meetings, alerts and
saved state. WAL with ``synchronous=FULL``: each commit is fsynced, so what a call has
stored survives kill -9 and power loss; autocommit (``isolation_level=None``) so callers
say where their transactions are; shared across threads behind the store's lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

# table -> column -> its declaration, for columns added after a file format shipped
LaterColumns = Mapping[str, Mapping[str, str]]


def open_durable(
    path: Path, schema: str, *, later_columns: LaterColumns | None = None
) -> sqlite3.Connection:
    """Open (or create) ``path`` with ``schema``; add the ``later_columns`` an older file lacks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    for table, columns in (later_columns or {}).items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column, declaration in columns.items():
            if column not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    return db


def move_aside(path: Path, now: datetime, label: str) -> Path:
    """Rename ``path`` and its WAL and shared-memory files to ``<name>.<label>-<UTC time>``.

    For a file SQLite cannot read: it is kept for a post-mortem, a fresh one takes its place.
    """
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{label}-{stamp}")
    for n in range(2, 1000):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    return target


class DurableStore:
    """A store kept in one SQLite file: opened durable with ``SCHEMA`` (and ``LATER_COLUMNS``
    added to an older file), its connection used behind ``_lock``, closed by ``close()``."""

    SCHEMA: ClassVar[str]
    LATER_COLUMNS: ClassVar[LaterColumns] = {}

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        """The connection; a store that repairs a damaged file overrides this."""
        return open_durable(self.path, self.SCHEMA, later_columns=self.LATER_COLUMNS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
