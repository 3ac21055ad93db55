"""The collector's own health as points (collector/health_points.py): figures read where
/metrics and /healthz read them, rates between two readings, the config that sets how
often (``influx.health_every_s``) refused with the key, the value and the fix; and a real
collector writing them into a real InfluxDB through its writer — what it counted, and,
InfluxDB out of reach, the points spooled and stored once it is back, at their own time."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, Counter

from collector.config import CollectorConfig
from collector.health_points import (
    LATE_AFTER_S,
    MEASUREMENT,
    HealthPoints,
    Reading,
    health_points,
    samples_of,
)
from collector.service import Collector
from collector.system_alerts import DROPS_QUIET_S, DropRun
from contract.wire import Meta, Report
from plumbing.config_errors import ConfigError, parse_yaml_model
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.support.relay import Relay
from tests.support.waiting import wait_until

T0 = datetime(2026, 9, 7, 3, 0, tzinfo=UTC)
THREADS = {"mqtt", "writer", "staleness", "api"}


def _health(
    late: Mapping[str, float] | None = None, **threads: tuple[bool, bool]
) -> dict[str, Any]:
    """A /healthz body; each loop (alive, stuck), all well unless said; ``late``: the
    provinces whose reports are read late, how many seconds behind."""
    loops = {name: (True, False) for name in THREADS} | threads
    bad = [name for name, (alive, stuck) in loops.items() if not alive or stuck]
    return {
        "ok": not bad and not late,
        "problems": [{"code": "thread_dead", "thread": name} for name in bad]
        + [{"code": "reports_late"}] * bool(late),
        "broker_connected": True,
        "reports_late": {p: {"behind_s": s, "since": T0} for p, s in (late or {}).items()},
        "influx": {"configured": True, "taking_writes": True, "spooled_batches": 0},
        "threads": {
            name: {"alive": alive, "stuck": stuck, "heartbeat_age_s": 0.5, "errors": 0}
            for name, (alive, stuck) in loops.items()
        },
    }


def _samples(
    received: float, reports: float, invalid: float, dropped: float, gc_s: float
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics as read (samples_of), for the figures the points take."""
    return {
        "kienco_messages_received_total": {(): received},
        "kienco_messages_accepted_total": {(("kind", "report"),): reports},
        "kienco_messages_rejected_total": {
            (("reason", "invalid_json"),): invalid,
            (("reason", "schema"),): 0.0,
        },
        "kienco_points_written_total": {(): 7 * reports},
        "kienco_report_lag_seconds": {(): 2.5},
        "kienco_pending_messages": {(): 120.0},
        "kienco_sites": {(): 50.0},
        "kienco_thread_errors_total": {(("thread", t),): 0.0 for t in THREADS},
        "kienco_gc_pause_seconds_sum": {(("generation", "0"),): gc_s},
        "kienco_gc_pause_max_seconds": {(("generation", "0"),): 0.004, (("generation", "2"),): 0.3},
        "kienco_broker_dropped_messages": {(("broker", "own"),): dropped},
        "kienco_broker_stored_messages": {(("broker", "own"),): 10.0},
        "kienco_broker_bridge_up": {(("broker", "hp"),): 1.0, (("broker", "qn"),): 0.0},
    }


def _by_series(points: list[Any]) -> dict[tuple[tuple[str, str], ...], Mapping[str, Any]]:
    return {p.tags: {k: v for k, v in p.fields.items() if v is not None} for p in points}


def test_a_reading_becomes_points_with_rates_against_the_one_before() -> None:
    first = Reading(T0, _samples(1000, 900, 5, 40, 0.1), _health(), {})
    run = DropRun(T0 + timedelta(seconds=5), T0 + timedelta(seconds=8), 12, 52)
    later = T0 + timedelta(seconds=10)
    health = _health({"hp": 1800.0, "qn": 95.0}, writer=(True, True))
    second = Reading(later, _samples(1400, 1300, 15, 52, 0.15), health, {"own": run})
    at_first = _by_series(health_points("a1", first, None))
    main = at_first[(("collector", "a1"),)]
    # The first reading of a process has nothing to take a rate against: no rates, no
    # drops "new", and the reasons' series have nothing to say yet.
    assert "reports_per_s" not in main and "rejected_per_s" not in main
    assert (("collector", "a1"), ("reason", "schema")) not in at_first
    points = health_points("a1", second, first)
    assert {p.measurement for p in points} == {MEASUREMENT}
    assert {p.time_ns for p in points} == {int(later.timestamp()) * 1_000_000_000}
    series = _by_series(points)
    assert series[(("collector", "a1"),)] == {
        "at_ms": int(later.timestamp() * 1000),
        "ok": 0,
        "problems": 2,
        "broker_connected": 1,
        "influx_writing": 1,
        "spooled_batches": 0,
        "loops_failing": 1,
        "provinces_late": 2,
        "late_s": 1800.0,
        "received_per_s": 40.0,
        "reports_per_s": 40.0,
        "rejected_per_s": 1.0,
        "points_per_s": 280.0,
        "lag_s": 2.5,
        "pending": 120,
        "sites": 50,
        "thread_errors_per_s": 0.0,
        "gc_pause_max_s": 0.3,
        "gc_paused_pct": pytest.approx(0.5),
        "brokers_dropping": 1,
        "broker_drops": 12,
        "bridges_down": 1,
    }
    assert series[(("collector", "a1"), ("reason", "invalid_json"))] == {"dead_letters_per_s": 1.0}
    assert series[(("collector", "a1"), ("reason", "schema"))] == {"dead_letters_per_s": 0.0}
    assert series[(("broker", "own"), ("collector", "a1"))] == {
        "dropped": 52, "stored": 10, "dropped_new": 12, "dropping": 1,
    }  # fmt: skip
    assert series[(("broker", "qn"), ("collector", "a1"))] == {
        "bridge_up": 0, "dropped_new": 0, "dropping": 0,
    }  # fmt: skip
    assert series[(("collector", "a1"), ("thread", "writer"))] == {
        "thread_ok": 0, "thread_alive": 1, "thread_stuck": 1, "heartbeat_age_s": 0.5,
        "errors_per_s": 0.0,
    }  # fmt: skip
    # Field names are never shared between kinds of series: a query grouped by collector
    # alone reads each field from the one series that has it.
    kinds: dict[str, set[str]] = {}
    for tags, fields in series.items():
        kind = ",".join(k for k, _ in tags if k != "collector") or "main"
        kinds.setdefault(kind, set()).update(fields)
    names = [name for fields in kinds.values() for name in fields]
    assert len(names) == len(set(names)), kinds


def test_a_broker_that_restarted_counts_all_its_count_as_new_and_a_quiet_run_is_over() -> None:
    first = Reading(T0, _samples(0, 0, 0, 500, 0), _health(), {})
    run = DropRun(T0, T0, 30, 530)
    much_later = T0 + timedelta(seconds=DROPS_QUIET_S + 1)
    second = Reading(much_later, _samples(0, 0, 0, 7, 0), _health(), {"own": run})
    series = _by_series(health_points("a1", second, first))
    assert series[(("broker", "own"), ("collector", "a1"))]["dropped_new"] == 7
    # The alert's run ended 15 min after its last drop: not dropping any more.
    assert series[(("broker", "own"), ("collector", "a1"))]["dropping"] == 0
    assert series[(("collector", "a1"),)]["brokers_dropping"] == 0


def test_one_reading_per_slot_whatever_the_sweeper_s_tick() -> None:
    readings: list[datetime] = []

    def health() -> dict[str, Any]:
        readings.append(T0)
        return _health()

    points = HealthPoints("a1", 10.0, registry=CollectorRegistry(), health=health, drops=dict)
    lines = [points.lines(T0 + timedelta(seconds=s / 5)) for s in range(0, 150)]  # 30 s
    assert sum(1 for text in lines if text) == 3 == len(readings)
    assert lines[0].startswith(f"{MEASUREMENT},collector=a1 ")


# --- the setting ------------------------------------------------------------------------


def test_the_default_is_every_10_s_and_named_by_the_alerts_collector_or_the_client_id() -> None:
    config = CollectorConfig()
    assert config.influx is not None and config.influx.health_every_s == 10.0
    assert config.collector_name == "kienco-collector"
    named = CollectorConfig.model_validate(
        {
            "broker": {"client_id": "kienco-collector-a1"},
            "alerts": {
                "alertmanagers": ["http://127.0.0.1:9093"],
                "external_url": "https://noc.example.vn",
                "system": {"collector": "shard-a1"},
            },
        }
    )
    assert named.collector_name == "shard-a1"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "influx: {health_every_s: 0.2}",
            "influx.health_every_s: Input should be greater than or equal to 1 (got 0.2). "
            "Fix: use a larger value",
        ),
        (
            "influx: {health_every_s: 25}",
            "influx.health_every_s: Input should be less than or equal to 20 (got 25). "
            "Fix: use a smaller value",
        ),
        (
            "influx: {health_every_s: 15}\nstatus: {sweep_s: 20}",
            "influx.health_every_s (15) + status.sweep_s (20) + batch.max_delay_s (0.25) = "
            "35.25 s: a healthy collector's health could be that old when read, and the "
            "system dashboard shows a shard whose health is 30 s old as late (60 s: lost). "
            "Fix: set influx.health_every_s below 9.75",
        ),
        (
            "status: {sweep_s: 30}",
            "= 40.25 s: a healthy collector's health could be that old when read",
        ),
        (
            'broker: {client_id: "shard-a1\\\\"}',
            "broker.client_id ('shard-a1\\\\') names this collector in InfluxDB (its health, "
            "tag collector) and cannot be written there: ends in a backslash",
        ),
        (
            "alerts: {alertmanagers: ['http://127.0.0.1:9093'], external_url: "
            '"https://noc.example.vn", system: {collector: "a\\nb"}}',
            "alerts.system.collector ('a\\nb') names this collector in InfluxDB",
        ),
    ],
)
def test_a_period_or_a_name_the_dashboard_cannot_use_stops_at_start(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_yaml_model(text, CollectorConfig, source="collector.yaml")
    assert said in str(error.value)
    assert "Fix: " in str(error.value)


def test_without_influxdb_there_is_nothing_to_write_and_nothing_to_refuse() -> None:
    config = parse_yaml_model(
        'influx: null\nbroker: {client_id: "x\\\\"}', CollectorConfig, source="c.yaml"
    )
    assert config.influx is None
    assert LATE_AFTER_S > 10.0 + 1.0 + 0.25  # the defaults never read late


# --- a real collector, a real InfluxDB ---------------------------------------------------


@pytest.fixture
def link(influxdb: InfluxServer) -> Iterator[Relay]:
    relay = Relay(int(influxdb.url.rsplit(":", 1)[1]))  # the network path to InfluxDB
    yield relay
    relay.close()


def _publish(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _rows(influxdb: InfluxServer, db: str, where: str = "") -> list[dict[str, Any]]:
    query = f'SELECT * FROM "{MEASUREMENT}" {where} GROUP BY *'
    return sorted(influxdb.query(db, query), key=lambda r: r["time"])


def test_a_collector_writes_what_it_counted_and_an_influxdb_outage_loses_none_of_it(
    tmp_path: Path, mosquitto: Broker, influxdb: InfluxServer, link: Relay
) -> None:
    db = influxdb.fresh_database("health_points")
    province = "hz"
    config = CollectorConfig.model_validate(
        {
            "broker": {"url": mosquitto.url, "username": None, "client_id": f"shard-{db}"},
            "provinces": [province],
            "influx": {
                "url": f"http://127.0.0.1:{link.port}",
                "database": db,
                "timeout_s": 1.0,
                "health_every_s": 1,
            },
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0},
            "status": {"sweep_s": 0.2},
            "batch": {"max_delay_s": 0.1},
        }
    )
    collector = Collector(config)
    collector.start()
    try:
        assert collector.wait_connected(10)
        name = f"shard-{db}"
        # The collector's own series: no reason, thread or broker tag.
        main = f"WHERE \"collector\" = '{name}' AND \"reason\" = '' AND \"thread\" = '' "
        main += "AND \"broker\" = ''"
        wait_until(lambda: _rows(influxdb, db, main), what="a first health point")
        now = datetime.now(UTC)
        site = f"{province}-bts-1"
        meta = Meta(
            site=site,
            province=province,
            site_kind="station",
            name="Trạm thử",
            interval_s=1,
            agent_version="test",
            at=now,
        )
        messages = [(f"kienco/v1/{province}/{site}/meta", meta.model_dump_json().encode())]
        topic = f"kienco/v1/{province}/{site}/report"
        for seq in range(20):
            report = Report(site=site, province=province, seq=seq, taken_at=now, interval_s=1)
            messages.append((topic, report.model_dump_json().encode()))
        messages += [(topic, b"{not json")] * 3
        _publish(mosquitto, messages)
        registry = collector.metrics.registry
        value = registry.get_sample_value
        wait_until(
            lambda: (
                value("kienco_messages_accepted_total", {"kind": "report"}) == 20
                and value("kienco_messages_rejected_total", {"reason": "invalid_json"}) == 3
            ),
            what="every message taken",
        )
        time.sleep(2.5)  # two more readings: the rates of what came
        rows = _rows(influxdb, db, main)
        assert {r["collector"] for r in rows} == {name}
        # Each rate times the time since the reading before: what /metrics counted.
        reports = sum(
            (b["reports_per_s"] or 0) * (b["time"] - a["time"]) / 1e9 for a, b in pairwise(rows)
        )
        assert reports == pytest.approx(20, abs=0.01)
        assert registry.get_sample_value("kienco_messages_accepted_total", {"kind": "report"}) == 20
        invalid = _rows(influxdb, db, "WHERE \"reason\" = 'invalid_json'")
        # A reason's rate comes from the second reading on: each over the time since the
        # collector's reading before it.
        times = [r["time"] for r in rows]
        rejected = (
            sum(
                (r["dead_letters_per_s"] or 0)
                * (r["time"] - max(t for t in times if t < r["time"]))
                for r in invalid
            )
            / 1e9
        )
        assert rejected == pytest.approx(3, abs=0.01)
        newest = rows[-1]
        assert newest["time"] // 1_000_000 == newest["at_ms"]  # its own time, for its age
        assert newest["sites"] == 1 == registry.get_sample_value("kienco_sites")
        assert newest["lag_s"] == registry.get_sample_value("kienco_report_lag_seconds")
        assert newest["ok"] == 1 and newest["loops_failing"] == 0
        assert (newest["provinces_late"], newest["late_s"]) == (0, 0)
        assert newest["influx_writing"] == 1 and newest["broker_connected"] == 1
        threads = _rows(influxdb, db, f'WHERE "thread" =~ /.+/ AND time >= {newest["time"]}')
        assert {r["thread"] for r in threads} >= THREADS
        assert all(r["thread_ok"] == 1 for r in threads)
        # InfluxDB out of reach: the readings go on, into the spool.
        link.cut()
        cut_at = datetime.now(UTC)
        wait_until(lambda: collector.writer.influx_down, what="InfluxDB found down")
        time.sleep(3)
        back_at = datetime.now(UTC)
        during = (
            f"{main} AND time > '{cut_at:%Y-%m-%dT%H:%M:%S.%fZ}' "
            f"AND time < '{back_at:%Y-%m-%dT%H:%M:%S.%fZ}'"
        )
        assert _rows(influxdb, db, during) == []  # nothing reached it meanwhile
        assert collector.spool is not None and collector.spool.depth() >= 1
        link.restore()
        arrived = wait_until(
            lambda: len(r := _rows(influxdb, db, during)) >= 3 and r,
            timeout_s=20,
            what="the outage's health points, after it",
        )
        # Stored at the time they were read, and saying what was true then.
        stamped = [datetime.fromtimestamp(r["time"] / 1e9, UTC) for r in arrived]
        assert all(cut_at <= at <= back_at for at in stamped)
        assert any(r["influx_writing"] == 0 and r["spooled_batches"] >= 1 for r in arrived)

        # None lost: a reading in every 1 s slot from the first to the newest (a slot's
        # reading comes at the sweeper's first tick in it, 0.2 s).
        def readings() -> list[float]:
            return [r["time"] / 1e9 for r in _rows(influxdb, db, main)]

        times = wait_until(
            lambda: (t := readings())[-1] > back_at.timestamp() and t, what="one after it"
        )
        assert max(b - a for a, b in pairwise(times)) < 1.5
    finally:
        collector.stop()
        influxdb.drop_database(db)


def test_the_registry_samples_are_read_as_metrics_prints_them() -> None:
    registry = CollectorRegistry()
    Counter("kienco_messages_rejected", "x", ["reason"], registry=registry).labels("schema").inc(3)
    samples = samples_of(registry.collect())
    assert samples["kienco_messages_rejected_total"] == {(("reason", "schema"),): 3.0}
