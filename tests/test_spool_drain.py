"""The spool drains under steady traffic (issue 8 item 13): a backlog left by an outage
empties while new reports keep arriving on every batch tick, and those are stored as they come.
Real Mosquitto, real InfluxDB; the figure is printed (run with -s)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig
from collector.line_protocol import Point, encode_many
from collector.service import Collector
from collector.spool import Spool
from contract.wire import Report
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker

BATCHES, LINES = 200, 500  # 100 000 points left in the spool by an outage
RATE_HZ = 50  # new reports per second: a batch at every 0.1 s tick, never an idle one


def test_the_spool_drains_while_new_traffic_keeps_flowing(
    tmp_path: Path, mosquitto: Broker, influxdb: InfluxServer
) -> None:
    db = influxdb.fresh_database("spool_drain")
    data = tmp_path / "collector"
    start = datetime.now(UTC) - timedelta(hours=2)
    start_ns = int(start.timestamp()) * 1_000_000_000
    with Spool(data / "spool.sqlite") as spool:
        for b in range(BATCHES):
            points = [
                Point.make(
                    "report",
                    {"site": "fi-old", "province": "fi"},
                    {"seq": b * LINES + i, "interval_s": 60.0},
                    start_ns + (b * LINES + i) * 1_000_000,
                )
                for i in range(LINES)
            ]
            spool.put(encode_many(points))
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": f"collector-{db}",
                "topic_filter": "kienco/v1/fi/#",
            },
            "influx": {"url": influxdb.url, "database": db},
            "data_dir": str(data),
            "batch": {"max_messages": 2000, "max_delay_s": 0.1},
            "http": {"port": 0},
        }
    )
    collector = Collector(config)
    assert collector.spool is not None and collector.spool.depth() == BATCHES
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    stop = threading.Event()
    sent = 0

    def traffic() -> None:
        nonlocal sent
        t0 = time.monotonic()
        while not stop.is_set():
            report = Report(
                site="fi-new", province="fi", seq=sent, taken_at=datetime.now(UTC), interval_s=1
            )
            publisher.publish("kienco/v1/fi/fi-new/report", report.model_dump_json(), qos=1)
            sent += 1
            time.sleep(max(0.0, t0 + sent / RATE_HZ - time.monotonic()))

    flow = threading.Thread(target=traffic)
    collector.start()
    try:
        assert collector.wait_connected(10)
        flow.start()
        began = time.monotonic()
        depths = []
        while collector.spool.depth() and time.monotonic() - began < 90:
            depths.append(collector.spool.depth())
            time.sleep(0.2)
        drained_s = time.monotonic() - began
        sent_while_draining = sent
        assert collector.spool.depth() == 0, f"spool still holds {collector.spool.depth()}"
        assert flow.is_alive()  # the traffic never paused
        # New traffic was stored as it came, not behind the backlog.
        count = "SELECT count(seq) FROM report WHERE site='fi-new'"
        stored_new = influxdb.query(db, count)
        assert stored_new and stored_new[0]["count"] >= sent_while_draining - 2 * RATE_HZ
        stop.set()
        flow.join(5)
        old = influxdb.query(db, "SELECT count(seq) FROM report WHERE site='fi-old'")
        assert old[0]["count"] == BATCHES * LINES
        deadline = time.monotonic() + 20
        while influxdb.query(db, count)[0]["count"] < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert influxdb.query(db, count)[0]["count"] == sent
        print(
            f"\nspool: {BATCHES} batches ({BATCHES * LINES} points) drained in {drained_s:.1f} s "
            f"while {sent_while_draining} new reports arrived at {RATE_HZ}/s "
            f"(depth every 0.2 s: {depths[:3]} ... {depths[-3:]}); new reports stored as they came"
        )
    finally:
        stop.set()
        if flow.is_alive():
            flow.join(5)
        publisher.disconnect()
        publisher.loop_stop()
        collector.stop()
