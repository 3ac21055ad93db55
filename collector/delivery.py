"""Delivery: from a handled message to durable, then acknowledged — in order, on its connection.

The MQTT side queues one :class:`Pending` per message (its lines, possibly none)
and one per timer or API judgement (lines, nothing to ack). The writer loop
takes the queue in batches of at most ``batch.max_messages``, oldest first, makes
a batch's lines durable (InfluxDB or the spool), keeps the messages InfluxDB
refused lines of in the dead-letter store, and only then acknowledges the batch —
in the order received, rejects included, since MQTT wants PUBACKs in the order of
the PUBLISHes. A message is acknowledged only on the connection it came on: the
generation check and the acks hold the lock a (dis)connect takes, so no ack crosses
a reconnect (paho also drops packets queued for a dead socket when it reconnects).

The spool drains alongside new batches, not only when there are none: while it
holds batches, the writer spends the time it would wait for a batch to fill on
writing spooled ones, so a backlog empties under steady traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from collector.config import BatchConfig
from collector.deadletter import DeadLetterStore, NewDeadLetter
from collector.metrics import CollectorMetrics
from collector.rejection_log import RejectionLog
from collector.spool import Spool
from collector.writer import InfluxWriter, Outcome

__all__ = ["INFLUX_REFUSED", "Delivery", "NoHistory", "Pending"]

log = logging.getLogger("kienco.collector")

INFLUX_REFUSED = "influx_refused"
LINES_TOPIC = "(lines)"  # the topic of a dead letter that is line protocol, not a message


class NoHistory:
    """Stands in for InfluxDB when the collector runs without one (the demo without influxd)."""

    influx_down = False
    down_since = None

    def write_durably(self, batch: str | Sequence[str]) -> Outcome:
        return Outcome("written", 0)

    def drain_spool(
        self,
        max_batches: int = 10,
        *,
        refused: Callable[[list[tuple[str, str]]], None] | None = None,
    ) -> int:
        return 0

    def probe(self) -> bool:
        return True


@dataclass(slots=True)
class Pending:
    """One message (or one timer/API judgement, ``mid`` 0) waiting: its lines durable, then its
    ack. ``lines`` is empty for a message only to be acked; ``payload`` is None for no message."""

    lines: str
    mid: int
    qos: int
    generation: int
    topic: str = ""
    payload: bytes | None = None


class Delivery:
    """The pending queue, the writer loop's step, and the acks."""

    def __init__(
        self,
        *,
        writer: InfluxWriter | NoHistory,
        spool: Spool | None,
        dead_letters: DeadLetterStore,
        metrics: CollectorMetrics,
        batch: BatchConfig,
        ack: Callable[[list[tuple[int, int]]], object],
        now: Callable[[], datetime],
        stopping: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.spool = spool
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.batch = batch
        self._ack = ack
        self._now = now
        self._said = RejectionLog(log)
        self._stopping = stopping
        self._clock = clock
        self._pending: list[Pending] = []
        self._pending_lock = threading.Lock()
        self.flush_now = threading.Event()
        self._draining = False
        self._said_spooling = False
        self._generation = 0
        self._linked = False
        self._link_lock = threading.Lock()

    # --- the connection ----------------------------------------------------------

    @property
    def generation(self) -> int:
        """The connection messages arrive on now (read in paho's network thread)."""
        return self._generation

    def connected(self) -> None:
        with self._link_lock:
            self._generation += 1
            self._linked = True

    def disconnected(self) -> None:
        with self._link_lock:  # from here on, nothing received so far may be acked
            self._linked = False

    # --- the queue ---------------------------------------------------------------

    def queue(self, pending: Pending) -> None:
        with self._pending_lock:
            self._pending.append(pending)
            full = len(self._pending) >= self.batch.max_messages
        if full:
            self.flush_now.set()

    def queue_lines(self, lines: str) -> None:
        """Points that belong to no MQTT message (timer and API judgements)."""
        if lines:
            with self._pending_lock:
                self._pending.append(Pending(lines, 0, 0, self._generation))

    # --- the writer loop ---------------------------------------------------------

    def step(self) -> bool:
        """One pass of the writer loop; False once stopping and nothing is left."""
        started = self._clock()
        if not self._draining:
            self.flush_now.wait(self.batch.max_delay_s)
        self.flush_now.clear()
        # At most one batch a write, oldest first: a writer that fell behind must not send
        # everything waiting as one request, which may outlast influx.timeout_s (sized on
        # max_messages, docs/capacity.md) and then be retried and spooled with nothing
        # acked meanwhile. What is left goes at once, in the next steps.
        limit = self.batch.max_messages
        with self._pending_lock:
            batch = self._pending[:limit]
            del self._pending[:limit]
            behind = len(self._pending)
        if behind:
            self.flush_now.set()
        self.metrics.pending.set(len(batch) + behind)
        if batch:
            try:
                self._make_durable(batch)
            except BaseException:
                # Nothing of it is acked: first in line again, so acks keep their order.
                # The writer loop logs and counts this (the spool failed: a full disk?).
                with self._pending_lock:
                    self._pending[:0] = batch
                raise
            self._ack_in_order(batch)
        self._draining = False
        if self.spool is not None and self.spool.depth():
            self._draining = self._drain(until=started + self.batch.max_delay_s)
        elif not batch:
            self.writer.probe()  # idle: is InfluxDB there? (/healthz says, drains start)
        if self._stopping.is_set():  # stopping: done once nothing is left to flush
            with self._pending_lock:
                return bool(self._pending)
        return True

    def _make_durable(self, batch: list[Pending]) -> None:
        outcome = self.writer.write_durably([p.lines for p in batch])
        self._count(outcome)
        if not outcome.refusals:
            return
        now = self._now()
        kept = []
        for refusal in outcome.refusals:
            p = batch[refusal.unit]
            if p.payload is not None:
                kept.append(NewDeadLetter(now, p.topic, INFLUX_REFUSED, refusal.error, p.payload))
            else:
                entry = NewDeadLetter(
                    now, LINES_TOPIC, INFLUX_REFUSED, refusal.error, p.lines.encode(), "lines"
                )
                kept.append(entry)
        self._keep(kept)

    def _keep_lines(self, refused: list[tuple[str, str]]) -> None:
        now = self._now()
        self._keep(
            [
                NewDeadLetter(now, LINES_TOPIC, INFLUX_REFUSED, error, line.encode(), "lines")
                for line, error in refused
            ]
        )

    def _keep(self, entries: list[NewDeadLetter]) -> None:
        self.dead_letters.put_many(entries)
        self.metrics.rejected.labels(INFLUX_REFUSED).inc(len(entries))
        # A box whose clock is months behind has lines refused in every batch
        # (collector/retention_floor.py): each topic said once a minute, not each batch.
        for entry in entries:
            detail = f"{entry.detail} (kept: kienco deadletter list --reason {INFLUX_REFUSED})"
            self._said.refused(entry.received_at, entry.topic, INFLUX_REFUSED, detail)

    def _drain(self, *, until: float) -> bool:
        """Write spooled batches, oldest first, until a new batch is due (at least one).

        Returns whether to go on draining at once (it moved batches and some remain).
        """
        moved = 0
        while True:
            drained = self.writer.drain_spool(max_batches=1, refused=self._keep_lines)
            moved += drained
            if not drained or self.flush_now.is_set() or self._clock() >= until:
                break
            if self.spool is None or not self.spool.depth():
                break
        if moved:
            self.metrics.batches_drained.inc(moved)
        depth = self.spool.depth() if self.spool is not None else 0
        self.metrics.spool_depth.set(depth)
        return moved > 0 and depth > 0

    def _ack_in_order(self, batch: list[Pending]) -> None:
        # One call for the batch: the client writes its acks at once (collector/mqtt_client.py).
        with self._link_lock:
            generation = self._generation if self._linked else -1
            acks = [(p.mid, p.qos) for p in batch if p.qos > 0 and p.generation == generation]
            if acks:
                self._ack(acks)
        self.metrics.acked.inc(len(acks))

    def _count(self, outcome: Outcome) -> None:
        self.metrics.points_written.inc(outcome.written_points)
        self.metrics.points_refused.inc(outcome.refused_points)
        if outcome.spooled:
            self.metrics.batches_spooled.inc()
            if outcome.attempts and not self._said_spooling:
                # Once an outage, with InfluxDB's answer: a refused certificate, a wrong
                # scheme or a password is the operator's to fix; the spool keeps the data.
                self._said_spooling = True
                log.warning("InfluxDB did not take a batch (%s); spooling", outcome.error)
        else:
            self._said_spooling = False
        if self.spool is not None:
            self.metrics.spool_depth.set(self.spool.depth())
