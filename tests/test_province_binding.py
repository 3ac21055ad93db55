"""A site belongs to one province: site ``hp-bts-001`` cannot report as itself in ``qn``.

Two locks, each tested on the real components: the shipped Mosquitto ACL refuses the
spoofed publish (MQTT 5 PUBACK reason 135), and the collector — behind a broker that
let it through — refuses it as ``site_mismatch`` and dead-letters it. Either way no
``province=qn`` point reaches InfluxDB and the site's state in its own province is
untouched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Meta, PowerReading, Report, State
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.test_rules_support import two_paths


class Publisher:
    """A paho MQTT 5 client that returns each publish's PUBACK reason code."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None):
        self.codes: dict[int, int] = {}
        self._acked = threading.Condition()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, code: Any, _p: object) -> None:
        with self._acked:
            self.codes[mid] = int(code.value)
            self._acked.notify_all()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1; the broker's PUBACK reason code (0 accepted, 135 not authorized)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._acked:
            if not self._acked.wait_for(lambda: info.mid in self.codes, timeout=10):
                raise TimeoutError(f"no PUBACK for {topic}")
            return self.codes[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ups(on_battery: bool) -> PowerReading:
    return PowerReading(
        device="ups1",
        mains_present=not on_battery,
        on_battery=on_battery,
        load_pct=40.0,
        battery_charge_pct=100.0 if not on_battery else 60.0,
        battery_runtime_s=20 * 3600.0 if not on_battery else 1800.0,
    )


def meta(site: str, province: str, at: datetime) -> bytes:
    return (
        Meta(
            site=site,
            province=province,
            site_kind="station",
            name=f"Trạm {site}",
            interval_s=60,
            agent_version="t",
            at=at,
        )
        .model_dump_json()
        .encode()
    )


def report(site: str, province: str, seq: int, at: datetime, *, on_battery: bool) -> bytes:
    return (
        Report(
            site=site,
            province=province,
            seq=seq,
            taken_at=at,
            interval_s=60,
            power=(ups(on_battery),),
            links=two_paths(),
        )
        .model_dump_json()
        .encode()
    )


def wait(predicate: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        time.sleep(0.05)


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def start(server: Broker, influx: InfluxServer, db: str, **extra: Any) -> Collector:
        config = CollectorConfig.model_validate(
            {
                "broker": {
                    "url": server.url,
                    "client_id": f"binding-{time.time_ns()}",
                    **extra.pop("broker", {"username": None}),
                },
                "influx": {"url": influx.url, "database": db},
                "data_dir": str(tmp_path / f"collector-{len(started)}"),
                "batch": {"max_messages": 100, "max_delay_s": 0.05},
                "http": {"port": 0},
                **extra,
            }
        )
        collector = Collector(config)
        collector.start()
        assert collector.wait_connected(10)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


def power_rows(influx: InfluxServer, db: str, site: str) -> list[dict[str, Any]]:
    return influx.query(db, f"SELECT * FROM power WHERE site='{site}'")


def test_the_shipped_acl_refuses_a_site_reporting_as_itself_in_another_province(
    acl_broker: Broker, influxdb: InfluxServer, start_collector: Callable[..., Collector]
) -> None:
    db = influxdb.fresh_database("acl_binding")
    collector = start_collector(
        acl_broker,
        influxdb,
        db,
        broker={"username": "collector", "password": {"value": "collector-secret"}},
    )
    agent = Publisher(acl_broker.port, "hp/hp-bts-001", "s1")  # the agent's default username
    try:
        t0 = datetime.now(UTC).replace(microsecond=0)
        assert agent.publish("kienco/v1/hp/hp-bts-001/meta", meta("hp-bts-001", "hp", t0)) == 0
        honest = report("hp-bts-001", "hp", 1, t0, on_battery=False)
        assert agent.publish("kienco/v1/hp/hp-bts-001/report", honest) == 0
        wait(lambda: len(power_rows(influxdb, db, "hp-bts-001")) == 1, "the honest report stored")
        before = collector.verdicts.get("hp-bts-001")
        assert before is not None

        # The same credentials, the same site, another province: refused by the broker.
        later = t0 + timedelta(seconds=30)
        spoofed = {
            "report": report("hp-bts-001", "qn", 2, later, on_battery=True),
            "meta": meta("hp-bts-001", "qn", later),
            "state": State(site="hp-bts-001", province="qn", state="offline", at=later)
            .model_dump_json()
            .encode(),
        }
        for kind, payload in spoofed.items():
            assert agent.publish(f"kienco/v1/qn/hp-bts-001/{kind}", payload) == 135, kind
        # Another site's topics in its own province: refused too.
        other = report("hp-bts-002", "hp", 1, later, on_battery=True)
        assert agent.publish("kienco/v1/hp/hp-bts-002/report", other) == 135

        # A later honest report is the marker: once it is stored, anything before it was seen.
        marker = report("hp-bts-001", "hp", 3, t0 + timedelta(seconds=60), on_battery=False)
        assert agent.publish("kienco/v1/hp/hp-bts-001/report", marker) == 0
        wait(lambda: len(power_rows(influxdb, db, "hp-bts-001")) == 2, "the marker stored")
    finally:
        agent.close()
    rows = power_rows(influxdb, db, "hp-bts-001")
    assert {row["province"] for row in rows} == {"hp"}
    assert not influxdb.query(db, "SELECT * FROM power WHERE province='qn'")
    held = collector.states.get("hp-bts-001")
    assert held is not None and held.province == "hp" and held.online is None
    assert held.power["ups1"][0].on_battery is False
    assert held.meta is not None and held.meta.province == "hp"
    after = collector.verdicts.get("hp-bts-001")
    assert after is not None and after.verdict == before.verdict
    assert collector.states.get("hp-bts-002") is None


def test_the_collector_refuses_what_a_broker_without_the_acl_lets_through(
    mosquitto: Broker, influxdb: InfluxServer, start_collector: Callable[..., Collector]
) -> None:
    """A broker configured otherwise (no ACL, a bridge too wide): the second lock holds."""
    db = influxdb.fresh_database("collector_binding")
    collector = start_collector(
        mosquitto, influxdb, db, broker={"username": None, "topic_filter": "kienco/v1/+/pb-1/#"}
    )
    anyone = Publisher(mosquitto.port)
    try:
        t0 = datetime.now(UTC).replace(microsecond=0)
        anyone.publish("kienco/v1/pb/pb-1/meta", meta("pb-1", "pb", t0))
        anyone.publish("kienco/v1/pb/pb-1/report", report("pb-1", "pb", 1, t0, on_battery=False))
        wait(lambda: len(power_rows(influxdb, db, "pb-1")) == 1, "the honest report stored")
        before = collector.verdicts.get("pb-1")
        assert before is not None

        later = t0 + timedelta(seconds=30)
        spoofed = report("pb-1", "pc", 2, later, on_battery=True)
        assert anyone.publish("kienco/v1/pc/pb-1/report", spoofed) == 0  # no ACL here
        assert anyone.publish("kienco/v1/pc/pb-1/meta", meta("pb-1", "pc", later)) == 0
        wait(lambda: collector.dead_letters.counts().get("site_mismatch") == 2, "dead-lettered")
        marker = report("pb-1", "pb", 3, t0 + timedelta(seconds=60), on_battery=False)
        anyone.publish("kienco/v1/pb/pb-1/report", marker)
        wait(lambda: len(power_rows(influxdb, db, "pb-1")) == 2, "the marker stored")
    finally:
        anyone.close()
    letters = [d for d in collector.dead_letters.recent() if d.reason == "site_mismatch"]
    assert {d.topic for d in letters} == {"kienco/v1/pc/pb-1/report", "kienco/v1/pc/pb-1/meta"}
    assert all("belongs to province pb (it first reported there)" in d.detail for d in letters)
    rejected = collector.metrics.rejected.labels("site_mismatch")._value.get()
    assert rejected == 2
    assert {row["province"] for row in power_rows(influxdb, db, "pb-1")} == {"pb"}
    assert not influxdb.query(db, "SELECT * FROM power WHERE province='pc'")
    held = collector.states.get("pb-1")
    assert held is not None and held.province == "pb"
    assert held.power["ups1"][0].on_battery is False
    assert held.meta is not None and held.meta.province == "pb" and held.meta.at == t0
    after = collector.verdicts.get("pb-1")
    assert after is not None and after.verdict == before.verdict
    assert after.station_state == before.station_state == "up_commercial"


def test_a_listed_site_is_bound_to_its_inventory_province_before_it_ever_reports(
    tmp_path: Path,
    mosquitto: Broker,
    influxdb: InfluxServer,
    start_collector: Callable[..., Collector],
) -> None:
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("site,kind,province,area,hardened\npd-1,station,pd,pd-a,false\n")
    db = influxdb.fresh_database("inventory_binding")
    collector = start_collector(
        mosquitto,
        influxdb,
        db,
        broker={"username": None, "topic_filter": "kienco/v1/+/pd-1/#"},
        inventory=str(inventory),
    )
    anyone = Publisher(mosquitto.port)
    try:
        t0 = datetime.now(UTC).replace(microsecond=0)
        # Its very first message, under the wrong province: the inventory says where it is.
        anyone.publish("kienco/v1/pe/pd-1/report", report("pd-1", "pe", 1, t0, on_battery=True))
        wait(lambda: collector.dead_letters.counts().get("site_mismatch") == 1, "dead-lettered")
        anyone.publish("kienco/v1/pd/pd-1/report", report("pd-1", "pd", 2, t0, on_battery=False))
        wait(lambda: len(power_rows(influxdb, db, "pd-1")) == 1, "the right one stored")
    finally:
        anyone.close()
    (letter,) = collector.dead_letters.recent()
    assert "belongs to province pd (the inventory lists it there)" in letter.detail
    assert "list it under pe in the inventory" in letter.detail  # the fix, if it moved
    assert {row["province"] for row in power_rows(influxdb, db, "pd-1")} == {"pd"}
    held = collector.states.get("pd-1")
    assert held is not None and held.province == "pd" and held.power["ups1"][0].on_battery is False
