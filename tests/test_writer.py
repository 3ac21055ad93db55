"""The durable-write path: InfluxDB (real), retries, the disk spool, draining."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from time import time as wall_time

import pytest

from collector.influx import (
    InfluxBatchTooLarge,
    InfluxUnavailable,
    InfluxV1Client,
    WriteResult,
)
from collector.line_protocol import Point, encode_many
from collector.spool import Spool
from collector.writer import InfluxWriter
from tests.support.influx import InfluxServer

T = 1_758_312_245_000_000_000


def _lines(n: int, *, site: str = "hp-01", start: int = 0, value: float = 1.0) -> str:
    points = [
        Point.make("power", {"site": site, "device": "ups1"}, {"load_pct": value}, T + i)
        for i in range(start, start + n)
    ]
    return encode_many(points)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeClient:
    """Fails while ``down``; otherwise records what it was sent."""

    def __init__(self, *, down: bool = False, max_lines: int | None = None) -> None:
        self.down = down
        self.max_lines = max_lines
        self.calls = 0
        self.received: list[str] = []

    def ping(self) -> bool:
        return not self.down

    def write(self, lines: str) -> WriteResult:
        self.calls += 1
        if self.down:
            raise InfluxUnavailable("connection refused")
        if self.max_lines is not None and lines.count("\n") + 1 > self.max_lines:
            raise InfluxBatchTooLarge("413")
        self.received.extend(lines.split("\n"))
        return WriteResult(ok=True)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.sqlite") as spool:
        yield spool


@pytest.fixture
def client(influxdb: InfluxServer, influx_db: str) -> Iterator[InfluxV1Client]:
    with InfluxV1Client(influxdb.url, influx_db, timeout_s=5.0) as client:
        yield client


def _count(client: InfluxV1Client, measurement: str = "power") -> int:
    rows = client.query(f"SELECT count(*) FROM {measurement}")
    return int(rows[0]["count_load_pct"]) if rows else 0


# --- against the real InfluxDB --------------------------------------------------------


@pytest.mark.influx
def test_written(client: InfluxV1Client, spool: Spool) -> None:
    writer = InfluxWriter(client, spool)
    outcome = writer.write_durably(_lines(50))
    assert (outcome.status, outcome.lines, outcome.written_points) == ("written", 50, 50)
    assert not outcome.spooled and outcome.attempts == 1
    assert _count(client) == 50
    assert spool.depth() == 0
    assert writer.counters.written_points == 50


@pytest.mark.influx
def test_unavailable_is_spooled_then_drained_once(
    influxdb: InfluxServer, client: InfluxV1Client, spool: Spool
) -> None:
    time = FakeTime()
    nowhere = InfluxV1Client(f"http://127.0.0.1:{_unused_port()}", "nowhere", timeout_s=1.0)
    cut_off = InfluxWriter(nowhere, spool, sleep=time.sleep, clock=time.clock)

    first = cut_off.write_durably(_lines(10))
    assert first.status == "spooled" and first.attempts == 3
    assert first.error and "127.0.0.1" in first.error  # the transport error, for the log
    assert len(time.sleeps) == 2 and all(0.1 <= s <= 0.4 for s in time.sleeps)
    # InfluxDB is known down: the next batch goes to the spool at once, no waiting.
    second = cut_off.write_durably(_lines(10, start=10))
    assert (second.status, second.attempts, len(time.sleeps)) == ("spooled", 0, 2)
    assert (spool.depth(), spool.lines_count()) == (2, 20)
    assert cut_off.counters.spooled_batches == 2 and cut_off.counters.spooled_points == 20

    # A drain while down and before the probe time does not even try.
    assert cut_off.drain_spool() == 0

    back = InfluxWriter(client, spool)
    assert back.drain_spool(max_batches=1) == 1  # oldest first, bounded
    assert spool.depth() == 1
    assert back.drain_spool() == 1
    assert back.drain_spool() == 0
    assert spool.depth() == 0 and back.counters.drained_batches == 2
    assert _count(client) == 20

    # A drain that crashed after the write but before the remove sends it again:
    # same series and timestamps, so still 20 points.
    spool.put(_lines(10))
    assert back.drain_spool() == 1
    assert _count(client) == 20


@pytest.mark.influx
def test_type_conflict_is_a_recorded_partial_write(client: InfluxV1Client, spool: Spool) -> None:
    writer = InfluxWriter(client, spool)
    assert writer.write_durably(_lines(1)).status == "written"  # load_pct is now a float
    conflicting = Point.make("power", {"site": "hp-01", "device": "ups2"}, {"load_pct": 7}, T + 99)
    batch = "\n".join([_lines(3, start=1), encode_many([conflicting]), _lines(2, start=4)])

    outcome = writer.write_durably(batch)
    assert (outcome.status, outcome.lines, outcome.refused_points) == ("partial", 6, 1)
    assert outcome.written_points == 5 and outcome.attempts == 1  # not retried
    assert outcome.error and "field type conflict" in outcome.error
    assert _count(client) == 6  # the first line and the five good ones
    assert spool.depth() == 0  # a refusal is not spooled: it would be refused again
    assert writer.counters.refused_points == 1
    # Traced to the line, with InfluxDB's own reason.
    assert [r.unit for r in outcome.refusals] == [3]
    assert "field type conflict" in outcome.refusals[0].error


@pytest.mark.influx
def test_a_partial_write_is_traced_to_the_messages_behind_it(
    client: InfluxV1Client, spool: Spool
) -> None:
    writer = InfluxWriter(client, spool)
    assert writer.write_durably(_lines(1)).status == "written"  # load_pct is now a float
    conflicting = Point.make("power", {"site": "hp-01", "device": "ups2"}, {"load_pct": 7}, T + 99)
    units = [_lines(2, start=1), "", _lines(2, start=3) + "\n" + encode_many([conflicting])]
    units += [_lines(1, start=10 + i) for i in range(20)]
    units.append("power,site=x load_pct= 1")  # unparsable

    outcome = writer.write_durably(units)
    assert outcome.status == "partial"
    assert [r.unit for r in outcome.refusals] == [2, 23]  # a message's unit, never the others
    assert "field type conflict" in outcome.refusals[0].error
    assert "unable to parse" in outcome.refusals[1].error
    assert _count(client) == 1 + 4 + 20  # every good line of every unit is stored


def test_tracing_is_bounded_and_names_every_unit_it_could_not_clear(spool: Spool) -> None:
    class RefusesAll(FakeClient):
        def write(self, lines: str) -> WriteResult:
            self.calls += 1
            return WriteResult(ok=False, partial=True, refused=1, error="type conflict")

    influx = RefusesAll()
    writer = InfluxWriter(influx, spool, isolate_budget=8)
    outcome = writer.write_durably([_lines(1, start=i) for i in range(100)])
    assert influx.calls <= 1 + 8  # the batch, then the budget
    assert [r.unit for r in outcome.refusals] == list(range(100))  # over-named, never lost


@pytest.mark.influx
def test_unparsable_line_is_refused_and_the_rest_kept(client: InfluxV1Client, spool: Spool) -> None:
    writer = InfluxWriter(client, spool)
    batch = "\n".join([_lines(2), "power,site=x load_pct= 1", _lines(2, start=2)])
    outcome = writer.write_durably(batch)
    assert (outcome.status, outcome.refused_points) == ("partial", 1)
    assert outcome.error and "unable to parse" in outcome.error
    assert _count(client) == 4


@pytest.mark.influx
def test_partial_write_while_draining_is_recorded_and_removed(
    client: InfluxV1Client, spool: Spool
) -> None:
    writer = InfluxWriter(client, spool)
    writer.write_durably(_lines(1))
    bad = _lines(1, start=2).replace("=1.0", "=1i")
    spool.put(_lines(1, start=1) + "\n" + bad)
    kept: list[tuple[str, str]] = []
    assert writer.drain_spool(refused=kept.extend) == 1
    assert spool.depth() == 0
    assert writer.counters.refused_points == 1
    assert _count(client) == 2
    assert [line for line, _ in kept] == [bad] and "field type conflict" in kept[0][1]

    # Refused lines that cannot be kept leave the batch in the spool.
    spool.put(bad)

    def full_disk(_: list[tuple[str, str]]) -> None:
        raise OSError("No space left on device")

    with pytest.raises(OSError):
        writer.drain_spool(refused=full_disk)
    assert spool.depth() == 1


@pytest.mark.influx
def test_duplicates_are_stored_once(client: InfluxV1Client, spool: Spool) -> None:
    writer = InfluxWriter(client, spool)
    for _ in range(3):
        assert writer.write_durably(_lines(5)).status == "written"
    assert _count(client) == 5
    # Same series and time with another value: still one point, the last value.
    writer.write_durably(_lines(1, value=2.5))
    rows = client.query(f"SELECT load_pct FROM power WHERE time = {T}")
    assert [row["load_pct"] for row in rows] == [2.5]
    assert _count(client) == 5


@pytest.mark.influx
def test_client_query_merges_tags_and_rejects_bad_influxql(client: InfluxV1Client) -> None:
    client.create_database()  # idempotent
    assert client.ping()
    assert client.write(_lines(2)).ok
    rows = client.query("SELECT load_pct FROM power GROUP BY *")
    assert [(r["time"], r["site"], r["device"], r["load_pct"]) for r in rows] == [
        (T, "hp-01", "ups1", 1.0),
        (T + 1, "hp-01", "ups1", 1.0),
    ]
    with pytest.raises(Exception, match="error parsing query"):
        client.query("SELEC nothing")


@pytest.mark.influx
def test_missing_database_is_created_on_write(influxdb: InfluxServer) -> None:
    name = influxdb.fresh_database("gone")
    influxdb.drop_database(name)  # as if InfluxDB was reinstalled under the collector
    with InfluxV1Client(influxdb.url, name, create_missing_database=False) as strict:
        with pytest.raises(InfluxUnavailable) as caught:
            strict.write(_lines(1))
        assert caught.value.status == 404
    with InfluxV1Client(influxdb.url, name) as client:
        assert client.write(_lines(3)).ok
        assert _count(client) == 3
    influxdb.drop_database(name)


def test_client_repr_hides_the_password() -> None:
    client = InfluxV1Client("http://127.0.0.1:1", "db", username="u", password="hunter2")
    assert "hunter2" not in repr(client) and "<secret>" in repr(client)
    client.close()


def test_unreachable_server_raises_unavailable() -> None:
    with InfluxV1Client(f"http://127.0.0.1:{_unused_port()}", "db", timeout_s=1.0) as client:
        assert not client.ping()
        with pytest.raises(InfluxUnavailable):
            client.write(_lines(1))


# --- retry policy, with a fake client and clock ---------------------------------------


def test_retries_stop_within_the_time_budget(spool: Spool) -> None:
    time = FakeTime()
    writer = InfluxWriter(
        FakeClient(down=True),
        spool,
        attempts=10,
        base_delay_s=0.2,
        max_delay_s=1.0,
        budget_s=2.0,
        sleep=time.sleep,
        clock=time.clock,
    )
    outcome = writer.write_durably(_lines(3))
    assert outcome.spooled
    assert sum(time.sleeps) <= 2.0
    assert outcome.attempts == len(time.sleeps) + 1 < 10
    for retry, slept in enumerate(time.sleeps, start=1):
        ceiling = min(1.0, 0.2 * 2 ** (retry - 1))
        assert ceiling / 2 <= slept <= ceiling  # exponential, capped, jittered
    assert len(set(time.sleeps)) > 1


def test_outage_sends_to_spool_until_a_probe_succeeds(spool: Spool) -> None:
    time = FakeTime()
    influx = FakeClient(down=True)
    writer = InfluxWriter(influx, spool, probe_interval_s=5.0, sleep=time.sleep, clock=time.clock)
    assert writer.down_since is None
    before = wall_time()
    writer.write_durably(_lines(1))
    assert writer.influx_down and influx.calls == 3
    down_since = writer.down_since  # /healthz and the board say since when
    assert down_since is not None and before <= down_since <= wall_time()
    writer.write_durably(_lines(1, start=1))
    assert influx.calls == 3  # no attempt during the outage
    time.now += 5.0
    writer.write_durably(_lines(1, start=2))
    assert influx.calls == 4  # one probe, no retries
    assert writer.down_since == down_since  # the same outage: the same start
    influx.down = False
    time.now += 5.0
    assert writer.write_durably(_lines(1, start=3)).status == "written"
    assert not writer.influx_down and writer.down_since is None
    assert writer.drain_spool() == 3
    assert len(influx.received) == 4


def test_a_steady_stream_of_batches_does_not_put_off_the_next_try(spool: Spool) -> None:
    """Under traffic a batch comes every second: each spooled without trying must leave
    the next try where the failure put it, or InfluxDB back is never tried again (it was
    not, 15 s after its return, with a batch every second)."""
    time = FakeTime()
    influx = FakeClient(down=True)
    writer = InfluxWriter(influx, spool, probe_interval_s=5.0, sleep=time.sleep, clock=time.clock)
    writer.write_durably(_lines(1))
    failed_at, tried = time.now, influx.calls
    for second in range(1, 5):
        time.now = failed_at + second
        assert writer.write_durably(_lines(1, start=second)).spooled
    assert influx.calls == tried  # none tried within the probe interval
    influx.down = False
    time.now = failed_at + 5.0
    assert writer.write_durably(_lines(1, start=5)).status == "written"
    assert writer.drain_spool() == 5


def test_batch_too_large_is_sent_in_halves(spool: Spool) -> None:
    influx = FakeClient(max_lines=3)
    writer = InfluxWriter(influx, spool)
    batch = _lines(10)
    outcome = writer.write_durably(batch)
    assert (outcome.status, outcome.written_points) == ("written", 10)
    assert sorted(influx.received) == sorted(batch.split("\n"))


def test_empty_batch_is_a_no_op(spool: Spool) -> None:
    influx = FakeClient()
    outcome = InfluxWriter(influx, spool).write_durably("")
    assert (outcome.status, outcome.lines, influx.calls) == ("written", 0, 0)


# --- the spool ----------------------------------------------------------------------


def test_spool_is_fifo_and_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(path) as spool:
        spool.put(_lines(2))
        spool.put(_lines(3, start=2))
        spool.put("")  # nothing to keep
        assert (spool.depth(), spool.lines_count()) == (2, 5)
    with Spool(path) as spool:
        assert (spool.depth(), spool.lines_count()) == (2, 5)
        oldest = spool.peek_oldest()
        assert oldest is not None and oldest[1] == _lines(2)
        spool.remove(oldest[0])
        spool.remove(oldest[0])  # removing twice is harmless
        assert spool.peek_oldest() == (oldest[0] + 1, _lines(3, start=2))
        assert spool.size_bytes() == len(_lines(3, start=2).encode())


def test_spool_drops_oldest_beyond_its_bound_and_remembers(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    batch = _lines(4)
    with Spool(path, max_bytes=len(batch.encode()) * 3) as spool:
        for _ in range(5):
            spool.put(batch)
        assert spool.depth() == 3
        assert (spool.dropped_total, spool.dropped_lines_total) == (2, 8)
        oldest = spool.peek_oldest()
        assert oldest is not None and oldest[0] == 3
    with Spool(path, max_bytes=10) as spool:
        spool.put(batch)  # larger than the bound alone: kept, everything older dropped
        assert (spool.depth(), spool.dropped_total, spool.dropped_lines_total) == (1, 5, 20)


def test_spool_is_thread_safe(spool: Spool) -> None:
    def fill(site: str) -> None:
        for i in range(100):
            spool.put(_lines(1, site=site, start=i))

    threads = [threading.Thread(target=fill, args=(f"s{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    drained = 0
    while any(t.is_alive() for t in threads) or spool.depth():
        oldest = spool.peek_oldest()
        if oldest is not None:
            spool.remove(oldest[0])
            drained += 1
    for thread in threads:
        thread.join()
    assert drained == 200 and spool.depth() == 0 and spool.lines_count() == 0
