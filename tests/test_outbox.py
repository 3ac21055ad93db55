"""The outbox as a transaction: add, take, ack or leave; bounded; durable across a kill -9."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.outbox import Outbox


def test_fifo_take_and_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    ids = [box.add("t", f"m{i}".encode()) for i in range(5)]
    taken = box.take(3)
    assert [e.payload for e in taken] == [b"m0", b"m1", b"m2"]
    box.ack([taken[0].id, taken[2].id])  # m1 not acknowledged: it stays, in order
    assert [e.payload for e in box.take(10)] == [b"m1", b"m3", b"m4"]
    assert box.depth() == 3
    assert box.last_id() == ids[-1]


def test_fresh_messages_ride_ahead_of_the_backlog_which_drains_oldest_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(6):
        box.add("t", f"old{i}".encode())
    backlog_end = box.last_id()
    box.add("t", b"fresh0")
    first = box.take(3, fresh_after=backlog_end)
    assert [e.payload for e in first] == [b"fresh0", b"old0", b"old1"]
    box.ack(e.id for e in first)
    assert [e.payload for e in box.take(3, fresh_after=backlog_end)] == [b"old2", b"old3", b"old4"]


def test_sequence_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    assert [box.reserve_seq() for _ in range(3)] == [0, 1, 2]
    box.close()
    assert Outbox(path).reserve_seq() == 3


def test_bounded_by_bytes_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1_000)
    for i in range(10):
        box.add("t", bytes([i]) * 300)
    kept = [e.payload[0] for e in box.take(100)]
    assert kept == [7, 8, 9]
    assert box.dropped_total() == 7


def test_bounded_by_age(tmp_path: Path) -> None:
    now = [1_000_000.0]
    box = Outbox(tmp_path / "o.sqlite", max_age_s=3600, clock=lambda: now[0])
    box.add("t", b"old")
    now[0] += 3601
    box.add("t", b"new")
    assert [e.payload for e in box.take(10)] == [b"new"]
    assert box.dropped_total() == 1


def test_added_message_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = (
        "import os, sys; from pathlib import Path; from agent.outbox import Outbox\n"
        f"box = Outbox(Path({str(path)!r}))\n"
        "for i in range(50): box.add('t', str(i).encode())\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert proc.returncode == -9
    assert [e.payload for e in Outbox(path).take(100)] == [str(i).encode() for i in range(50)]
