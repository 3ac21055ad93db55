"""One way to open the SQLite files kienco keeps (outbox, spool, dead letters, risk, meetings).

WAL with ``synchronous=FULL``: each commit is fsynced, so what a call has stored
survives kill -9 and power loss; autocommit (``isolation_level=None``) so callers
say where their transactions are; shared across threads behind the caller's lock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_durable(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db
