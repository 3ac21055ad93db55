"""The durable-write step: a batch ends up in InfluxDB or in the disk spool.

``write_durably`` returns only once the batch is in one of them, so the caller
may then acknowledge the MQTT messages behind it. InfluxDB gets a few quick
attempts (exponential backoff with jitter, bounded in count and time) and the
batch is spooled if it is still unavailable. After a spooled batch the writer
stops waiting on InfluxDB: new batches go straight to the spool, with one
attempt per ``probe_interval_s``, so an outage does not slow the broker pipe
to one batch per retry budget. ``drain_spool`` puts spooled batches back,
oldest first, as soon as InfluxDB answers.

A 400 is a partial write (InfluxDB kept the valid lines): it is counted and
reported, never retried. Writing the same line twice stores one point
(explicit timestamps), so retries and drains after an unclear failure are safe.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from collector.influx import InfluxBatchTooLarge, InfluxUnavailable, WriteResult
from collector.line_protocol import count_lines
from collector.spool import Spool

__all__ = ["InfluxWriter", "LineWriter", "Outcome", "WriterCounters"]

Status = Literal["written", "partial", "spooled"]


class LineWriter(Protocol):
    """What the writer needs of a client: ``InfluxV1Client.write``."""

    def write(self, lines: str) -> WriteResult: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one batch went. ``partial``: InfluxDB kept all but ``refused_points``."""

    status: Status
    lines: int
    refused_points: int = 0
    error: str | None = None
    attempts: int = 0

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
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.client = client
        self.spool = spool
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.budget_s = budget_s
        self.probe_interval_s = probe_interval_s
        self.counters = WriterCounters()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # counters and the outage state
        self._drain_lock = threading.Lock()  # one drain at a time: no batch sent twice
        self._down_until: float | None = None  # set while InfluxDB is known to be down

    @property
    def influx_down(self) -> bool:
        """True after a batch was spooled, until InfluxDB takes one again."""
        return self._down_until is not None

    def backoff_s(self, retry: int) -> float:
        """Delay before retry ``retry`` (1, 2, …): exponential, capped, jittered in [½, 1]."""
        delay: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (retry - 1))
        return delay * (0.5 + 0.5 * self._rng.random())

    def write_durably(self, lines: str) -> Outcome:
        """Write a batch to InfluxDB, or spool it; return once it is in one of them."""
        n_lines = count_lines(lines)
        if n_lines == 0:
            return Outcome("written", 0)
        start = self._clock()
        down_until = self._down_until
        attempts = self.attempts if down_until is None else (1 if start >= down_until else 0)
        error = "InfluxDB down: spooled without trying"
        tried = 0
        while tried < attempts:
            if tried:
                delay = self.backoff_s(tried)
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
            return self._written(n_lines, result, tried)
        self.spool.put(lines)
        self._count(spooled_batches=1, spooled_points=n_lines)
        with self._lock:
            self._down_until = self._clock() + self.probe_interval_s
        return Outcome("spooled", n_lines, error=error, attempts=tried)

    def drain_spool(self, max_batches: int = 10) -> int:
        """Move up to ``max_batches`` spooled batches into InfluxDB, oldest first.

        Stops at the first failure (the batch stays spooled). A partial write is
        counted and its batch removed. Returns the number of batches moved; 0 at
        once if another drain is running, or InfluxDB is down and not due a probe.
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
                        self._down_until = self._clock() + self.probe_interval_s
                    break
                self._written(count_lines(lines), result, 1)
                self.spool.remove(batch_id)
                drained += 1
                self._count(drained_batches=1)
            return drained
        finally:
            self._drain_lock.release()

    def _write(self, lines: str) -> WriteResult:
        """One write; a batch too large for the server is sent in halves."""
        try:
            return self.client.write(lines)
        except InfluxBatchTooLarge:
            parts = lines.split("\n")
            if len(parts) < 2:  # no smaller piece to send: InfluxDB refuses this line
                return WriteResult(
                    ok=False, partial=True, refused=1, error="line exceeds max-body-size"
                )
            middle = len(parts) // 2
            results = [self._write("\n".join(half)) for half in (parts[:middle], parts[middle:])]
            refused = sum(r.refused for r in results)
            errors = [r.error for r in results if r.error]
            if not errors:
                return WriteResult(ok=True)
            return WriteResult(ok=False, partial=True, refused=refused, error="\n".join(errors))

    def _written(self, n_lines: int, result: WriteResult, attempts: int) -> Outcome:
        with self._lock:
            self._down_until = None
        if result.ok:
            self._count(written_points=n_lines)
            return Outcome("written", n_lines, attempts=attempts)
        refused = min(result.refused, n_lines)
        self._count(written_points=n_lines - refused, refused_points=refused)
        return Outcome("partial", n_lines, refused, result.error, attempts)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, increment in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + increment)
