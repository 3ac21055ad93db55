"""The brokers' dropped and stored messages, watched by the collector: each count kept as a
gauge by broker, an error logged when drops grow (at once, then at most once a minute with
what was dropped meanwhile), nothing a message says turned into a label; on a real
Mosquitto, the collector's own broker dropping what it queued for the collector while the
collector was down, and a provincial bridge carrying its broker's counts to the centre."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.broker_watch import (
    MAX_BROKERS,
    OWN,
    QUIET_AFTER_S,
    BrokerWatch,
    watch_filters,
)
from collector.config import CollectorConfig
from collector.service import Collector
from kienco.local_services import Mosquitto
from tests.support.mosquitto import Broker
from tests.support.topology import central_broker, provincial_broker

DROPPED = "publish/messages/dropped"
STORED = "store/messages/count"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _value(registry: CollectorRegistry, name: str, broker: str) -> float | None:
    return registry.get_sample_value(name, {"broker": broker})


def _watch(provinces: list[str] | None = None) -> tuple[BrokerWatch, CollectorRegistry, Clock]:
    registry, clock = CollectorRegistry(), Clock()
    return BrokerWatch(registry, provinces, clock=clock), registry, clock


def test_the_filters_are_the_own_counts_and_the_provinces() -> None:
    assert watch_filters(["hp", "qn"]) == [
        f"$SYS/broker/{DROPPED}",
        f"$SYS/broker/{STORED}",
        f"kienco/brokers/hp/{DROPPED}",
        f"kienco/brokers/hp/{STORED}",
        "kienco/brokers/hp/bridge",
        f"kienco/brokers/qn/{DROPPED}",
        f"kienco/brokers/qn/{STORED}",
        "kienco/brokers/qn/bridge",
    ]
    assert watch_filters(None)[2:] == [
        f"kienco/brokers/+/{DROPPED}",
        f"kienco/brokers/+/{STORED}",
        "kienco/brokers/+/bridge",
    ]


def test_counts_become_gauges_by_broker() -> None:
    watch, registry, _ = _watch(["hp"])
    watch.observe(f"$SYS/broker/{STORED}", b"1234")
    watch.observe(f"kienco/brokers/hp/{STORED}", b"56")
    watch.observe(f"kienco/brokers/hp/{DROPPED}", b"0")
    assert _value(registry, "kienco_broker_stored_messages", OWN) == 1234
    assert _value(registry, "kienco_broker_stored_messages", "hp") == 56
    assert _value(registry, "kienco_broker_dropped_messages", "hp") == 0


def test_drops_are_logged_at_once_then_once_a_minute_with_what_came_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch, registry, clock = _watch(["hp"])
    topic = f"kienco/brokers/hp/{DROPPED}"
    with caplog.at_level(logging.INFO, logger="collector.broker_watch"):
        watch.observe(topic, b"0")
        assert not caplog.records  # nothing dropped: nothing said
        watch.observe(topic, b"15")
        clock.now += 10
        watch.observe(topic, b"20")
        clock.now += 10
        watch.observe(topic, b"27")
        assert len(caplog.records) == 1
        (first,) = caplog.records
        assert first.levelno == logging.ERROR
        assert "hp provincial broker dropped 15 messages (15 since it started)" in first.message
        assert "max_queued_messages" in first.message
        clock.now += 41  # a minute after the first line
        watch.observe(topic, b"27")
        assert len(caplog.records) == 2
        assert "dropped 12 messages (27 since it started)" in caplog.records[1].message
        clock.now += 120
        watch.observe(topic, b"27")  # no new drop: nothing said
        assert len(caplog.records) == 2
    assert _value(registry, "kienco_broker_dropped_messages", "hp") == 27


def test_drops_before_the_collector_looked_are_said_and_a_restarted_broker_counts_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch, registry, clock = _watch()
    topic = f"$SYS/broker/{DROPPED}"
    with caplog.at_level(logging.ERROR, logger="collector.broker_watch"):
        watch.observe(topic, b"3")  # the first count the collector sees
        assert "collector's broker dropped 3 messages" in caplog.records[-1].message
        clock.now += 61
        watch.observe(topic, b"2")  # restarted (counts from 0), and dropped 2 since
        assert "dropped 2 messages (2 since it started)" in caplog.records[-1].message
    assert _value(registry, "kienco_broker_dropped_messages", OWN) == 2


def test_a_broker_whose_counts_never_come_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """Mosquitto 2.0 grants a subscription its ACL denies and sends nothing: silence is
    the one sign of an account that may not read $SYS."""
    watch, _, clock = _watch(["hp"])
    with caplog.at_level(logging.WARNING, logger="collector.broker_watch"):
        watch.check_heard()  # not subscribed yet: nothing to say
        watch.subscribed()
        clock.now += QUIET_AFTER_S - 1
        watch.check_heard()
        assert not caplog.records
        clock.now += 1
        watch.check_heard()
        watch.check_heard()
        assert len(caplog.records) == 1
        assert "whose ACL does not let this account read it" in caplog.records[0].message
    heard, _, clock = _watch(["hp"])
    heard.subscribed()
    heard.observe(f"$SYS/broker/{STORED}", b"7")
    clock.now += QUIET_AFTER_S * 2
    with caplog.at_level(logging.WARNING, logger="collector.broker_watch"):
        heard.check_heard()
    assert len(caplog.records) == 1  # the one above; the broker heard says nothing


def test_counts_the_broker_refused_are_unwatched_at_once_until_they_come(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SUBACK that refuses the counts says so: unwatched from then (the alert's start),
    not after a minute of silence; said once however often it is asked again."""
    watch, _, clock = _watch(["hp"])
    watch.subscribed()
    with caplog.at_level(logging.WARNING, logger="collector.broker_watch"):
        watch.subscription_refused(watch_filters(["hp"]), "Not authorized (0x87)", 5)
        refused_at = watch.unwatched_since
        clock.now += QUIET_AFTER_S * 2
        watch.subscription_refused(watch_filters(["hp"]), "Not authorized (0x87)", 10)
        watch.check_heard()
    assert refused_at is not None and watch.unwatched_since == refused_at
    assert len(caplog.records) == 1
    message = caplog.records[0].message
    assert "refused the subscription to its counts $SYS/broker/" in message
    assert "Not authorized (0x87)" in message and "asking again in 5 s" in message
    watch.observe(f"$SYS/broker/{STORED}", b"7")  # granted when asked again
    assert watch.unwatched_since is None


@pytest.mark.parametrize(
    "topic, payload",
    [
        (f"kienco/brokers/qn/{DROPPED}", b"5"),  # not one of this shard's provinces
        (f"kienco/brokers/hp/{DROPPED}", b"-1"),
        (f"kienco/brokers/hp/{DROPPED}", b"5 messages"),
        (f"kienco/brokers/hp/{DROPPED}", b"\xff\xfe"),
        (f"kienco/brokers/hp/{DROPPED}", b"9" * 25),  # beyond int64
        ("kienco/brokers/hp/clients/connected", b"5"),
        (f"$SYS/broker/{DROPPED}/x", b"5"),
    ],
)
def test_what_is_not_a_count_of_a_watched_broker_changes_nothing(
    topic: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    watch, registry, _ = _watch(["hp"])
    with caplog.at_level(logging.WARNING, logger="collector.broker_watch"):
        watch.observe(topic, payload)
        watch.observe(topic, payload)
    assert [s for m in registry.collect() for s in m.samples if s.name.startswith("kienco_")] == []
    assert len(caplog.records) == 1  # said once per topic, as a warning
    assert caplog.records[0].levelno == logging.WARNING


@pytest.mark.parametrize("province", ["hp\n", "HP", "h p", "", "x" * 65, "hp<script>"])
def test_a_topic_cannot_make_up_a_label(province: str) -> None:
    watch, registry, _ = _watch(None)  # every province's broker, when none is configured
    watch.observe(f"kienco/brokers/{province}/{STORED}", b"1")
    assert [s for m in registry.collect() for s in m.samples if s.name.startswith("kienco_")] == []


def test_with_no_provinces_configured_the_brokers_watched_are_bounded() -> None:
    watch, registry, _ = _watch(None)
    for index in range(MAX_BROKERS + 10):
        watch.observe(f"kienco/brokers/p{index}/{STORED}", b"1")
    labels = {
        s.labels["broker"]
        for m in registry.collect()
        for s in m.samples
        if s.name == "kienco_broker_stored_messages"
    }
    assert len(labels) == MAX_BROKERS


# --- on a real Mosquitto ------------------------------------------------------------------


@pytest.fixture
def small_queue_broker(tmp_path: Path) -> Iterator[Broker]:
    """The shipped kienco.conf and ACL, its queue per client cut to 5, $SYS every second."""
    users = {"collector": "collector-secret", "hp/hp-bts-001": "s1"}
    broker = Broker(
        tmp_path / "mosquitto",
        users=users,
        settings={"max_queued_messages": "5", "sys_interval": "1"},
    )
    broker.start()
    yield broker
    broker.stop()


def _collector(tmp_path: Path, broker: Broker) -> Collector:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": "collector",
                "password": {"value": "collector-secret"},
                "client_id": "collector",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0},
        }
    )
    collector = Collector(config)
    collector.start()
    assert collector.wait_connected(10), "collector did not connect"
    return collector


def test_the_collector_hears_its_broker_drop_what_it_queued_while_the_collector_was_down(
    tmp_path: Path, small_queue_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """The shard's story: down for a while, its broker's queue for it full, the rest
    dropped. Back, it says so, and /metrics counts them."""
    from tests.test_topology import _publish

    collector = _collector(tmp_path, small_queue_broker)
    collector.stop()  # its persistent session stays: the broker queues for it, up to 5
    for _ in range(20):
        topic = "kienco/v1/hp/hp-bts-001/event"
        assert _publish(small_queue_broker.port, "hp/hp-bts-001", "s1", topic, b"{}") == 0
    with caplog.at_level(logging.ERROR, logger="collector.broker_watch"):
        collector = _collector(tmp_path, small_queue_broker)
        try:
            registry = collector.metrics.registry
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _value(
                registry, "kienco_broker_dropped_messages", OWN
            ):
                time.sleep(0.1)
            dropped = _value(registry, "kienco_broker_dropped_messages", OWN)
            stored = _value(registry, "kienco_broker_stored_messages", OWN)
        finally:
            collector.stop()
    assert dropped is not None and 13 <= dropped <= 15, dropped  # 20 sent, 5 queued (+ in flight)
    assert stored is not None and stored >= 0
    said = [r.message for r in caplog.records if r.name == "collector.broker_watch"]
    assert said and "collector's broker dropped" in said[0], said


def test_a_provincial_bridge_carries_its_broker_s_counts_to_the_centre_s_collectors(
    tmp_path: Path,
) -> None:
    """The shipped bridge maps $SYS/broker/... of the province to kienco/brokers/<p>/... at
    the centre, which the central ACL lets a collector read and only that province's
    bridge write."""
    from tests.support.subscriber import Subscriber
    from tests.test_topology import COLLECTOR, _publish

    central: Mosquitto = central_broker(tmp_path / "central-a", ["hp", "qn"], COLLECTOR)
    central.start()
    provincial = provincial_broker(tmp_path / "hp", "hp", centre_port=central.port)
    provincial.start()
    centre = Subscriber(
        central.port,
        "kienco/brokers/#",
        client_id="collector-a1",
        username="collector-a1",
        password="collector-secret",
    )
    try:
        wanted = {f"kienco/brokers/hp/{DROPPED}", f"kienco/brokers/hp/{STORED}"}
        got = centre.wait_for(2, lambda topic: topic in wanted, 20)
        assert {topic for topic, _ in got} == wanted, got
        assert all(payload.decode().isdigit() for _, payload in got), got
        # hp's bridge account cannot speak for qn's broker.
        other = f"kienco/brokers/qn/{DROPPED}"
        assert _publish(central.port, "bridge-hp", "bridge-hp-secret", other, b"0") == 135
    finally:
        centre.close()
        provincial.stop()
        central.stop()


def _watch_said(records: list[logging.LogRecord]) -> list[str]:
    return [r.message for r in records if r.name == "collector.broker_watch"]


def test_a_count_from_an_older_subscription_is_ignored_not_dead_lettered(
    tmp_path: Path, mosquitto: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A session keeps its subscriptions: a shard whose provinces changed still gets the
    old provinces' counts. They go to the watch, which ignores them, never to the reports'
    path (a report with a wrong topic, dead-lettered)."""
    import paho.mqtt.publish as publish

    config = CollectorConfig.model_validate(
        {
            "broker": {"url": mosquitto.url, "client_id": f"watch-{time.time_ns()}"},
            "provinces": ["hp"],
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0},
        }
    )
    collector = Collector(config)
    collector.start()
    try:
        assert collector.wait_connected(10)
        collector.client.subscribe("kienco/brokers/#", 0)  # as a session of old would have
        time.sleep(0.5)
        with caplog.at_level(logging.WARNING, logger="collector.broker_watch"):
            topic = f"kienco/brokers/qn/{DROPPED}"
            publish.single(topic, b"7", hostname=mosquitto.host, port=mosquitto.port)
            deadline = time.monotonic() + 5
            said = caplog.records
            while time.monotonic() < deadline and not _watch_said(said):
                time.sleep(0.05)
        registry = collector.metrics.registry
        assert _watch_said(caplog.records) == [
            f"ignored a broker count on '{topic}': not a broker count this collector watches"
        ]
        assert _value(registry, "kienco_broker_dropped_messages", "qn") is None
        rejected = [
            s.value
            for m in registry.collect()
            for s in m.samples
            if s.name == "kienco_messages_rejected_total"
        ]
        assert sum(rejected) == 0, rejected
    finally:
        collector.stop()
