"""Every SQLite file kienco keeps is opened, migrated, set aside and closed one way."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.outbox import Outbox
from collector.alert_store import AlertStore
from collector.deadletter import DeadLetterStore
from collector.meetings import MeetingStore
from collector.risk import RiskLevels
from collector.spool import Spool
from collector.state_store import StateStore
from plumbing.durable import DurableStore, move_aside, open_durable

STORES: dict[str, Callable[[Path], DurableStore]] = {
    "outbox": Outbox,
    "spool": Spool,
    "dead letters": DeadLetterStore,
    "risk levels": RiskLevels,
    "meetings": MeetingStore,
    "alerts": lambda path: AlertStore(path, ["http://127.0.0.1:9"]),
}


@pytest.mark.parametrize("name", sorted(STORES))
def test_each_store_is_wal_fsynced_and_closes(name: str, tmp_path: Path) -> None:
    store = STORES[name](tmp_path / "sub" / f"{name}.sqlite")
    assert store.path.exists()  # its folder made too
    db = store._db
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: fsync per commit
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.execute("SELECT 1")


def test_the_state_store_is_one_too() -> None:
    assert issubclass(StateStore, DurableStore)


def test_later_columns_are_added_to_an_older_file_once(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    schema = "CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY);"
    open_durable(path, schema).close()
    later = {"item": {"note": "TEXT NOT NULL DEFAULT ''"}}
    for _ in range(2):  # the second open finds it there
        db = open_durable(path, schema, later_columns=later)
        assert [row[1] for row in db.execute("PRAGMA table_info(item)")] == ["id", "note"]
        db.close()


def test_a_file_moved_aside_twice_in_a_second_keeps_both(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    now = datetime(2026, 9, 7, 3, 15, tzinfo=UTC)
    moved = []
    for n in range(2):
        path.write_text(f"damaged {n}")
        Path(f"{path}-wal").write_text("wal")
        moved.append(move_aside(path, now, "unreadable"))
    assert [m.name for m in moved] == [
        "x.sqlite.unreadable-20260907T031500Z",
        "x.sqlite.unreadable-20260907T031500Z-2",
    ]
    assert [m.read_text() for m in moved] == ["damaged 0", "damaged 1"]
    assert Path(f"{moved[1]}-wal").exists() and not path.exists()
