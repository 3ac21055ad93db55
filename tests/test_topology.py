"""The national topology on real Mosquitto, from the shipped files: provincial brokers
bridged to central brokers (firmware-configs/mosquitto/), collector shards by province."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kienco.local_services import Mosquitto
from tests.support.subscriber import Subscriber
from tests.support.topology import central_broker, provincial_broker

COLLECTOR = {"collector-a1": "collector-secret"}


def _publish(port: int, user: str, password: str, topic: str, payload: bytes) -> int:
    """One QoS 1 publish over MQTT 5; the PUBACK's reason code (135: not authorized)."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    codes: list[int] = []
    client.on_publish = lambda _c, _u, _mid, reason, _p: codes.append(reason.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=topic.endswith(("/meta", "/status")))
        deadline = time.monotonic() + 10
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    assert codes, f"no PUBACK for {topic}"
    return codes[0]


@pytest.fixture
def hp_to_centre(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    central = central_broker(tmp_path / "central-a", ["hp", "qn"], COLLECTOR)
    central.start()
    provincial = provincial_broker(
        tmp_path / "hp", "hp", centre_port=central.port, agents={"hp/hp-bts-001": "s1"}
    )
    provincial.start()
    yield provincial, central
    provincial.stop()
    central.stop()


def test_shipped_bridge_carries_reports_in_and_statuses_out(
    hp_to_centre: tuple[Mosquitto, Mosquitto],
) -> None:
    provincial, central = hp_to_centre
    centre = Subscriber(
        central.port,
        "kienco/v1/#",
        client_id="collector-a1",
        username="collector-a1",
        password="collector-secret",
    )
    agent = Subscriber(
        provincial.port,
        "kienco/v1/hp/hp-bts-001/status",
        client_id="kienco-agent-hp-bts-001",
        username="hp/hp-bts-001",
        password="s1",
    )
    try:
        # The bridge connects within its restart timeout: retry the first report until through.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not centre.received():
            report = "kienco/v1/hp/hp-bts-001/report"
            assert _publish(provincial.port, "hp/hp-bts-001", "s1", report, b"r") == 0
            centre.wait_for(1, lambda t: True, 1)
        assert ("kienco/v1/hp/hp-bts-001/report", b"r") in centre.received()
        # The collector's status on the centre comes back to the agent over the bridge.
        status = "kienco/v1/hp/hp-bts-001/status"
        assert _publish(central.port, "collector-a1", "collector-secret", status, b"ok") == 0
        assert agent.wait_for(1, lambda t: t == status, 10) == [(status, b"ok")]
        # The agent's ACL on the provincial broker still binds its province and site...
        spoof = "kienco/v1/qn/hp-bts-001/report"
        assert _publish(provincial.port, "hp/hp-bts-001", "s1", spoof, b"x") == 135
        # ... and on the centre, hp's bridge account writes hp's topics only.
        other = "kienco/v1/qn/qn-bts-001/report"
        assert _publish(central.port, "bridge-hp", "bridge-hp-secret", other, b"x") == 135
        mine = "kienco/v1/hp/hp-bts-009/report"
        assert _publish(central.port, "bridge-hp", "bridge-hp-secret", mine, b"y") == 0
    finally:
        centre.close()
        agent.close()
