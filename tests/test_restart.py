"""A collector restart changes no verdict (issue 8 item 17).

Real Mosquitto, the real collector stopped and started again on the same data folder
and MQTT session, a clock the test moves. Sites in varied states — on battery with a
discharge history, a change waiting out its hold, silent, offline, listed but never
heard — answer the same verdicts right after the restart, with nothing published
again; the held change shows when its hold ends, not later and not sooner; silent
sites turn stale when they would have; a site that reported while the collector was
down is not shown stale while the broker delivers that report; a site on the attention
list before the stop and back on mains after it leaves the list at the first slot.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig
from collector.history import FLEET_EVERY_S, STATE_CODES
from collector.service import Collector
from collector.summaries import SummaryClock
from contract.wire import LinkReading, Meta, PowerReading, Report, State
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.support.subscriber import Subscriber
from tests.test_rules_support import link, on_battery, two_paths, ups

P = "rs"


class Clock:
    """The collector's clock, standing at ``t0`` until the test moves it."""

    def __init__(self, t0: datetime) -> None:
        self.t0 = t0
        self.now = t0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = self.t0 + timedelta(seconds=seconds)


@pytest.fixture
def t0() -> datetime:
    """Now, when the test starts, not when the file is imported: the whole suite takes
    minutes to reach this file, and its reports must be of the time the test runs."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clock(t0: datetime) -> Clock:
    return Clock(t0)


def wait(predicate: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        time.sleep(0.02)


class Sites:
    """Publishes as the sites' agents would, through the real broker."""

    def __init__(self, broker: Broker, t0: datetime, province: str = P) -> None:
        self.province = province
        self.t0 = t0  # what ``at`` counts from
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.seq = 0
        self.collector: Collector | None = None  # when set, each message is waited for

    def send(self, site: str, kind: str, payload: bytes, *, retain: bool = False) -> None:
        collector = self.collector
        acked = collector.metrics.acked._value.get() if collector else 0
        topic = f"kienco/v1/{self.province}/{site}/{kind}"
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        if collector is not None:  # handled at the clock's present, not later
            wait(lambda: collector.metrics.acked._value.get() > acked, f"{site} {kind} handled")

    def meta(self, site: str, at: float) -> None:
        meta = Meta(
            site=site,
            province=self.province,
            site_kind="station",
            name=f"Trạm {site}",
            interval_s=60,
            agent_version="t",
            at=self.t0 + timedelta(seconds=at),
        )
        self.send(site, "meta", meta.model_dump_json().encode(), retain=True)

    def report(
        self,
        site: str,
        at: float,
        power: tuple[PowerReading, ...] = (),
        links: tuple[LinkReading, ...] = (),
    ) -> None:
        self.seq += 1
        message = Report(
            site=site,
            province=self.province,
            seq=self.seq,
            taken_at=self.t0 + timedelta(seconds=at),
            interval_s=60,
            power=power or (ups(),),
            links=links or two_paths(),
        )
        self.send(site, "report", message.model_dump_json().encode())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def make_collector(tmp_path: Path, mosquitto: Broker) -> Iterator[Callable[..., Collector]]:
    running: list[Collector] = []
    client_id = f"restart-{time.time_ns()}"  # one persistent session for both lives
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("site,kind,province,area,hardened\nrs-listed,station,rs,rs-a,false\n")

    def make(
        clock: Clock, province: str = P, *, influx: dict[str, str] | None = None, **state: Any
    ) -> Collector:
        config = CollectorConfig.model_validate(
            {
                "broker": {
                    "url": mosquitto.url,
                    "username": None,
                    "client_id": client_id,
                    "topic_filter": f"kienco/v1/{province}/#",
                },
                "influx": influx,
                "data_dir": str(tmp_path / "collector"),
                "inventory": str(inventory),
                "http": {"port": 0, "anonymous_read": True},
                "status": {"sweep_s": 0.05},
                "batch": {"max_delay_s": 0.02},
                "state": {"restore_grace_s": 10, **state},
            }
        )
        collector = Collector(config, clock=clock)
        running.append(collector)
        return collector

    yield make
    for collector in running:
        if collector.api is not None:
            collector.stop()


def readiness(collector: Collector) -> dict[str, Any]:
    assert collector.api is not None
    answer = httpx.get(f"{collector.api.url}/api/v1/readiness", params={"province": P})
    return {site["site"]: site for site in answer.json()["sites"]}


def verdict(collector: Collector, site: str) -> str:
    status = collector.verdicts.get(site)
    assert status is not None, site
    return status.verdict


def codes(status: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in status["reasons"]]


def signature(status: dict[str, Any]) -> tuple[object, ...]:
    return status["verdict"], status.get("station_state"), codes(status)


def live_statuses(sub: Subscriber, since: int) -> list[str]:
    """Sites whose status the collector published after message ``since`` (not retained
    copies handed out at subscribe)."""
    return [t.split("/")[3] for t, _p, retained in sub.messages[since:] if not retained]


def test_a_restart_in_a_storm_changes_no_verdict(
    mosquitto: Broker, make_collector: Callable[..., Collector], clock: Clock, t0: datetime
) -> None:
    watcher = Subscriber(mosquitto.port, f"kienco/v1/{P}/+/status", client_id="restart-watch")
    sites = Sites(mosquitto, t0)
    first = make_collector(clock)
    first.start()
    assert first.wait_connected(10)
    sites.collector = first
    try:
        # 45 s before t0: two sites report once (stale at t0+135.5, while the collector is down).
        clock.at(-45)
        for site in ("rs-gone", "rs-talks"):
            sites.meta(site, -45)
            sites.report(site, -45)
        clock.at(0)
        for site in ("rs-batt", "rs-held", "rs-ok", "rs-silent", "rs-off"):
            sites.meta(site, 0)
        sites.report("rs-ok", 0)
        sites.report("rs-silent", 0)  # its only report: stale at t0+180.5
        sites.report("rs-held", 0)
        sites.report("rs-off", 0)
        state = State(site="rs-off", province=P, state="offline", at=t0)
        sites.send("rs-off", "state", state.model_dump_json().encode(), retain=True)
        for n, at in enumerate((0, 60, 120)):  # on battery: a discharge history to keep
            clock.at(at)
            sites.report("rs-batt", at, power=(on_battery(battery_charge_pct=90.0 - 10 * n),))
            if at:
                sites.report("rs-ok", at)
        # One path lost at t0+120: degraded, once it has held 60 s (t0+180).
        sites.report("rs-held", 120, links=(link("fo1", "fibre", "duct-a"), link("mw1", up=False)))
        clock.at(130)
        wait(lambda: first.verdicts.get("rs-listed") is not None, "the listed site judged")
        before = readiness(first)
        snapshots = {site: first.states.get(site) for site in before}
        shown = {site: first.verdicts.json_of(site) for site in before}
        assert set(before) == {
            "rs-gone", "rs-talks", "rs-batt", "rs-held", "rs-ok", "rs-silent", "rs-off",
            "rs-listed",
        }  # fmt: skip
        assert before["rs-batt"]["station_state"] == "up_battery"
        assert before["rs-held"]["verdict"] == "ready"  # the change is pending
        # Three samples: the discharge cross-check finds the UPS optimistic (held too).
        for site in ("rs-held", "rs-batt"):
            assert first.verdicts.saved_of(site)[0].pending is not None  # type: ignore[index]
        assert "battery_estimate_optimistic" not in codes(before["rs-batt"])
        assert {before[s]["verdict"] for s in ("rs-off", "rs-listed")} == {"unknown"}
        assert before["rs-gone"]["verdict"] == before["rs-talks"]["verdict"] == "ready"
        first.stop()

        # Down for 20 s; meanwhile rs-talks reports, and the broker keeps it for us.
        sites.collector = None
        clock.at(140)
        sites.report("rs-talks", 140)
        clock.at(150)
        second = make_collector(clock)
        # Restored before it even connects: the same statuses, byte for byte, the same state.
        assert {site: second.verdicts.json_of(site) for site in before} == shown
        assert {site: second.states.get(site) for site in before} == snapshots
        seen = len(watcher.messages)
        second.start()
        assert second.wait_connected(10)
        wait(
            lambda: (
                (s := second.states.get("rs-talks")) is not None
                and s.last_report_at == t0 + timedelta(seconds=140)
            ),
            "the report sent while the collector was down",
        )
        again = readiness(second)
        assert {s: v for s, v in again.items() if s != "rs-talks"} == {
            s: v for s, v in before.items() if s != "rs-talks"
        }
        assert again["rs-talks"]["verdict"] == "ready"  # newer report, same verdict

        # rs-gone's silence ran out while the collector was down: judged after the grace.
        clock.at(159)
        time.sleep(0.4)
        assert verdict(second, "rs-gone") == "ready"
        clock.at(161)
        wait(lambda: verdict(second, "rs-gone") == "unknown", "rs-gone stale after the grace")
        assert verdict(second, "rs-talks") == "ready"

        # The held change keeps its timer; the silent site turns stale on time.
        clock.at(179)
        time.sleep(0.4)
        assert verdict(second, "rs-held") == "ready"
        assert verdict(second, "rs-silent") == "ready"
        assert "battery_estimate_optimistic" not in codes(readiness(second)["rs-batt"])
        clock.at(181)
        wait(lambda: verdict(second, "rs-held") == "degraded", "the held change shown")
        wait(lambda: verdict(second, "rs-silent") == "unknown", "rs-silent stale")
        wait(
            lambda: "battery_estimate_optimistic" in codes(readiness(second)["rs-batt"]),
            "the held battery finding shown",
        )
        time.sleep(0.3)
        # Published after the restart: the four changes, nothing else (not rs-talks).
        published = sorted(set(live_statuses(watcher, seen)))
        assert published == ["rs-batt", "rs-gone", "rs-held", "rs-silent"]
        after = readiness(second)
        for site in ("rs-ok", "rs-off", "rs-listed", "rs-talks"):  # looked at again, unchanged
            assert signature(after[site]) == signature(before[site]), site
        batt = second.states.get("rs-batt")
        assert batt is not None and len(batt.power_history["ups1"]) == 3
    finally:
        sites.close()
        watcher.close()


def test_a_site_back_on_mains_across_a_restart_leaves_the_attention_list(
    mosquitto: Broker,
    influxdb: InfluxServer,
    make_collector: Callable[..., Collector],
    clock: Clock,
    t0: datetime,
) -> None:
    """On battery at the last ``attention`` slot before the stop, back on mains (its hold
    ended) by the first slot after: that slot writes its point without ``listed``, so the
    NOC's panels drop it, instead of showing it off mains for their 15-minute window."""
    database = influxdb.fresh_database("attention_restart")
    influx = {"url": influxdb.url, "database": database}

    def attention(site: str, slot: datetime) -> list[bool]:
        """``listed`` of each of the site's attention points stamped ``slot``."""
        rows = influxdb.query(database, f"SELECT * FROM attention WHERE site = '{site}'")
        stamp = int(slot.timestamp()) * 10**9
        return [row["listed"] is True for row in rows if row["time"] == stamp]

    def slot_of(now: datetime) -> datetime:
        slot = SummaryClock(FLEET_EVERY_S).due(now)
        assert slot is not None
        return slot

    minute = 60 - t0.second  # t0 + minute starts a slot
    sites = Sites(mosquitto, t0, "ra")  # a province of its own: no retained messages of others
    first = make_collector(clock, "ra", influx=influx, restore_grace_s=0)
    first.start()
    assert first.wait_connected(10)
    sites.collector = first
    try:
        sites.meta("ra-batt", 0)
        sites.report("ra-batt", 0, power=(on_battery(),))
        clock.at(minute)
        before = slot_of(clock.now)
        wait(lambda: attention("ra-batt", before) == [True], "ra-batt on the list", 20)
        clock.at(minute + 1)  # back on mains in the same slot: shown once its hold ends
        sites.report("ra-batt", minute + 1)
        held = first.verdicts.saved_of("ra-batt")
        assert held is not None and held[0].pending is not None
        shown = first.verdicts.get("ra-batt")
        assert shown is not None and shown.station_state == "up_battery"
        first.stop()

        clock.at(minute + 90)  # the next slot; the hold ended while the collector was down
        after = slot_of(clock.now)
        second = make_collector(clock, "ra", influx=influx, restore_grace_s=0)
        second.start()
        assert second.wait_connected(10)
        wait(lambda: attention("rs-listed", after) == [True], "the first slot written", 20)
        wait(lambda: attention("ra-batt", after) == [False], "ra-batt leaving the list", 10)
        (row,) = [
            r
            for r in influxdb.query(database, "SELECT * FROM attention WHERE site = 'ra-batt'")
            if r["time"] == int(after.timestamp()) * 10**9
        ]
        assert row["state_code"] == STATE_CODES["up_commercial"]
        assert "ra-batt" not in second.summaries.listed

        clock.at(minute + 150)  # and at the slot after, no point for it at all
        later = slot_of(clock.now)
        wait(lambda: attention("rs-listed", later) == [True], "the next slot written", 20)
        assert attention("ra-batt", later) == []
    finally:
        sites.close()
        influxdb.drop_database(database)


def test_without_a_saved_state_a_restart_forgets_every_site(
    mosquitto: Broker, make_collector: Callable[..., Collector], clock: Clock, t0: datetime
) -> None:
    """The control: what the saved state prevents."""
    sites = Sites(mosquitto, t0)
    first = make_collector(clock, persist=False)
    first.start()
    assert first.wait_connected(10)
    try:
        sites.report("rs-ok", 0)
        wait(lambda: first.verdicts.get("rs-ok") is not None, "judged")
        first.stop()
        second = make_collector(clock, persist=False)
        assert second.states.get("rs-ok") is None and second.verdicts.get("rs-ok") is None
    finally:
        sites.close()


def test_an_unreadable_state_file_is_set_aside_and_the_collector_starts(
    tmp_path: Path, make_collector: Callable[..., Collector], clock: Clock
) -> None:
    state = tmp_path / "collector" / "state.sqlite"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a database, " * 1000)
    collector = make_collector(clock)
    assert collector.saved_state is not None
    assert collector.saved_state.set_aside._value.get() == 1
    aside = [p.name for p in state.parent.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].startswith("state.sqlite.unreadable-")
    assert collector.verdicts.get("rs-listed") is None  # nothing restored; the inventory seeds
    assert collector.states.get("rs-listed") is not None


def test_a_row_this_version_cannot_read_is_skipped_the_others_restored(
    tmp_path: Path,
    mosquitto: Broker,
    make_collector: Callable[..., Collector],
    clock: Clock,
    t0: datetime,
) -> None:
    sites = Sites(mosquitto, t0, "rt")  # a province of its own: no retained messages of others
    first = make_collector(clock, "rt")
    first.start()
    assert first.wait_connected(10)
    sites.collector = first
    try:
        for site in ("rt-a", "rt-b", "rt-c"):
            sites.report(site, 0)
    finally:
        sites.close()
    first.stop()
    db = sqlite3.connect(tmp_path / "collector" / "state.sqlite")
    with db:
        db.execute("UPDATE site SET snapshot = ? WHERE site = 'rt-a'", (b'{"site": 1}',))
        db.execute("UPDATE site SET format = 99 WHERE site = 'rt-b'")
    db.close()
    second = make_collector(clock, "rt")
    assert second.saved_state is not None
    assert second.states.get("rt-a") is None and second.states.get("rt-b") is None
    restored = second.states.get("rt-c")
    assert restored is not None and restored.last_report_at == t0
    assert second.verdicts.get("rt-c") == first.verdicts.get("rt-c")
    assert second.saved_state.restored._value.get() == 2  # rt-c and the listed site
