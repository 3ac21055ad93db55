"""The outbox as a transaction: add, take, ack or leave; bounded; durable across a kill -9;
and when its disk fails it: a corrupt file, a full disk (a real one)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import SiteConfig
from agent.outbox import Outbox
from agent.runner import Agent
from contract.wire import Report
from tests.support.disk import fill, small_tmpfs

T0 = datetime(2026, 9, 7, 3, 15, 0, tzinfo=UTC).timestamp()  # Typhoon Yagi's landfall
S0 = int(T0)  # the first number of an outbox made at T0
F0 = S0 - 86_400  # the first of one made a day before (_filled)


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
    box = Outbox(path, clock=lambda: T0)
    assert [box.reserve_seq() for _ in range(3)] == [S0, S0 + 1, S0 + 2]
    box.close()
    assert Outbox(path, clock=lambda: T0 + 3600).reserve_seq() == S0 + 3  # not the clock


@pytest.mark.parametrize(
    ("clock", "first"),
    [
        (T0, S0),  # a new box, its clock right
        (T0 - 3 * 3600, S0 - 3 * 3600),  # its clock 3 h behind: still above any old count
        (T0 + 0.999, S0),  # whole seconds
        (-5.0, 0),  # a clock before 1970 (no RTC, set by hand): from 0, never negative
    ],
)
def test_a_new_outbox_numbers_from_the_clock(clock: float, first: int, tmp_path: Path) -> None:
    """Not from 0: a box that replaces another (or whose outbox was deleted) numbers above
    the old outbox's last report, so the collector tells its clock stepped back from a
    replay (rules/snapshot.py)."""
    box = Outbox(tmp_path / "o.sqlite", clock=lambda: clock)
    assert [box.reserve_seq() for _ in range(2)] == [first, first + 1]


def test_a_replaced_box_numbers_above_the_old_one_with_its_clock_hours_behind(
    tmp_path: Path,
) -> None:
    """The old box reported every 10 s for a day; the new one's clock is 3 h behind."""
    old = Outbox(tmp_path / "old.sqlite", clock=lambda: T0 - 86_400)
    last_old = max(old.reserve_seq() for _ in range(8_640))
    new = Outbox(tmp_path / "new.sqlite", clock=lambda: T0 - 3 * 3600)
    assert new.reserve_seq() > last_old


def test_an_outbox_keeps_its_id_and_another_has_another(tmp_path: Path) -> None:
    """The id says whose numbering a report's seq is in (``Report.outbox``): the same for
    the life of the file, another for another file (a box replaced, a file deleted)."""
    box = Outbox(tmp_path / "o.sqlite")
    mine = box.outbox_id()
    box.close()
    assert Outbox(tmp_path / "o.sqlite").outbox_id() == mine
    others = {Outbox(tmp_path / f"other{n}.sqlite").outbox_id() for n in range(20)}
    assert mine not in others and len(others) == 20
    assert all(0 <= i <= 2**53 for i in others)  # what the wire accepts


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


# --- a corrupt file ---------------------------------------------------------------------


def _report(seq: int) -> bytes:
    return json.dumps({"kind": "report", "seq": seq, "pad": "x" * 1200}).encode()


def _seqs(box: Outbox) -> list[int]:
    return [json.loads(e.payload)["seq"] for e in box.take(1_000_000)]


FILLED_ID = 12_345  # the id of the outboxes _filled makes


def _filled(path: Path, n: int) -> None:
    """An outbox made a day before T0, with ``n`` reports of seq F0..F0+n-1, all of it in
    the main file, closed; its id FILLED_ID."""
    box = Outbox(path, clock=lambda: T0 - 86_400, reserve_bytes=0)
    box._db.execute("UPDATE counters SET value = ? WHERE name = 'outbox_id'", (FILLED_ID,))
    for _ in range(n):
        box.add("t", _report(box.reserve_seq()))
    box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box.close()


def _damage(path: Path, at: int, size: int) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        f.write(bytes(range(256)) * (size // 256))


def _aside(path: Path) -> list[Path]:
    return sorted(
        f
        for f in path.parent.glob(f"{path.name}.corrupt-*")
        if not f.name.endswith(("-wal", "-shm"))
    )


def test_a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.sqlite"
    _filled(path, 50)
    _damage(path, 0, 1024)  # the header: SQLite says "file is not a database"
    with pytest.raises(sqlite3.DatabaseError):  # as the agent met it before
        sqlite3.connect(path).execute("PRAGMA journal_mode=WAL")

    box = Outbox(path, clock=lambda: T0, reserve_bytes=0)

    assert box.outbox_id() != FILLED_ID  # a numbering of its own: the old one is lost
    assert _aside(path) == [tmp_path / "o.sqlite.corrupt-20260907T031500Z"]
    assert box.resets_total() == 1
    assert box.depth() == 0  # nothing in it could be read
    # The old counter is unreadable: sequence numbers go on from the clock, above F0..F0+49.
    assert box.reserve_seq() == S0
    box.add("t", b"after")
    assert [e.payload for e in box.take(10)] == [b"after"]
    assert "OUTBOX FILE CORRUPT" in caplog.text and "corrupt-20260907T031500Z" in caplog.text


def test_a_damaged_page_loses_only_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    _filled(path, 500)
    old = Outbox(path)
    last_id, numbering = old.last_id(), old.outbox_id()
    old.close()
    size = path.stat().st_size
    _damage(path, size // 2 // 4096 * 4096, 3 * 4096)  # three pages in the middle

    box = Outbox(path, clock=lambda: T0, reserve_bytes=0)

    kept = _seqs(box)
    assert box.resets_total() == 1 and len(_aside(path)) == 1
    assert kept[:3] == [F0, F0 + 1, F0 + 2] and kept[-3:] == [F0 + 497, F0 + 498, F0 + 499]
    assert 470 <= len(kept) < 500 and kept == sorted(kept)
    assert box.reserve_seq() == F0 + 500  # the counter was readable: no gap, no reuse
    assert box.outbox_id() == numbering  # and the numbering goes on under its id
    assert box.add("t", b"new") > last_id  # ids go on: an old id never names a new message


def test_corruption_met_while_running_replaces_the_file_then(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, clock=lambda: T0, reserve_bytes=0)
    for _ in range(400):
        box.add("t", _report(box.reserve_seq()))
    box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box._db.execute("PRAGMA cache_size=1")  # read pages from the disk, as a busy box does
    _damage(path, path.stat().st_size // 2 // 4096 * 4096, 3 * 4096)

    kept = _seqs(box)  # the damage met: the file replaced, and the call answered
    assert box.resets_total() == 1 and len(_aside(path)) == 1
    assert 370 <= len(kept) < 400 and kept[0] == S0 and kept[-1] == S0 + 399
    assert box.reserve_seq() == S0 + 400
    box.add("t", b"after")
    assert box.depth() == len(kept) + 1


def test_each_replacement_is_counted_even_when_no_counter_survives(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    now = [T0]
    for expected in (1, 2, 3):
        _filled(path, 3)
        _damage(path, 0, 1024)
        box = Outbox(path, clock=lambda: now[0], reserve_bytes=0)
        assert box.resets_total() == expected
        box.close()
        now[0] += 1
    assert len(_aside(path)) == 3


def test_the_agent_starts_on_a_corrupt_outbox_and_reports_the_reset(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    _filled(path, 5)
    _damage(path, 0, 1024)
    config = SiteConfig.model_validate(
        {
            "site": "hp-bts-151",
            "province": "hp",
            "kind": "station",
            "name": "Trạm 151",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "outbox": {"path": str(path)},
            "disk_path": str(tmp_path),
        }
    )
    agent = Agent(config)
    asyncio.run(agent.poll_and_store())
    (entry,) = agent.outbox.take(10)
    report = Report.model_validate_json(entry.payload)
    assert report.host is not None and report.host.outbox_resets_total == 1
    assert report.seq > F0 + 5
    assert report.outbox == agent.outbox.outbox_id() != FILLED_ID  # a new numbering, said


# --- a full disk (a real one: a small tmpfs, mounted as root) -----------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of its own."""
    with small_tmpfs(tmp_path, "2m") as mount:
        yield mount


def _free(disk: Path) -> int:
    stat = os.statvfs(disk)
    return stat.f_bavail * stat.f_frsize


def test_on_a_disk_filled_by_another_program_the_newest_are_kept_and_the_oldest_dropped(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(small_disk / "o.sqlite", clock=lambda: T0, reserve_bytes=256 * 1024)
    for _ in range(300):
        box.add("t", _report(box.reserve_seq()))
    fill(small_disk)
    assert _free(small_disk) == 0

    for n in range(300, 1300):  # the link is down: reports keep coming, the disk stays full
        assert box.reserve_seq() == S0 + n
        box.add("t", _report(S0 + n))
        if n % 250 == 0:
            fill(small_disk)  # it takes whatever the outbox gives back

    kept = _seqs(box)
    assert kept[-1] == S0 + 1299 and kept == list(range(kept[0], S0 + 1300)), "newest, no gap"
    assert box.dropped_total() == kept[0] - S0 > 0, "what went is the oldest, and it is counted"
    assert "DISK FULL" in caplog.text
    box.ack(e.id for e in box.take(10))  # the link comes back: acks go through on a full disk
    assert box.depth() == len(kept) - 10

    (small_disk / "filler").unlink()
    box.add("t", _report(S0 + 1300))
    assert (small_disk / "o.sqlite.reserve").stat().st_size == 256 * 1024  # made again


def test_an_outbox_that_fills_its_disk_keeps_the_newest(small_disk: Path) -> None:
    box = Outbox(small_disk / "o.sqlite", clock=lambda: T0, reserve_bytes=256 * 1024)
    for _ in range(3000):  # ~4 MiB of reports for a 2 MiB disk
        box.add("t", _report(box.reserve_seq()))
    kept = _seqs(box)
    assert kept[-1] == S0 + 2999 and kept == list(range(kept[0], S0 + 3000))
    assert box.dropped_total() == kept[0] - S0 > 1500
    assert (small_disk / "o.sqlite.reserve").exists()  # never needed: the file stopped growing
