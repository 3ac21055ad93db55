"""Lines InfluxDB would refuse for its retention policy are taken out before a write, once
InfluxDB has refused one: a box whose clock is months behind costs one request a batch,
not a tracing of every batch (real InfluxDB 1.6, the shipped 35-day policy)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.influx import InfluxQueryError, InfluxV1Client, WriteResult, go_duration_s
from collector.line_protocol import Point, encode_many
from collector.retention_floor import RetentionFloor
from collector.spool import Spool
from collector.writer import InfluxWriter
from tests.support.influx import InfluxServer

DAY = 86_400
NOW_S = time.time()
NOW = int(NOW_S) * 10**9
OLD = NOW - 180 * DAY * 10**9  # a spare's clock, half a year behind


def _unit(site: int, stamp: int) -> str:
    """One report's lines: 3 devices of a site, all at the report's time."""
    points = [
        Point.make("power", {"site": f"s{site}", "device": f"ups{d}"}, {"load_pct": 1.0}, stamp)
        for d in range(3)
    ]
    return encode_many(points)


def _batch(n: int, old: set[int], second: int = 0) -> list[str]:
    """``n`` reports, those in ``old`` from the spares, the others ``second`` s before NOW."""
    young = NOW - second * 10**9
    return [_unit(i, OLD if i in old else young - i * 10**6) for i in range(n)]


class Counting(InfluxV1Client):
    """The real client, counting its write requests."""

    writes = 0

    def write(self, lines: str) -> WriteResult:
        self.writes += 1
        return super().write(lines)


@pytest.fixture
def client(influxdb: InfluxServer, influx_db: str) -> Iterator[Counting]:
    client = Counting(influxdb.url, influx_db, timeout_s=30.0)
    client.write(_unit(0, NOW))  # the database exists
    client.query(f'ALTER RETENTION POLICY "autogen" ON "{influx_db}" DURATION 35d DEFAULT')
    client.writes = 0
    yield client
    client.close()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.sqlite") as spool:
        yield spool


def _stored(client: InfluxV1Client) -> int:
    rows = client.query("SELECT count(load_pct) FROM power")
    return int(rows[0]["count"]) if rows else 0


@pytest.mark.influx
def test_once_refused_for_retention_the_old_lines_are_taken_out_before_each_write(
    client: Counting, spool: Spool
) -> None:
    writer = InfluxWriter(client, spool, retention=RetentionFloor(client.retention_s))
    first = writer.write_durably(_batch(1_000, {500}))  # traced, as before: then it knows
    assert [r.unit for r in first.refusals] == [500]
    assert client.writes > 10  # halves written again to find it

    for second, old in enumerate(({3}, {7, 300, 999}, set(range(0, 1_000, 50))), 1):
        client.writes = 0  # 1, 3, then 20 old boxes
        outcome = writer.write_durably(_batch(1_000, old, second))
        assert client.writes == 1  # one request for the batch
        assert [r.unit for r in outcome.refusals] == sorted(old)  # those, never the others
        assert all("points beyond retention policy" in r.error for r in outcome.refusals)
        assert outcome.status == "partial" and outcome.refused_points == 3 * len(old)
    assert _stored(client) == 4 * 3 * 1_000 - 3 * (1 + 1 + 3 + 20)  # every young line


@pytest.mark.influx
def test_without_the_floor_twenty_old_boxes_exhaust_the_tracing(
    client: Counting, spool: Spool
) -> None:
    """What it replaces: each batch traced again, and past the budget over-named."""
    writer = InfluxWriter(client, spool)
    outcome = writer.write_durably(_batch(1_000, set(range(0, 1_000, 50))))
    assert client.writes == 1 + 64
    assert len(outcome.refusals) > 100  # young messages kept as refused, InfluxDB kept them


@pytest.mark.influx
def test_the_policy_s_duration_as_influxdb_says_it(influxdb: InfluxServer, influx_db: str) -> None:
    with InfluxV1Client(influxdb.url, influx_db) as client:
        client.write(_unit(0, NOW))
        assert client.retention_s() is None  # autogen: for ever
        client.query(f'CREATE RETENTION POLICY "raw" ON "{influx_db}" DURATION 35d REPLICATION 1')
        assert client.retention_s() is None  # not the default: not written to
    with InfluxV1Client(influxdb.url, influx_db, retention_policy="raw") as named:
        assert named.retention_s() == 35 * DAY
    with InfluxV1Client(influxdb.url, influx_db, retention_policy="nothing") as missing:
        assert missing.retention_s() is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("840h0m0s", 840 * 3600.0),
        ("24h0m0s", 86_400.0),
        ("1h30m0s", 5_400.0),
        ("0s", 0.0),
        ("90m", 5_400.0),
        ("1.5s", 1.5),
        ("", None),
        ("35d", None),  # not how InfluxDB prints one
        ("h", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert go_duration_s(text) == seconds


class Asked:
    """A policy's duration, counting how often it was asked."""

    def __init__(self, days: float = 35.0) -> None:
        self.times = 0
        self.days = days

    def __call__(self) -> float:
        self.times += 1
        return self.days * DAY


class Clock:
    def __init__(self) -> None:
        self.now = NOW_S

    def __call__(self) -> float:
        return self.now


REFUSED = "partial write: points beyond retention policy dropped=3"


def test_not_armed_it_takes_nothing_and_asks_nothing() -> None:
    asked = Asked()
    floor = RetentionFloor(asked)
    units = _batch(10, {2})
    floor.saw(None)
    floor.saw("partial write: field type conflict")
    assert floor.take(units).units is units and asked.times == 0


def test_armed_for_an_hour_from_the_last_refusal_asking_once() -> None:
    clock, asked = Clock(), Asked()
    floor = RetentionFloor(asked, clock=clock)
    floor.saw(REFUSED)
    clock.now += 3_000
    floor.saw(REFUSED)  # renewed, not asked again
    clock.now += 3_000
    assert floor.take(_batch(10, {2})).refused == (2,)
    clock.now += 3_601
    assert floor.take(_batch(10, {2})).refused == ()  # an hour without one: off
    floor.saw(REFUSED)
    assert asked.times == 2  # asked again once it had lapsed (the policy may have changed)


def test_the_margin_refuses_a_little_early_and_only_the_old_lines_of_a_unit() -> None:
    clock = Clock()
    floor = RetentionFloor(lambda: 35.0 * DAY, clock=clock, margin_s=60)
    floor.saw(REFUSED)
    edge = int((NOW_S - 35 * DAY) * 1e9)
    mixed = "\n".join([_unit(1, edge + 30 * 10**9), _unit(1, edge + 90 * 10**9)])
    taken = floor.take(["", mixed, "power,site=x load_pct=1", _unit(2, NOW)])
    assert taken.refused == (1,) and taken.lines == 3  # inside the margin: refused, kept
    assert taken.units[1] == _unit(1, edge + 90 * 10**9)  # its young lines are written
    assert taken.units[2:] == ["power,site=x load_pct=1", _unit(2, NOW)]  # no stamp: InfluxDB's


def test_a_duration_it_cannot_read_leaves_it_off_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreadable() -> float | None:
        raise InfluxQueryError("error authorizing query: collector not authorized")

    clock, asked = Clock(), Asked()
    floor = RetentionFloor(unreadable, clock=clock)
    with caplog.at_level(logging.WARNING):
        floor.saw(REFUSED)
        floor.saw(REFUSED)
    assert floor.floor_ns() is None
    assert caplog.text.count("could not be read") == 1 and "GRANT ALL" in caplog.text
    floor._duration_s = asked  # readable again (the grant given): asked an hour later
    floor.saw(REFUSED)
    assert asked.times == 0  # not a query per batch meanwhile
    clock.now += 3_601
    floor.saw(REFUSED)
    assert asked.times == 1 and floor.floor_ns() is not None


def test_a_policy_that_keeps_for_ever_arms_nothing() -> None:
    floor = RetentionFloor(lambda: None)
    floor.saw(REFUSED)
    assert floor.floor_ns() is None


def test_an_answer_not_foreseen_leaves_it_off_and_never_fails_the_write() -> None:
    def broken() -> float | None:
        raise KeyError("duration")

    floor = RetentionFloor(broken)
    floor.saw(REFUSED)  # does not raise: the writer's batch goes on
    assert floor.floor_ns() is None
