"""Where InfluxDB's retention policy ends: lines stamped before it are refused unwritten.

InfluxDB 1.x drops points older than its retention policy keeps (``partial write: points
beyond retention policy``, a 400), keeping the rest of the batch. The writer traces a
400 to the messages behind it by writing halves of the batch again (collector/writer.py,
``isolate_budget`` requests at most). After a typhoon, boxes come back with clocks months
behind (a spare from a drawer, an RTC reset to its firmware's date); the collector judges
them by their clocks (rules/snapshot.py), but each of their reports puts a line InfluxDB
refuses into every batch. Measured on InfluxDB 1.6 with the shipped 35-day policy,
batches of 1 000 reports (``benchmarks/retention_floor.py --batches 20``, 2026-12-07):
with one such report in each, a batch took 19 requests, 3.0 times its lines and 3.0
times the time of a clean batch; with 5, 65 requests (the budget) and 136 reports named
refused; with 20, 757 named refused where InfluxDB had refused 20. With the floor: one
request a batch, exactly the old reports named, 1.05-1.10 times a clean batch.

So once InfluxDB refuses a line for its retention, the writer asks the policy's
duration (``SHOW RETENTION POLICIES``; the collector's account has ``ALL`` on its
database) and, for the next hour (each such refusal renews it), takes out of each batch
before writing it every line stamped before now − duration + ``margin_s``, naming its
message refused with InfluxDB's words, as InfluxDB would have. The margin covers the
clocks of the two machines and the time to the write; a line inside it that InfluxDB
would have kept is refused all the same, and kept with its message as a dead letter,
never lost. Until InfluxDB first refuses such a line, or if the duration cannot be
read (logged once), nothing changes: every batch is written whole. Batches spooled
while InfluxDB was down are drained whole, and traced as before (rare: an outage).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from collector.influx import BEYOND_RETENTION

__all__ = ["RetentionFloor", "Taken"]

log = logging.getLogger("kienco.collector")


@dataclass(frozen=True, slots=True)
class Taken:
    """A batch's units with the lines before the floor taken out (``units``), the units
    they came from (``refused``) and how many lines (``lines``)."""

    units: Sequence[str]
    refused: tuple[int, ...] = ()
    lines: int = 0


class RetentionFloor:
    """When armed (InfluxDB refused a line for its retention less than ``hold_s`` ago),
    the oldest time InfluxDB keeps, plus ``margin_s``."""

    def __init__(
        self,
        duration_s: Callable[[], float | None],
        *,
        clock: Callable[[], float] = time.time,
        hold_s: float = 3600.0,
        margin_s: float = 60.0,
    ) -> None:
        self._duration_s = duration_s
        self._clock = clock
        self.hold_s = hold_s
        self.margin_s = margin_s
        self._duration: float | None = None
        self._until: float | None = None
        self._lock = threading.Lock()
        self._unread_until: float | None = None  # not asked again before, once it failed
        self._said_unread = False

    def saw(self, error: str | None) -> None:
        """InfluxDB answered a write with ``error``: if it refused lines for its retention,
        arm (or renew) the floor, asking the policy's duration at most once per hold."""
        if error is None or BEYOND_RETENTION not in error:
            return
        now = self._clock()
        with self._lock:
            ask = self._duration is None or self._until is None or now > self._until
            duration = self._duration
            if ask and self._unread_until is not None and now < self._unread_until:
                return
        if ask:
            try:
                duration = self._duration_s()
            except Exception as exc:  # its account cannot read it, InfluxDB went away, or
                # an answer not foreseen: a floor that cannot be armed never fails a write
                with self._lock:
                    self._unread_until = now + self.hold_s
                if not self._said_unread:
                    self._said_unread = True
                    log.warning(
                        "InfluxDB refuses lines beyond its retention policy, and its duration "
                        "could not be read (%s): each batch with such a line is traced by "
                        "writing halves of it again. Fix: GRANT ALL ON the database to the "
                        "collector's account",
                        exc,
                    )
                return
        with self._lock:
            fresh = self._until is None or now > self._until
            self._duration = duration
            self._until = None if duration is None else now + self.hold_s
        if fresh and duration is not None:
            log.warning(
                "InfluxDB refuses lines older than its retention policy keeps (%.0f days): "
                "for the next hour, lines stamped before it are refused without a write, "
                "their messages kept as dead letters (kienco deadletter list --reason "
                "influx_refused). A box whose clock is that far behind sends them: see the "
                "system dashboard's clock panels",
                duration / 86_400,
            )

    def floor_ns(self) -> int | None:
        """Lines stamped before this (ns since the epoch) are to be refused; None: none."""
        with self._lock:
            duration, until = self._duration, self._until
        now = self._clock()
        if duration is None or until is None or now > until:
            return None
        return int((now - duration + self.margin_s) * 1e9)

    def take(self, units: Sequence[str]) -> Taken:
        """``units`` without their lines stamped before the floor (none when not armed)."""
        floor = self.floor_ns()
        if floor is None:
            return Taken(units)
        kept: list[str] = []
        refused: list[int] = []
        taken = 0
        for i, unit in enumerate(units):
            if not unit:
                kept.append(unit)
                continue
            lines = unit.split("\n")
            young = [line for line in lines if not _before(line, floor)]
            if len(young) < len(lines):
                refused.append(i)
                taken += len(lines) - len(young)
            kept.append("\n".join(young) if len(young) < len(lines) else unit)
        if not refused:
            return Taken(units)
        return Taken(kept, tuple(refused), taken)

    def reason(self) -> str:
        """What a line taken out is refused with: InfluxDB's words, and ours."""
        floor = self.floor_ns()
        since = "" if floor is None else datetime.fromtimestamp(floor / 1e9, UTC).isoformat()
        return f"partial write: {BEYOND_RETENTION} (stamped before {since}: refused unwritten)"


def _before(line: str, floor_ns: int) -> bool:
    """Whether a line of line protocol is stamped before ``floor_ns`` (a line without a
    readable stamp is not: InfluxDB is left to judge it)."""
    try:
        return int(line[line.rindex(" ") + 1 :]) < floor_ns
    except ValueError:
        return False
