"""Delivery's writer step: batches of at most ``batch.max_messages``, acked in order.

A writer that fell behind (its thread starved while paho's handled a backlog) once sent
everything waiting as one request: at 103 400 sites that request outlasted
``influx.timeout_s``, was retried and spooled while nothing was acked, and the broker
dropped the silent shard (benchmarks/fleet.py). The InfluxDB side is a recorder here:
what is pinned is how the queue is cut and acked, not the HTTP write.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from collector.config import BatchConfig
from collector.deadletter import DeadLetterStore
from collector.delivery import Delivery, Pending
from collector.metrics import CollectorMetrics
from collector.writer import Outcome


class RecordingWriter:
    """Takes every batch as written, and remembers each one's units."""

    influx_down = False

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing = False

    def write_durably(self, batch: str | Sequence[str]) -> Outcome:
        if self.failing:  # as the spool does on a full disk
            raise OSError("spool: disk full")
        units = [batch] if isinstance(batch, str) else list(batch)
        self.batches.append(units)
        return Outcome("written", sum(1 for unit in units if unit))

    def drain_spool(self, max_batches: int = 10, *, refused: object = None) -> int:
        return 0

    def probe(self) -> bool:
        return True


Acks = list[list[tuple[int, int]]]


def _delivery(
    tmp_path: Path, max_messages: int, max_delay_s: float = 5.0
) -> tuple[Delivery, RecordingWriter, Acks, CollectorMetrics]:
    writer = RecordingWriter()
    acks: Acks = []
    metrics = CollectorMetrics()
    delivery = Delivery(
        writer=writer,  # type: ignore[arg-type]
        spool=None,
        dead_letters=DeadLetterStore(tmp_path / "deadletter.sqlite"),
        metrics=metrics,
        batch=BatchConfig(max_messages=max_messages, max_delay_s=max_delay_s),
        ack=acks.append,
        now=lambda: datetime.now(UTC),
        stopping=threading.Event(),
    )
    delivery.connected()
    return delivery, writer, acks, metrics


def _gauge(metrics: CollectorMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None
    return value


def test_a_backlog_is_written_in_batches_of_max_messages_in_order(tmp_path: Path) -> None:
    delivery, writer, acks, metrics = _delivery(tmp_path, max_messages=100)
    generation = delivery.generation
    for mid in range(1, 251):
        delivery.queue(Pending(f"m v={mid}i {mid}", mid, 1, generation))

    delivery.step()
    assert [len(b) for b in writer.batches] == [100]
    assert _gauge(metrics, "kienco_pending_messages") == 250
    for _ in range(2):
        delivery.step()

    assert [len(b) for b in writer.batches] == [100, 100, 50]
    written = [unit for batch in writer.batches for unit in batch]
    assert written == [f"m v={mid}i {mid}" for mid in range(1, 251)]
    assert [len(a) for a in acks] == [100, 100, 50]
    assert [mid for batch in acks for mid, _ in batch] == list(range(1, 251))


def test_what_is_left_behind_goes_at_once_not_after_max_delay(tmp_path: Path) -> None:
    delivery, writer, _acks, _ = _delivery(tmp_path, max_messages=10, max_delay_s=5.0)
    generation = delivery.generation
    for mid in range(1, 26):  # 2.5 batches; the queue's own flush_now wakes the first step
        delivery.queue(Pending("m v=1i 1", mid, 1, generation))

    done = threading.Event()

    def three_steps() -> None:
        for _ in range(3):
            delivery.step()
        done.set()

    thread = threading.Thread(target=three_steps, daemon=True)
    thread.start()
    # Each step would wait up to max_delay_s (5 s) for a batch to fill: a backlog must not.
    assert done.wait(2.0), "a step waited for a batch while messages were left behind"
    assert [len(b) for b in writer.batches] == [10, 10, 5]


def test_a_failed_write_puts_its_batch_back_first_in_line(tmp_path: Path) -> None:
    delivery, writer, acks, _ = _delivery(tmp_path, max_messages=3)
    generation = delivery.generation
    for mid in range(1, 8):
        delivery.queue(Pending(f"m v={mid}i {mid}", mid, 1, generation))

    writer.failing = True
    try:
        delivery.step()
    except OSError:
        pass
    else:
        raise AssertionError("the write's error must reach the writer loop")
    writer.failing = False
    for _ in range(3):
        delivery.step()

    assert [mid for batch in acks for mid, _ in batch] == list(range(1, 8))
    assert [len(b) for b in writer.batches] == [3, 3, 1]
