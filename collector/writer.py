"""The durable-write step: a batch ends up in InfluxDB or in the disk spool.

``write_durably`` returns only once the batch is in one of them, so the caller
may then acknowledge the MQTT messages behind it. InfluxDB gets a few quick
attempts (``plumbing.backoff``, bounded in count and time) and the
batch is spooled if it is still unavailable. After a spooled batch the writer
stops waiting on InfluxDB: new batches go straight to the spool, with one
attempt per ``probe_interval_s``, so an outage does not slow the broker pipe
to one batch per retry budget. ``drain_spool`` puts spooled batches back,
oldest first, as soon as InfluxDB answers.

A 400 is a partial write (InfluxDB kept the valid lines): never retried as a
whole, but traced to what was refused. A batch is written as *units* (one MQTT
message's lines each, or single lines); after a 400 the writer bisects the
units, writing halves again, until each refused unit is found with InfluxDB's
own reason (at most ``isolate_budget`` extra requests; past it, the units not
cleared are all named, never fewer). The caller keeps refused units in the
dead-letter store. Writing the same line twice stores one point (explicit
timestamps), so retries, bisection and drains after an unclear failure are safe.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from collector.influx import InfluxBatchTooLarge, InfluxUnavailable, WriteResult
from collector.line_protocol import count_lines
from collector.retention_floor import RetentionFloor, Taken
from collector.spool import Spool
from plumbing.backoff import Backoff

__all__ = ["InfluxWriter", "LineWriter", "Outcome", "Refusal", "WriterCounters"]

Status = Literal["written", "partial", "spooled"]


class LineWriter(Protocol):
    """What the writer needs of a client: ``InfluxV1Client.write`` and ``ping``."""

    def write(self, lines: str) -> WriteResult: ...
    def ping(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """InfluxDB refused (some of) the lines of unit ``unit`` of a batch, saying ``error``."""

    unit: int
    error: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one batch went. ``partial``: InfluxDB kept all but ``refused_points``,
    whose units ``refusals`` names."""

    status: Status
    lines: int
    refused_points: int = 0
    error: str | None = None
    attempts: int = 0
    refusals: tuple[Refusal, ...] = ()

    @property
    def spooled(self) -> bool:
        return self.status == "spooled"

    @property
    def written_points(self) -> int:
        return 0 if self.spooled else self.lines - self.refused_points


@dataclass
class WriterCounters:
    """Totals since start, for the collector's metrics."""

    written_points: int = 0
    refused_points: int = 0
    spooled_batches: int = 0
    spooled_points: int = 0
    drained_batches: int = 0
    retries: int = 0


class InfluxWriter:
    """Writes batches to InfluxDB with retries, spooling what it cannot write."""

    def __init__(
        self,
        client: LineWriter,
        spool: Spool,
        *,
        attempts: int = 3,
        base_delay_s: float = 0.2,
        max_delay_s: float = 1.0,
        budget_s: float = 2.0,
        probe_interval_s: float = 5.0,
        isolate_budget: int = 64,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        beat: Callable[[], None] = lambda: None,
        retention: RetentionFloor | None = None,
    ) -> None:
        """``retention``: lines InfluxDB would refuse for its retention policy, taken out
        before a write (collector/retention_floor.py)."""
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.client = client
        self.spool = spool
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.budget_s = budget_s
        self.probe_interval_s = probe_interval_s
        self.isolate_budget = isolate_budget
        self.counters = WriterCounters()
        self.retention = retention
        self._beat = beat  # after each request: the writer is busy, not stuck
        self._last_contact = clock()
        self._sleep = sleep
        self._clock = clock
        # At least half the ceiling: a retry within the budget still gives InfluxDB time.
        self._backoff = Backoff(
            base_delay_s, max_delay_s, jitter=0.5, rand=(rng or random.Random()).uniform
        )
        self._lock = threading.Lock()  # counters and the outage state
        self._drain_lock = threading.Lock()  # one drain at a time: no batch sent twice
        self._down_until: float | None = None  # set while InfluxDB is known to be down
        self._down_since: float | None = None  # when it went down, seconds since the epoch

    @property
    def influx_down(self) -> bool:
        """True after a batch was spooled, until InfluxDB takes one again."""
        return self._down_until is not None

    @property
    def down_since(self) -> float | None:
        """When InfluxDB was first found down in this outage (``time.time()``), or None."""
        return self._down_since if self._down_until is not None else None

    def _mark_down(self) -> None:
        """Under ``_lock``: InfluxDB is down, probe it again in a probe interval."""
        if self._down_until is None:
            self._down_since = time.time()
        self._down_until = self._clock() + self.probe_interval_s

    def probe(self) -> bool:
        """On an idle tick: ping InfluxDB when nothing was heard of it for a probe interval,
        so an outage shows (and its end lets the spool drain) with no batch to write.
        Returns whether InfluxDB is taken to be up."""
        now = self._clock()
        if now - self._last_contact >= self.probe_interval_s:
            up = self.client.ping()
            self._beat()
            with self._lock:
                self._last_contact = now
                if up:
                    self._down_until = None
                else:
                    self._mark_down()
        return not self.influx_down

    def write_durably(self, batch: str | Sequence[str]) -> Outcome:
        """Write a batch to InfluxDB, or spool it; return once it is in one of them.

        ``batch`` is line protocol, or a sequence of units (each one message's lines;
        empty units are skipped) that a partial write is traced to; for plain lines
        the units are the lines.
        """
        units: Sequence[str] | None = None
        taken = Taken(())
        if isinstance(batch, str):
            lines = batch
        else:
            units = batch
            if self.retention is not None:
                taken = self.retention.take(units)
                units = taken.units
            lines = "\n".join(unit for unit in units if unit)
        n_lines = count_lines(lines)
        return self._with_taken(taken, self._write_or_spool(lines, n_lines, units))

    def _with_taken(self, taken: Taken, outcome: Outcome) -> Outcome:
        """``outcome`` with the units whose lines were taken out before it named refused."""
        if not taken.refused:
            return outcome
        self._count(refused_points=taken.lines)
        assert self.retention is not None  # only it takes lines out
        reason = self.retention.reason()
        refusals = {unit: Refusal(unit, reason) for unit in taken.refused}
        refusals.update({r.unit: r for r in outcome.refusals})  # InfluxDB's own word first
        return Outcome(
            "spooled" if outcome.spooled else "partial",
            outcome.lines + taken.lines,
            outcome.refused_points + taken.lines,
            outcome.error or reason,
            outcome.attempts,
            tuple(sorted(refusals.values(), key=lambda r: r.unit)),
        )

    def _write_or_spool(self, lines: str, n_lines: int, units: Sequence[str] | None) -> Outcome:
        if n_lines == 0:
            return Outcome("written", 0)
        start = self._clock()
        down_until = self._down_until
        attempts = self.attempts if down_until is None else (1 if start >= down_until else 0)
        error = "InfluxDB down: spooled without trying"
        tried = 0
        while tried < attempts:
            if tried:
                delay = self._backoff.delay(tried - 1)
                if self._clock() + delay - start > self.budget_s:
                    break
                self._sleep(delay)
                self._count(retries=1)
            tried += 1
            try:
                result = self._write(lines)
            except InfluxUnavailable as unavailable:
                error = str(unavailable)
                continue
            refusals: tuple[Refusal, ...] = ()
            if not result.ok:
                refusals = self._isolate(lines.split("\n") if units is None else units, result)
            return self._written(n_lines, result, tried, refusals)
        self.spool.put(lines)
        self._count(spooled_batches=1, spooled_points=n_lines)
        if tried:  # one spooled without trying leaves the next try where it was: under
            # a steady stream of batches InfluxDB would otherwise never be tried again
            with self._lock:
                self._mark_down()
        return Outcome("spooled", n_lines, error=error, attempts=tried)

    def drain_spool(
        self,
        max_batches: int = 10,
        *,
        refused: Callable[[list[tuple[str, str]]], None] | None = None,
    ) -> int:
        """Move up to ``max_batches`` spooled batches into InfluxDB, oldest first.

        Stops at the first failure (the batch stays spooled). A partial write is
        traced to its lines, which go to ``refused`` as ``(line, InfluxDB's reason)``
        before the batch leaves the spool (a raising ``refused`` keeps it spooled).
        Returns the number of batches moved; 0 at once if another drain is running,
        or InfluxDB is down and not due a probe.
        """
        down_until = self._down_until
        if down_until is not None and self._clock() < down_until:
            return 0
        if not self._drain_lock.acquire(blocking=False):
            return 0
        try:
            drained = 0
            while drained < max_batches:
                oldest = self.spool.peek_oldest()
                if oldest is None:
                    break
                batch_id, lines = oldest
                try:
                    result = self._write(lines)
                except InfluxUnavailable:
                    with self._lock:
                        self._mark_down()
                    break
                refusals: tuple[Refusal, ...] = ()
                if not result.ok:
                    split = lines.split("\n")
                    refusals = self._isolate(split, result)
                    if refused is not None and refusals:
                        refused([(split[r.unit], r.error) for r in refusals])
                self._written(count_lines(lines), result, 1, refusals)
                self.spool.remove(batch_id)
                drained += 1
                self._count(drained_batches=1)
            return drained
        finally:
            self._drain_lock.release()

    def _isolate(self, units: Sequence[str], first: WriteResult) -> tuple[Refusal, ...]:
        """The units InfluxDB refused lines of, found by writing halves of the batch again.

        Each request clears a half or narrows the search; a unit alone and refused is
        named with InfluxDB's reason for it. Past ``isolate_budget`` requests, or if
        InfluxDB stops answering, every unit not cleared yet is named, with the reason
        known so far: over-naming keeps a message for replay, under-naming loses it.
        """
        refusals: list[Refusal] = []
        suspects = [(0, len(units), first.error or "refused")]
        budget = self.isolate_budget
        while suspects:
            lo, hi, error = suspects.pop()
            live = [i for i in range(lo, hi) if units[i]]
            if len(live) <= 1 or budget <= 0:
                note = "" if len(live) <= 1 else " (not traced further: too many refusals)"
                refusals += [Refusal(i, error + note) for i in live]
                continue
            middle = live[len(live) // 2]
            for a, b in ((lo, middle), (middle, hi)):
                part = "\n".join(units[i] for i in range(a, b) if units[i])
                if not part:
                    continue
                budget -= 1
                try:
                    result = self._write(part)
                except InfluxUnavailable as gone:
                    suspects.append((a, b, f"{error} (not traced: {gone})"))
                    budget = 0
                    continue
                if not result.ok:
                    suspects.append((a, b, result.error or error))
        return tuple(sorted(refusals, key=lambda r: r.unit))

    def _write(self, lines: str) -> WriteResult:
        """One write; a batch too large for the server is sent in halves."""
        result = self._write_halving(lines)
        if self.retention is not None and not result.ok:
            self.retention.saw(result.error)
        return result

    def _write_halving(self, lines: str) -> WriteResult:
        try:
            result = self.client.write(lines)
        except InfluxBatchTooLarge:
            parts = lines.split("\n")
            if len(parts) < 2:  # no smaller piece to send: InfluxDB refuses this line
                return WriteResult(
                    ok=False, partial=True, refused=1, error="line exceeds max-body-size"
                )
            middle = len(parts) // 2
            results = [
                self._write_halving("\n".join(half)) for half in (parts[:middle], parts[middle:])
            ]
            refused = sum(r.refused for r in results)
            errors = [r.error for r in results if r.error]
            if not errors:
                return WriteResult(ok=True)
            return WriteResult(ok=False, partial=True, refused=refused, error="\n".join(errors))
        finally:
            self._beat()
        with self._lock:
            self._last_contact = self._clock()
        return result

    def _written(
        self,
        n_lines: int,
        result: WriteResult,
        attempts: int,
        refusals: tuple[Refusal, ...] = (),
    ) -> Outcome:
        with self._lock:
            self._down_until = None
        if result.ok:
            self._count(written_points=n_lines)
            return Outcome("written", n_lines, attempts=attempts)
        refused = min(result.refused, n_lines)
        self._count(written_points=n_lines - refused, refused_points=refused)
        return Outcome("partial", n_lines, refused, result.error, attempts, refusals)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, increment in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + increment)
