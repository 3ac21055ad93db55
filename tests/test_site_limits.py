"""Invented site ids cannot grow the collector without bound.

A province carries at most ``limits.max_sites_per_province`` sites: a new one beyond
it is rejected (``site_limit``), dead-lettered and counted in /metrics, while the
sites the inventory lists are always carried. A site the inventory does not list,
silent for ``limits.unlisted_site_expiry_s``, is forgotten and its retained status
cleared. Real Mosquitto, real collector, /metrics over HTTP.
"""

from __future__ import annotations

import subprocess
import sys
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
from collector.service import Collector
from contract.wire import Report
from tests.support.mosquitto import Broker
from tests.support.subscriber import Subscriber

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


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


def report(site: str, province: str, at: datetime, seq: int = 1) -> bytes:
    message = Report(site=site, province=province, seq=seq, taken_at=at, interval_s=60)
    return message.model_dump_json().encode()


def metric(collector: Collector, line_start: str) -> float:
    assert collector.api is not None
    text = httpx.get(f"{collector.api.url}/metrics").text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


class Fleet:
    """Publishes as many sites' reports as asked, through the real broker, and waits."""

    def __init__(self, broker: Broker, collector: Collector) -> None:
        self.collector = collector
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def send(self, province: str, sites: list[str], at: datetime) -> None:
        # Acked means handled to the end: applied (or dead-lettered) and made durable.
        before = self.collector.metrics.acked._value.get()
        for site in sites:
            info = self.client.publish(
                f"kienco/v1/{province}/{site}/report", report(site, province, at), qos=1
            )
            info.wait_for_publish(5)
        wait(
            lambda: self.collector.metrics.acked._value.get() >= before + len(sites),
            f"{len(sites)} messages handled",
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def start(tmp_path: Path, mosquitto: Broker, clock: Clock) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def run(province: str, broker: Broker = mosquitto, **extra: Any) -> Collector:
        config = CollectorConfig.model_validate(
            {
                "broker": {
                    "url": broker.url,
                    "username": None,
                    "client_id": f"limits-{time.time_ns()}",
                    "topic_filter": f"kienco/v1/{province}/#",
                },
                "influx": None,
                "data_dir": str(tmp_path / f"collector-{len(started)}"),
                "http": {"port": 0, "anonymous_read": True},
                "status": {"sweep_s": 0.05},
                **extra,
            }
        )
        collector = Collector(config, clock=clock)
        collector.start()
        assert collector.wait_connected(10)
        started.append(collector)
        return collector

    yield run
    for collector in started:
        collector.stop()


def test_a_province_carries_at_most_its_limit_of_sites_and_always_its_listed_ones(
    tmp_path: Path, mosquitto: Broker, start: Callable[..., Collector], t0: datetime
) -> None:
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "site,kind,province,area,hardened\n"
        "la-listed-1,station,la,la-a,false\nla-listed-2,station,la,la-a,false\n"
    )
    collector = start("la", inventory=str(inventory), limits={"max_sites_per_province": 5})
    fleet = Fleet(mosquitto, collector)
    try:
        invented = [f"la-invented-{n}" for n in range(10)]
        fleet.send("la", invented, t0)
        # The two listed sites count: room for three more, the seven others refused.
        assert collector.states.count("la") == 5
        carried = [site for site in invented if collector.states.get(site) is not None]
        assert carried == invented[:3]
        assert all(collector.verdicts.get(site) is None for site in invented[3:])
        assert collector.dead_letters.counts() == {"site_limit": 7}
        letter = collector.dead_letters.recent(1)[0]
        assert letter.topic == "kienco/v1/la/la-invented-9/report"
        assert "province la already has 5 sites (limits.max_sites_per_province)" in letter.detail
        assert "Fix:" in letter.detail
        assert metric(collector, 'kienco_messages_rejected_total{reason="site_limit"}') == 7
        # The province is full, yet its listed sites and the carried ones still report.
        fleet.send("la", ["la-listed-1", "la-invented-0"], t0 + timedelta(seconds=60))
        assert collector.dead_letters.counts() == {"site_limit": 7}
        listed = collector.states.get("la-listed-1")
        assert listed is not None and listed.last_report_at == t0 + timedelta(seconds=60)
        # Another province has its own limit.
        assert collector.states.count("lb") == 0
    finally:
        fleet.close()


def test_invented_provinces_do_not_dodge_the_cap_the_total_holds(
    fresh_broker: Broker, start: Callable[..., Collector], t0: datetime
) -> None:
    collector = start(
        "+",  # every province, on a broker of this test's own
        broker=fresh_broker,
        limits={"max_sites_per_province": 2, "max_sites": 5},
    )
    fleet = Fleet(fresh_broker, collector)
    try:
        for n in range(8):  # one new province per site: the per-province cap never bites
            fleet.send(f"x{n}", [f"x{n}-site"], t0)
    finally:
        fleet.close()
    assert len(collector.states) == 5
    assert collector.dead_letters.counts() == {"site_limit": 3}
    letter = collector.dead_letters.recent(1)[0]
    assert "the collector carries 5 sites (limits.max_sites)" in letter.detail


def test_silent_unlisted_sites_expire_and_their_retained_status_is_cleared(
    tmp_path: Path,
    mosquitto: Broker,
    start: Callable[..., Collector],
    clock: Clock,
    t0: datetime,
) -> None:
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("site,kind,province,area,hardened\nle-listed,station,le,le-a,false\n")
    collector = start(
        "le",
        inventory=str(inventory),
        limits={"max_sites_per_province": 3, "unlisted_site_expiry_s": 86_400},
    )
    fleet = Fleet(mosquitto, collector)
    try:
        fleet.send("le", ["le-listed", "le-silent", "le-talks"], t0)
        wait(lambda: collector.verdicts.get("le-silent") is not None, "judged")
        fleet.send("le", ["le-late"], t0)  # the province is full
        assert collector.dead_letters.counts() == {"site_limit": 1}

        clock.now = t0 + timedelta(hours=20)
        fleet.send("le", ["le-talks"], clock.now)
        clock.now = t0 + timedelta(hours=25)  # le-silent: 25 h silent; le-talks: 5 h
        wait(lambda: collector.states.get("le-silent") is None, "le-silent forgotten")
        assert collector.verdicts.get("le-silent") is None
        assert collector.states.get("le-talks") is not None
        assert collector.states.get("le-listed") is not None, "a listed site never expires"
        assert metric(collector, "kienco_sites_expired_total") == 1
        assert metric(collector, "kienco_sites") == 2
        assert collector.states.count("le") == 2
        # The readiness list is of the collector's time (25 h on here), as its verdicts are.
        assert collector.api is not None
        listed = httpx.get(f"{collector.api.url}/api/v1/readiness").json()
        assert datetime.fromisoformat(listed["generated_at"]) == clock.now
        assert {s["site"] for s in listed["sites"]} == {"le-listed", "le-talks"}

        # Its retained status is gone from the broker; the others' are still there.
        late = Subscriber(mosquitto.port, "kienco/v1/le/+/status", client_id="limits-late")
        try:
            wait(lambda: len(late.received()) >= 2, "the retained statuses")
            time.sleep(0.3)
            topics = {topic for topic, payload in late.received() if payload}
        finally:
            late.close()
        assert topics == {"kienco/v1/le/le-listed/status", "kienco/v1/le/le-talks/status"}

        # Room again: a new site is carried, and the forgotten one would come back as new.
        fleet.send("le", ["le-late"], clock.now)
        assert collector.states.get("le-late") is not None
        assert collector.dead_letters.counts() == {"site_limit": 1}
    finally:
        fleet.close()


@pytest.mark.parametrize(
    ("limits", "inventory_rows", "said"),
    [
        (
            {"max_sites_per_province": 2},
            3,
            "limits.max_sites_per_province: 2 is below the 3 sites",
        ),
        (
            {"unlisted_site_expiry_s": 120},
            0,
            "limits.unlisted_site_expiry_s: 120 is shorter than the policy's "
            "freshness.offline_after_s (300)",
        ),
        (
            {"max_sites_per_province": 0},
            0,
            "limits.max_sites_per_province: Input should be greater than or equal to 1 (got 0)",
        ),
    ],
    ids=["inventory-above-the-cap", "expiry-before-offline", "cap-zero"],
)
def test_limits_that_cannot_work_stop_the_collector_with_key_value_and_fix(
    tmp_path: Path, limits: dict[str, float], inventory_rows: int, said: str
) -> None:
    inventory = tmp_path / "inventory.csv"
    rows = "".join(f"lc-{n},station,lc,lc-a,false\n" for n in range(inventory_rows))
    inventory.write_text("site,kind,province,area,hardened\n" + rows)
    config = tmp_path / "collector.yaml"
    limit_lines = "".join(f"  {key}: {value}\n" for key, value in limits.items())
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\ninventory: {inventory}\ninflux: null\n"
        f"broker: {{url: 'mqtt://127.0.0.1:1', username: null}}\nlimits:\n{limit_lines}"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kienco.cli", "collector", "run", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "Fix:" in done.stderr
    assert "Traceback" not in done.stderr
