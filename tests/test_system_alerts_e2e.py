"""The collector's alerts about itself, end to end on the real things: a collector, a
Mosquitto of its own, and Prometheus Alertmanager with the shipped config, whose receivers
post to a webhook here.

The heartbeat goes alone to its receiver, and its resolved notification comes when the
collector stops; a collector cut from its broker pages the NOC with the cause and the fix,
and the page resolves when the broker is back; a broker dropping what it queued for a
subscriber that fell behind pages with the count; an InfluxDB out of reach pages as not
taking writes, and the page resolves when it is reachable again; a province's backhaul
cut pages once for the province (its bridge's will at the centre), its sites' silence
inhibited, and the page resolves when its broker is bridged again; the backlog then read
late pages once for the province, its sites' silence still inhibited, until a live report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig
from collector.service import Collector
from kienco.local_services import Mosquitto
from tests.support.alertmanager import AlertmanagerServer, Notification, Webhook
from tests.support.fleet import FleetSite
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.support.relay import Relay
from tests.support.topology import central_broker, provincial_broker
from tests.support.waiting import wait_until

EXTERNAL = "https://noc.example.vn/kienco"


def active(alertmanager: AlertmanagerServer, name: str) -> list[dict[str, Any]]:
    return [a for a in alertmanager.alerts() if a["labels"]["alertname"] == name]


def noted(webhook: Webhook, receiver: str, name: str, status: str) -> list[Notification]:
    return webhook.notifications(
        receiver,
        where=lambda n: (
            n.status == status and any(a["labels"]["alertname"] == name for a in n.alerts)
        ),
    )


@pytest.fixture
def start_collector(
    tmp_path: Path, alertmanager: AlertmanagerServer
) -> Iterator[Callable[..., Collector]]:
    running: list[Collector] = []

    def start(
        broker: Broker, name: str, influx: dict[str, str] | None = None, **alerts: Any
    ) -> Collector:
        config = CollectorConfig.model_validate(
            {
                "broker": {
                    "url": broker.url,
                    "username": None,
                    "client_id": f"c-{name}",
                    "topic_filter": "kienco/v1/#",
                },
                "influx": influx,
                "data_dir": str(tmp_path / name),
                "http": {"port": 0},
                "alerts": {
                    "alertmanagers": [alertmanager.url],
                    "external_url": EXTERNAL,
                    "batch_delay_s": 0.1,
                    **alerts,
                },
            }
        )
        collector = Collector(config)
        collector.start()
        assert collector.wait_connected(10)
        running.append(collector)
        return collector

    yield start
    for collector in running:
        if collector.alerts is not None and collector.alerts._thread.is_alive():
            collector.stop()


def test_the_heartbeat_goes_alone_to_its_receiver_and_its_end_says_the_collector_stopped(
    fresh_broker: Broker,
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    start_collector: Callable[..., Collector],
) -> None:
    collector = start_collector(fresh_broker, "beat", resend_s=1)
    [beat] = wait_until(lambda: active(alertmanager, "KiencoHeartbeat"))
    assert beat["labels"] == {
        "alertname": "KiencoHeartbeat",
        "severity": "info",
        "cause": "system",
        "collector": "c-beat",
    }
    assert beat["annotations"]["site_url"] == f"{EXTERNAL}/healthz"
    assert (
        "When this alert ends (resolved), the collector has stopped"
        in (beat["annotations"]["summary_en"])
    )
    wait_until(lambda: noted(webhook, "kienco-heartbeat", "KiencoHeartbeat", "firing"))
    collector.stop()
    stopped = time.monotonic()
    [note] = wait_until(lambda: noted(webhook, "kienco-heartbeat", "KiencoHeartbeat", "resolved"))
    # It ends 4 resends (4 s) after the last refresh; Alertmanager flushes within a second.
    assert note.at - stopped < 10
    assert note.alerts[0]["labels"]["collector"] == "c-beat"
    paged = [a for n in webhook.notifications("noc") for a in n.alerts]
    assert not paged, paged  # neither the heartbeat nor the clean stop pages the NOC


def test_a_collector_cut_from_its_broker_pages_the_noc_with_why_and_clears_when_it_is_back(
    fresh_broker: Broker,
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    start_collector: Callable[..., Collector],
) -> None:
    start_collector(fresh_broker, "cut", system={"broker_down_after_s": 2, "heartbeat": False})
    fresh_broker.stop()
    cut_at = datetime.now(UTC)
    [alert] = wait_until(lambda: active(alertmanager, "CollectorDisconnected"))
    assert alert["labels"] == {
        "alertname": "CollectorDisconnected",
        "severity": "critical",
        "cause": "system",
        "collector": "c-cut",
    }
    notes = alert["annotations"]
    assert "disconnected from its MQTT broker since" in notes["summary_en"]
    assert "mất kết nối tới broker MQTT" in notes["summary"]
    assert "cause: cannot connect: [Errno 111] Connection refused" in notes["description_en"]
    assert (
        "fix: check the broker runs and listens on broker.url's port" in (notes["description_en"])
    )
    started = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
    assert abs((started - cut_at).total_seconds()) < 3  # when it was cut, not when it paged
    wait_until(lambda: noted(webhook, "noc", "CollectorDisconnected", "firing"))
    fresh_broker.start()
    wait_until(lambda: not active(alertmanager, "CollectorDisconnected"))
    wait_until(lambda: noted(webhook, "noc", "CollectorDisconnected", "resolved"))


@pytest.fixture
def small_queue_broker(tmp_path: Path) -> Iterator[Broker]:
    """Anonymous, the shipped tuning, its queue per client cut to 5, $SYS every second."""
    broker = Broker(
        tmp_path / "small-queue", settings={"max_queued_messages": "5", "sys_interval": "1"}
    )
    broker.start()
    yield broker
    broker.stop()


def _client(broker: Mosquitto, client_id: str, login: tuple[str, str] | None = None) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    if login is not None:
        client.username_pw_set(*login)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def test_a_broker_dropping_a_laggard_s_reports_pages_with_how_many(
    small_queue_broker: Broker,
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    start_collector: Callable[..., Collector],
) -> None:
    """Another shard's session, its collector down: the broker queues 5 for it and drops
    the rest, while this collector watches."""
    laggard = _client(small_queue_broker, "laggard")
    subscribed = threading.Event()
    laggard.on_subscribe = lambda *_: subscribed.set()
    laggard.subscribe("kienco/v1/#", qos=1)
    assert subscribed.wait(5)
    laggard.disconnect()
    laggard.loop_stop()
    collector = start_collector(small_queue_broker, "watching", system={"heartbeat": False})
    registry = collector.metrics.registry
    wait_until(
        lambda: registry.get_sample_value("kienco_broker_dropped_messages", {"broker": "own"}) == 0
    )
    publisher = _client(small_queue_broker, "hp-bts-001")
    for _ in range(20):
        publisher.publish("kienco/v1/hp/hp-bts-001/event", b"{}", qos=1).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    [alert] = wait_until(lambda: active(alertmanager, "BrokerDroppedReports"))
    assert alert["labels"] == {
        "alertname": "BrokerDroppedReports",
        "severity": "critical",
        "cause": "system",
        "collector": "c-watching",
        "broker": "own",
    }
    dropped = registry.get_sample_value("kienco_broker_dropped_messages", {"broker": "own"})
    assert dropped is not None and 13 <= dropped <= 15  # 20 sent, 5 queued (+ in flight)
    summary = alert["annotations"]["summary_en"]
    assert summary.startswith("the collector's broker dropped ")
    assert "what it drops is lost for good" in summary
    wait_until(lambda: noted(webhook, "noc", "BrokerDroppedReports", "firing"))


def test_an_influxdb_out_of_reach_pages_as_not_taking_writes_and_clears_when_back(
    fresh_broker: Broker,
    influxdb: InfluxServer,
    influx_db: str,
    alertmanager: AlertmanagerServer,
    start_collector: Callable[..., Collector],
) -> None:
    link = Relay(int(influxdb.url.rsplit(":", 1)[1]))  # the network path to InfluxDB
    try:
        influx = {"url": f"http://127.0.0.1:{link.port}", "database": influx_db}
        collector = start_collector(
            fresh_broker,
            "history",
            influx=influx,
            system={"influx_down_after_s": 1, "heartbeat": False},
        )
        link.cut()
        [alert] = wait_until(lambda: active(alertmanager, "InfluxNotWriting"))
        assert alert["labels"] == {
            "alertname": "InfluxNotWriting",
            "severity": "warning",
            "cause": "system",
            "collector": "c-history",
        }
        assert "InfluxDB has not taken a write since" in alert["annotations"]["summary_en"]
        assert "nothing is lost" in alert["annotations"]["summary_en"]
        assert not collector.health().ok
        link.restore()
        wait_until(lambda: not active(alertmanager, "InfluxNotWriting"))
    finally:
        link.close()


def _silent(province: str, site: str) -> dict[str, Any]:
    """A SiteSilent as the collector sends it (tests/test_alerts_e2e.py has it sent)."""
    labels = {
        "alertname": "SiteSilent",
        "severity": "warning",
        "province": province,
        "site": site,
        "kind": "station",
        "operator": "vnpt",
        "cause": "silence",
    }
    return {"labels": labels, "annotations": {"summary": f"{site}: im lặng"}}


def _province_behind_a_relay(
    tmp_path: Path,
    alertmanager: AlertmanagerServer,
    status: dict[str, Any] | None = None,
) -> tuple[Mosquitto, Relay, Mosquitto, Collector]:
    """The shipped central broker, hp's provincial broker bridged to it through a relay
    standing for the backhaul, and hp's shard on the centre, alerting."""
    central = central_broker(tmp_path / "central-a", ["hp"], {"collector-a1": "secret"})
    central.start()
    backhaul = Relay(central.port)  # hp's link to the centre
    hp = provincial_broker(
        tmp_path / "hp", "hp", centre_port=backhaul.port, agents={AGENT[0]: AGENT[1]}
    )
    hp.start()
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": central.url,
                "username": "collector-a1",
                "password": {"value": "secret"},
                "client_id": "collector-a1",
            },
            "provinces": ["hp"],
            "influx": None,
            "data_dir": str(tmp_path / "shard"),
            "http": {"port": 0},
            "status": status or {},
            "alerts": {
                "alertmanagers": [alertmanager.url],
                "external_url": EXTERNAL,
                "batch_delay_s": 0.1,
                "system": {"bridge_down_after_s": 1, "heartbeat": False},
            },
        }
    )
    shard = Collector(config)
    shard.start()
    return central, backhaul, hp, shard


AGENT = ("hp/hp-bts-001", "s1")


def test_a_province_cut_from_the_centre_pages_once_and_its_sites_silence_is_inhibited(
    tmp_path: Path, alertmanager: AlertmanagerServer, webhook: Webhook
) -> None:
    """The shipped bridge's will says it at the centre the moment the link dies; the
    shard of that province pages BridgeDown with the province, and the shipped
    alertmanager.yml keeps the province's SiteSilent pages quiet while it lasts."""
    central, backhaul, hp, shard = _province_behind_a_relay(tmp_path, alertmanager)
    try:
        assert shard.wait_connected(10)
        registry = shard.metrics.registry
        up = {"broker": "hp"}
        wait_until(lambda: registry.get_sample_value("kienco_broker_bridge_up", up) == 1)
        backhaul.cut()  # the fibre: connections reset, no new ones
        [alert] = wait_until(lambda: active(alertmanager, "BridgeDown"))
        assert alert["labels"] == {
            "alertname": "BridgeDown",
            "severity": "critical",
            "cause": "system",
            "collector": "collector-a1",
            "broker": "hp",
            "province": "hp",
        }
        assert "its backhaul is cut or the broker stopped" in alert["annotations"]["summary_en"]
        assert registry.get_sample_value("kienco_broker_bridge_up", up) == 0
        # Its sites fall silent meanwhile; another province's silence still pages.
        posted = httpx.post(
            f"{alertmanager.url}/api/v2/alerts",
            json=[_silent("hp", "hp-bts-001"), _silent("qn", "qn-bts-002")],
            timeout=10,
        )
        assert posted.status_code == 200
        wait_until(lambda: noted(webhook, "noc", "BridgeDown", "firing"))
        wait_until(lambda: noted(webhook, "noc", "SiteSilent", "firing"))
        time.sleep(3)  # group_wait and group_interval have passed: hp's would have come
        silent_paged = {
            a["labels"]["site"]
            for n in noted(webhook, "noc", "SiteSilent", "firing")
            for a in n.alerts
        }
        assert silent_paged == {"qn-bts-002"}
        [inhibited] = [a for a in alertmanager.alerts() if a["labels"].get("site") == "hp-bts-001"]
        assert inhibited["status"]["inhibitedBy"], inhibited
        # The link back; the provincial broker started again (as its watchdog would: an
        # idle Mosquitto 2.0.11 may not retry a bridge refused while the link was down).
        backhaul.restore()
        hp.stop()
        hp.start()
        wait_until(lambda: not active(alertmanager, "BridgeDown"))
        assert registry.get_sample_value("kienco_broker_bridge_up", up) == 1
    finally:
        shard.stop()
        hp.stop()
        backhaul.close()
        central.stop()


def test_a_province_s_backlog_read_late_pages_once_and_keeps_its_sites_silence_quiet(
    tmp_path: Path, alertmanager: AlertmanagerServer, webhook: Webhook
) -> None:
    """The backhaul back, hp's queued reports reach its shard oldest first: its sites look
    silent until the backlog is read. ReportsLate says so, for the province, and the shipped
    alertmanager.yml keeps their SiteSilent quiet once BridgeDown has ended; the
    province's first live report ends it."""
    central, backhaul, hp, shard = _province_behind_a_relay(
        tmp_path, alertmanager, {"late_after_s": 2}
    )
    agent = _client(hp, "hp-bts-001", AGENT)
    site = FleetSite("hp-bts-001")

    def report_now() -> None:
        report = site.report(datetime.now(UTC)).model_dump_json()
        agent.publish("kienco/v1/hp/hp-bts-001/report", report, qos=1).wait_for_publish(5)

    try:
        assert shard.wait_connected(10)
        registry = shard.metrics.registry
        up = {"broker": "hp"}
        wait_until(lambda: registry.get_sample_value("kienco_broker_bridge_up", up) == 1)
        backhaul.cut()
        wait_until(lambda: active(alertmanager, "BridgeDown"))
        # The site goes on reporting into its provincial broker, which queues for the bridge.
        for _ in range(3):
            report_now()
            time.sleep(1)
        time.sleep(2)  # the newest queued is now older than late_after_s
        backhaul.restore()
        hp.stop()  # as its watchdog would (the idle 2.0.11 bridge: see the test above)
        hp.start()
        [late] = wait_until(lambda: active(alertmanager, "ReportsLate"))
        assert late["labels"] == {
            "alertname": "ReportsLate",
            "severity": "warning",
            "cause": "system",
            "collector": "collector-a1",
            "province": "hp",
        }
        assert "a backlog after a bridge or collector outage" in late["annotations"]["summary_en"]
        assert "tồn đọng" in late["annotations"]["summary"]
        wait_until(lambda: not active(alertmanager, "BridgeDown"))
        assert shard.states.get("hp-bts-001") is not None  # the backlog was read
        assert shard.api is not None
        body = httpx.get(f"{shard.api.url}/healthz", timeout=5).json()
        assert set(body["reports_late"]) == {"hp"} and body["reports_late"]["hp"]["behind_s"] > 2
        assert [p["provinces"] for p in body["problems"] if p["code"] == "reports_late"] == [["hp"]]
        # The province's silence, now that its bridge is up, is still no page.
        posted = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[_silent("hp", "hp-bts-001")])
        assert posted.status_code == 200
        time.sleep(3)  # group_wait and group_interval have passed
        assert not noted(webhook, "noc", "SiteSilent", "firing")
        [silent] = [a for a in alertmanager.alerts() if a["labels"].get("site") == "hp-bts-001"]
        assert silent["status"]["inhibitedBy"] == [late["fingerprint"]]
        assert noted(webhook, "noc", "ReportsLate", "firing")
        # A live report: the province is read in the present again.
        report_now()
        wait_until(lambda: not active(alertmanager, "ReportsLate"))
        assert httpx.get(f"{shard.api.url}/healthz", timeout=5).json()["reports_late"] == {}
    finally:
        agent.loop_stop()
        shard.stop()
        hp.stop()
        backhaul.close()
        central.stop()
