"""The whole pipe on real components: agent (snmpsim UPS, a loopback path, the host) →
Mosquitto → collector → InfluxDB; what the agent measured is what InfluxQL returns."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import SiteConfig
from agent.runner import Agent
from collector.config import CollectorConfig
from collector.deadletter import DeadLetterStore
from collector.service import Collector
from contract.wire import Report
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.support.snmpsim import SnmpSim
from tests.support.subscriber import Subscriber

REPO = Path(__file__).resolve().parents[1]


def collector_config(
    tmp_path: Path, broker: Broker, influx: InfluxServer, db: str, **extra: Any
) -> CollectorConfig:
    return CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"collector-{db}",
                "topic_filter": extra.pop("topic_filter", "kienco/v1/+/+/#"),
            },
            "influx": {"url": influx.url, "database": db},
            "data_dir": str(tmp_path / "collector"),
            "batch": {"max_messages": 500, "max_delay_s": 0.1},
            "http": {"port": 0},
            **extra,
        }
    )


@pytest.fixture
def collector_factory(tmp_path: Path) -> Iterator[Callable[[CollectorConfig], Collector]]:
    started: list[Collector] = []

    def start(config: CollectorConfig) -> Collector:
        collector = Collector(config)
        collector.start()
        assert collector.wait_connected(10), "collector did not connect"
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


def wait_rows(
    influx: InfluxServer, db: str, query: str, count: int, timeout_s: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = influx.query(db, query)
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{query}: {len(rows)} rows after {timeout_s} s, wanted {count}")


async def test_what_the_agent_measured_is_what_influxql_returns(
    tmp_path: Path,
    mosquitto: Broker,
    influxdb: InfluxServer,
    snmpsim: SnmpSim,
    collector_factory: Callable[[CollectorConfig], Collector],
) -> None:
    db = influxdb.fresh_database("roundtrip")
    collector = collector_factory(collector_config(tmp_path, mosquitto, influxdb, db))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    path_port = server.sockets[0].getsockname()[1]
    site = SiteConfig.model_validate(
        {
            "site": "hp-bts-201",
            "province": "hp",
            "kind": "station",
            "name": "Trạm BTS Kiến An",
            "interval_s": 60,
            "broker": {"url": mosquitto.url},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "disk_path": str(tmp_path),
            "paths": [
                {
                    "path": "fibre-a",
                    "media": "fibre",
                    "provider": "vnpt",
                    "srlg": ["duct-1"],
                    "target": {"host": "127.0.0.1", "port": path_port},
                    "probes": 3,
                }
            ],
            "snmp_credentials": {"sim": {"community": {"value": snmpsim.community("ups-mib")}}},
            "devices": [
                {
                    "device": "ups1",
                    "profile": "ups-mib",
                    "host": snmpsim.host,
                    "port": snmpsim.port,
                    "credentials": "sim",
                }
            ],
        }
    )
    tap = Subscriber(mosquitto.port, "kienco/v1/hp/hp-bts-201/report", client_id="tap-roundtrip")
    agent = Agent(site)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        rows = await asyncio.to_thread(
            wait_rows, influxdb, db, "SELECT * FROM power WHERE site='hp-bts-201'", 1
        )
    finally:
        stop.set()
        await task
        server.close()
        tap.close()
    sent = Report.model_validate_json(tap.received()[0][1])
    ups = sent.power[0]
    assert ups.error is None and ups.battery_charge_pct == 100.0
    row = rows[0]
    for name, value in ups.model_dump(exclude_none=True, exclude={"device", "profile"}).items():
        assert row[name] == value, name
    assert row["device"] == "ups1" and row["province"] == "hp"
    assert row["time"] == int(sent.taken_at.timestamp() * 1_000_000) * 1000
    link = wait_rows(influxdb, db, "SELECT * FROM link WHERE site='hp-bts-201'", 1)[0]
    assert link["up"] is True and link["rtt_ms"] == sent.links[0].rtt_ms
    assert link["path"] == "fibre-a" and link["media"] == "fibre"
    host = wait_rows(influxdb, db, "SELECT * FROM host WHERE site='hp-bts-201'", 1)[0]
    assert sent.host is not None and host["memory_pct"] == sent.host.memory_pct
    assert collector.metrics.points_written._value.get() >= 3


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _report(site: str, seq: int, at: datetime, province: str = "qn") -> bytes:
    return (
        Report(
            site=site,
            province=province,
            seq=seq,
            taken_at=at,
            interval_s=30.0,
        )
        .model_dump_json()
        .encode()
    )


def test_malformed_messages_are_dead_lettered_and_the_collector_carries_on(
    tmp_path: Path,
    mosquitto: Broker,
    influxdb: InfluxServer,
    collector_factory: Callable[[CollectorConfig], Collector],
) -> None:
    db = influxdb.fresh_database("dead")
    collector = collector_factory(
        collector_config(tmp_path, mosquitto, influxdb, db, topic_filter="kienco/v1/dl/#")
    )
    now = datetime.now(UTC)
    bad = [
        ("kienco/v1/dl/dl-1/report", b"{not json", "invalid_json"),
        ("kienco/v1/dl/dl-1/report", json.dumps({"kind": "report"}).encode(), "schema"),
        ("kienco/v1/dl/dl-1/report", _report("dl-2", 1, now, "dl"), "site_mismatch"),
        (
            "kienco/v1/dl/dl-1/report",
            _report("dl-1", 2, now + timedelta(hours=2), "dl"),
            "future_timestamp",
        ),
        ("kienco/v1/dl/dl-1/report", b"{" + b" " * 70_000 + b"}", "oversized"),
        ("kienco/v1/dl/Not A Slug/report", b"{}", "bad_topic"),
    ]
    client = _publisher(mosquitto.port)
    for topic, payload, _ in bad:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.publish(
        "kienco/v1/dl/dl-1/report", _report("dl-1", 3, now, "dl"), qos=1
    ).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    accepted = collector.metrics.accepted.labels("report")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        sum(collector.dead_letters.counts().values()) < len(bad) or accepted._value.get() < 1
    ):
        time.sleep(0.05)
    counts = collector.dead_letters.counts()
    assert counts == {reason: 1 for _, _, reason in bad}
    kept = {d.reason: d for d in collector.dead_letters.recent()}
    assert kept["invalid_json"].payload == b"{not json"
    assert "dl-2" in kept["site_mismatch"].detail
    for _, _, reason in bad:
        assert collector.metrics.rejected.labels(reason)._value.get() == 1
    assert collector.metrics.accepted.labels("report")._value.get() == 1


@pytest.mark.parametrize("protocol", [4, 5])
def test_a_collector_killed_mid_stream_loses_nothing(
    tmp_path: Path,
    mosquitto: Broker,
    influxdb: InfluxServer,
    protocol: int,
) -> None:
    # The persistent session either way: MQTT 3.1.1 (the default) and MQTT 5.
    db = influxdb.fresh_database(f"kill{protocol}")
    config = tmp_path / "collector.yaml"
    cfg = collector_config(tmp_path, mosquitto, influxdb, db, topic_filter="kienco/v1/kl/#")
    cfg = cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"protocol": protocol})})
    config.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
    command = [sys.executable, "-m", "kienco.cli", "collector", "run", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    client = _publisher(mosquitto.port)
    start = datetime.now(UTC) - timedelta(hours=1)
    total = 3000
    state = tmp_path / "collector" / "state.sqlite"
    try:
        _wait_subscribed(proc)
        _drain(proc)
        for seq in range(total):
            info = client.publish(
                f"kienco/v1/kl/kl-{seq % 10}/report",
                _report(f"kl-{seq % 10}", seq, start + timedelta(milliseconds=seq), "kl"),
                qos=1,
            )
            if seq == total // 3:  # every site saved whole once: what follows is logged
                info.wait_for_publish(5)
                _wait_saved(state, sites=10, logged=0)
            if seq == total // 2:
                info.wait_for_publish(5)
                _wait_saved(state, sites=10, logged=1)
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream, no goodbye
                proc.wait()
        # Every report published means acknowledged by the broker: stopping paho's loop
        # earlier leaves the tail unsent on a loaded machine (a lost report of the test's own).
        info.wait_for_publish(30)
        assert info.is_published()
        client.loop_stop()
        client.disconnect()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        started = _wait_subscribed(proc)
        said = _drain(proc)  # a full pipe would block the collector's logging
        # The state as its last save left it: snapshots and the messages logged after them,
        # folded again (collector/state_store.py).
        restored = [re.search(RESTORED, line) for line in started]
        counts = [(int(m["sites"]), int(m["refolded"])) for m in restored if m]
        assert len(counts) == 1 and counts[0][0] == 10 and counts[0][1] >= 1, started
        rows = wait_rows(influxdb, db, "SELECT count(seq) FROM report", 1, timeout_s=5)
        deadline = time.monotonic() + 60
        while rows[0]["count"] < total and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = influxdb.query(db, "SELECT count(seq) FROM report")
        if rows[0]["count"] != total:
            stored = {r["seq"] for r in influxdb.query(db, "SELECT seq FROM report")}
            missing = sorted(set(range(total)) - stored)
            dead = DeadLetterStore(tmp_path / "collector" / "deadletter.sqlite").recent()
            raise AssertionError(
                f"{rows[0]['count']} of {total} stored; missing seqs {missing[:20]}; "
                f"dead letters {[(d.reason, d.detail) for d in dead[:5]]}; "
                f"collector said: {''.join(said[-30:])}"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _drain(proc: subprocess.Popen[str]) -> list[str]:
    """Keep reading what the process writes to stderr (kept, for a failure's message)."""
    lines: list[str] = []
    assert proc.stderr is not None
    stream = proc.stderr
    threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True).start()
    return lines


RESTORED = r"restored (?P<sites>\d+) site\(s\) .*, (?P<refolded>\d+) with messages folded again"


def _wait_saved(state: Path, *, sites: int, logged: int) -> None:
    """Until the collector's saver has written ``sites`` sites and logged at least
    ``logged`` messages after their snapshots."""
    deadline = time.monotonic() + 15
    seen = (0, 0)
    while time.monotonic() < deadline:
        if state.exists():
            with closing(sqlite3.connect(state, timeout=5)) as db:
                try:
                    seen = (
                        db.execute("SELECT COUNT(*) FROM site").fetchone()[0],
                        db.execute("SELECT COUNT(*) FROM folded").fetchone()[0],
                    )
                except sqlite3.OperationalError:  # the tables not made yet
                    seen = (0, 0)
            if seen[0] == sites and seen[1] >= logged:
                return
        time.sleep(0.1)
    raise AssertionError(f"state saved: {seen[0]} sites, {seen[1]} messages logged")


def _wait_subscribed(proc: subprocess.Popen[str]) -> list[str]:
    """Read the collector's log until it has subscribed; the lines read."""
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "subscribed to" in line:
            return lines
        if not line and proc.poll() is not None:
            raise AssertionError(f"collector exited with {proc.returncode}")
    raise AssertionError("collector did not subscribe")
