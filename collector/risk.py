"""Disaster risk levels per province (Decision 18/2021/QĐ-TTg, levels 1–5; 0 = none declared).

Kept in SQLite with who set each level, when and why; the current level of a
province is its newest entry. Policy thresholds tighten with the level, and each
verdict says which level it was judged under.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contract.wire import HumanName, Slug, UtcTime
from plumbing.durable import DurableStore

# A province's current level (0: none declared), as the judging code asks for it.
RiskLevelOf = Callable[[str], int]


def no_risk(_province: str) -> int:
    return 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS risk_level (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    province TEXT NOT NULL,
    level INTEGER NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_level_province ON risk_level (province, id);
"""


class RiskChange(BaseModel):
    """A request to set a province's level, as the API takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    province: Slug
    level: int = Field(ge=0, le=5, description="0 clears it; 1–5 as in Decision 18/2021/QĐ-TTg")
    reason: HumanName
    set_by: HumanName


class RiskEntry(RiskChange):
    set_at: UtcTime


class RiskLevels(DurableStore):
    """Thread-safe; ``level(province)`` is cheap (kept in memory)."""

    SCHEMA = _SCHEMA

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._current: dict[str, int] = {
            province: int(level)
            for province, level in self._db.execute(
                "SELECT province, level FROM risk_level WHERE id IN "
                "(SELECT MAX(id) FROM risk_level GROUP BY province)"
            )
        }

    def level(self, province: str) -> int:
        return self._current.get(province, 0)

    def set(self, change: RiskChange, at: datetime) -> RiskEntry:
        entry = RiskEntry(**change.model_dump(), set_at=at)
        with self._lock:
            self._db.execute(
                "INSERT INTO risk_level (province, level, reason, set_by, set_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (entry.province, entry.level, entry.reason, entry.set_by, entry.set_at.isoformat()),
            )
            self._current[entry.province] = entry.level
        return entry

    def history(self, province: str | None = None, limit: int = 100) -> list[RiskEntry]:
        query = "SELECT province, level, reason, set_by, set_at FROM risk_level"
        args: tuple[object, ...] = ()
        if province is not None:
            query += " WHERE province = ?"
            args = (province,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            RiskEntry.model_validate(
                {"province": p, "level": lv, "reason": r, "set_by": b, "set_at": at}
            )
            for p, lv, r, b, at in rows
        ]

    def current(self) -> dict[str, int]:
        return dict(self._current)
