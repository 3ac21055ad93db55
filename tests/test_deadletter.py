"""The dead-letter store is where every rejected thing lives, and `kienco deadletter
list|show|replay` re-drives kept entries after a fix: messages through the collector's decode
path, refused lines through its writer. Real Mosquitto, real InfluxDB 1.6, the real CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector import points
from collector.config import CollectorConfig
from collector.deadletter import DeadLetterStore
from collector.line_protocol import LineProtocolError, Point, encode_many
from collector.service import Collector
from collector.spool import Spool
from contract.wire import Report
from kienco.cli import main as kienco_main
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker

TOKEN = "deadletter-admin-token-01"


def wait_until(check: Callable[[], Any], timeout_s: float = 15, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what}: not reached within {timeout_s} s")


def report(site: str, seq: int, at: datetime) -> bytes:
    message = Report(site=site, province="fj", seq=seq, taken_at=at, interval_s=30)
    return message.model_dump_json().encode()


@pytest.fixture
def db(influxdb: InfluxServer) -> Iterator[str]:
    name = influxdb.fresh_database("deadletter")
    yield name
    influxdb.drop_database(name)


@pytest.fixture
def collector(
    tmp_path: Path, mosquitto: Broker, influxdb: InfluxServer, db: str
) -> Iterator[Collector]:
    data = tmp_path / "collector"
    now_ns = time.time_ns()
    # A batch an outage left in the spool, one line of which InfluxDB will refuse.
    with Spool(data / "spool.sqlite") as spool:
        spool.put(
            encode_many(
                [
                    Point.make("power", {"site": "fj-9", "device": d}, {"load_pct": v}, now_ns)
                    for d, v in (("ups1", 1.0), ("ups2", 2))  # an integer after a float
                ]
            )
        )
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": f"collector-{db}",
                "topic_filter": "kienco/v1/fj/#",
            },
            "influx": {"url": influxdb.url, "database": db},
            "data_dir": str(data),
            "batch": {"max_delay_s": 0.1},
            "http": {"port": 0, "admin_token": {"value": TOKEN}, "anonymous_read": True},
        }
    )
    running = Collector(config)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()


def _cli(url: str, *args: str) -> list[str]:
    return ["deadletter", *args, "--url", url]


def test_rejected_things_are_listed_shown_and_replayed_after_a_fix(
    collector: Collector,
    influxdb: InfluxServer,
    db: str,
    mosquitto: Broker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert collector.api is not None
    url = collector.api.url
    now = datetime.now(UTC)
    # In this shard interval_s is an integer; the collector writes floats.
    influxdb.write(db, f"report,province=fj,site=fj-0 interval_s=1i {time.time_ns()}")
    # A bug in the code: storing fj-2's reports raises (fixed below by undoing the patch).
    real_lines = points.report_lines

    def buggy(message: Report, **kwargs: Any) -> str:
        if message.site == "fj-2":
            raise LineProtocolError("report", "a bug, fixed in the next release")
        return real_lines(message, **kwargs)

    monkeypatch.setattr("collector.service.report_lines", buggy)
    sent = {
        "influx_refused": report("fj-1", 1, now),
        "unprocessable": report("fj-2", 1, now),
        "invalid_json": b'{"site": "fj-3", ',
    }
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    for reason, payload in sent.items():
        site = "fj-3" if reason == "invalid_json" else json.loads(payload)["site"]
        client.publish(f"kienco/v1/fj/{site}/report", payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    wait_until(
        lambda: (
            collector.dead_letters.counts(kept_only=True)
            == {"influx_refused": 2, "unprocessable": 1, "invalid_json": 1}
        ),
        what="four dead letters (one of them the spooled line)",
    )

    # list, as JSON lines and as a table
    assert kienco_main(_cli(url, "list", "--json")) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_reason = {(e["reason"], e["kind"]): e for e in listed}
    assert set(by_reason) == {
        ("influx_refused", "message"),
        ("influx_refused", "lines"),
        ("unprocessable", "message"),
        ("invalid_json", "message"),
    }
    refused = by_reason[("influx_refused", "message")]
    assert refused["topic"] == "kienco/v1/fj/fj-1/report"
    assert "field type conflict" in refused["detail"]
    assert "field type conflict" in by_reason[("influx_refused", "lines")]["detail"]
    assert kienco_main(_cli(url, "list", "--lang", "en", "--reason", "unprocessable")) == 0
    table = capsys.readouterr().out
    assert "unprocessable" in table and "LineProtocolError" in table and "4 kept" in table

    # show: the payload as it came
    assert kienco_main(_cli(url, "show", str(refused["id"]))) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["payload"].encode() == sent["influx_refused"]

    # replay needs the admin token
    monkeypatch.delenv("KIENCO_ADMIN_TOKEN", raising=False)
    with pytest.raises(SystemExit) as refused_exit:
        kienco_main(_cli(url, "replay", "--reason", "influx_refused"))
    assert "admin token" in str(refused_exit.value)
    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", TOKEN)

    # before the fix: refused again, still kept, the attempt counted
    assert kienco_main(_cli(url, "replay", "--reason", "influx_refused", "--lang", "en")) == 3
    assert "replayed and stored 0; 2 still refused" in capsys.readouterr().out
    again = collector.dead_letters.get(refused["id"])
    assert again is not None and again.kept and again.replays == 1

    # the fixes: the conflicting measurements dropped, the bug undone
    influxdb.query(db, "DROP MEASUREMENT report")
    influxdb.query(db, "DROP MEASUREMENT power")
    monkeypatch.setattr("collector.service.report_lines", real_lines)
    assert kienco_main(_cli(url, "replay", "--reason", "influx_refused", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["replayed"] == 2 and result["still_refused"] == []
    unprocessable = by_reason[("unprocessable", "message")]["id"]
    assert kienco_main(_cli(url, "replay", "--id", str(unprocessable), "--lang", "en")) == 0
    assert "replayed and stored 1; 0 still refused" in capsys.readouterr().out
    # invalid JSON stays invalid: nothing to fix on our side
    assert kienco_main(_cli(url, "replay", "--reason", "invalid_json", "--lang", "en")) == 3
    capsys.readouterr()

    stored = {r["site"] for r in influxdb.query(db, "SELECT seq FROM report GROUP BY site")}
    assert {"fj-1", "fj-2"} <= stored
    power = influxdb.query(db, "SELECT load_pct FROM power WHERE site='fj-9' GROUP BY device")
    assert {r["device"] for r in power} == {"ups2"}  # the refused line, written at last
    site = collector.verdicts.get("fj-2")
    assert site is not None  # driven through the decode path: the site is known now
    assert collector.dead_letters.counts(kept_only=True) == {"invalid_json": 1}
    assert kienco_main(_cli(url, "list", "--all", "--json")) == 0
    everything = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(everything) == 4
    assert sum(1 for e in everything if e["replayed_at"]) == 3


def test_an_older_store_gains_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "deadletter.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT "
        "NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, payload "
        "BLOB NOT NULL);"
        "INSERT INTO dead_letter (received_at, topic, reason, detail, payload) "
        "VALUES ('2026-01-01T00:00:00+00:00', 't', 'schema', 'd', x'7b7d');"
    )
    old.commit()
    old.close()
    store = DeadLetterStore(path)
    [entry] = store.select()
    assert (entry.kind, entry.replays, entry.kept, entry.payload) == ("message", 0, True, b"{}")
    store.close()
