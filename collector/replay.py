"""Replaying dead letters after a fix: each kept entry driven again down the path it failed on.

A message goes through the collector's decode path (``Collector.process``: decode,
admission, state, judging) as if it had just come, except that its site is not
taken as heard from now; its lines, and the line entries, are then made durable
by the writer (InfluxDB, or the spool). An entry that is stored is marked
replayed; one refused again stays kept with this time's reason.

Why through the running collector (``POST /api/v1/deadletter/replay``) rather
than republishing to the broker: the store is the collector's own file, so
only the collector knows when a replay is durable and can mark it; the admin
token guards it like every other change; and nothing is published on a site's
topics in the site's name (the broker ACL rightly forbids the collector that,
and other subscribers would take it for the agent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from collector.deadletter import DeadLetter, DeadLetterStore
from collector.decode import Rejected
from collector.delivery import INFLUX_REFUSED
from collector.writer import Outcome

__all__ = ["ReplayRequest", "ReplayResult", "Replayer"]

CHUNK = 500  # entries per write: a big backlog replays in bounded batches


class ReplayRequest(BaseModel):
    """``POST /api/v1/deadletter/replay``: which kept entries (all when neither is given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reason: str | None = Field(default=None, max_length=64)
    id: int | None = Field(default=None, ge=1)


@dataclass
class ReplayResult:
    replayed: list[int] = field(default_factory=list)
    refused: list[dict[str, object]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "replayed": len(self.replayed),
            "replayed_ids": self.replayed,
            "still_refused": self.refused,
        }


Process = Callable[[str, bytes, datetime], "str | Rejected"]
Write = Callable[[Sequence[str]], Outcome]


class Replayer:
    def __init__(
        self,
        store: DeadLetterStore,
        *,
        process: Process,
        write: Write,
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self._process = process
        self._write = write
        self._now = now
        self._lock = threading.Lock()  # one replay at a time: no entry driven twice

    def replay(self, request: ReplayRequest) -> ReplayResult:
        with self._lock:
            entries = self.store.select(reason=request.reason, id=request.id, kept_only=True)
            result = ReplayResult()
            for start in range(0, len(entries), CHUNK):
                self._chunk(entries[start : start + CHUNK], result)
            return result

    def _chunk(self, entries: list[DeadLetter], result: ReplayResult) -> None:
        now = self._now()
        units: list[str] = []
        owners: list[DeadLetter] = []
        for entry in entries:  # oldest first: state folds in the order things came
            if entry.kind == "lines":
                lines: str | Rejected = entry.payload.decode("utf-8", "replace")
            else:
                lines = self._process(entry.topic, entry.payload, now)
            if isinstance(lines, Rejected):
                self._refused(entry, lines.reason, lines.detail, result)
                continue
            units.append(lines)
            owners.append(entry)
        outcome = self._write(units)
        refused = {r.unit: r.error for r in outcome.refusals}
        stored = []
        for unit, entry in enumerate(owners):
            if unit in refused:
                self._refused(entry, INFLUX_REFUSED, refused[unit], result)
            else:
                stored.append(entry.id)
        self.store.replayed(stored, now)
        result.replayed += stored

    def _refused(self, entry: DeadLetter, reason: str, detail: str, result: ReplayResult) -> None:
        self.store.refused_again(entry.id, reason, detail)
        result.refused.append({"id": entry.id, "reason": reason, "detail": detail})
