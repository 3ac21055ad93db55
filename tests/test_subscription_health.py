"""/healthz from the broker's CONNACK to its SUBACK, on a real Mosquitto 2.0.

Connected is not receiving: until the broker grants the collector's subscriptions,
/healthz is 503 and says why, and ``broker_failure`` is never null while
``broker_connected`` is false. Three ways a real broker gets there:

- the SUBACK is slow (held here by a relay, as a broker's backlog can hold it):
  ``broker_subscribing``;
- the SUBACK refuses the filters: Mosquitto's dynamic-security plugin with a role that
  does not allow them answers ``Not authorized`` (0x87) on MQTT 5 and a bare failure
  (0x80) on 3.1.1: ``broker_subscription_refused``, with the fix;
- and once refused, the collector asks again, so an operator who grants the role on the
  live broker (``mosquitto_ctrl dynsec …``) is heard without restarting anything;
- Mosquitto's ``acl_file`` denying the account read: the SUBACK grants the
  subscription on both protocols, and the broker filters at delivery. Nothing can
  tell it from a quiet province: /healthz is 200. Pinned, so that a Mosquitto that
  changes it is noticed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from paho.mqtt import publish as paho_publish
from paho.mqtt.client import MQTTv5

from collector.config import CollectorConfig
from collector.connection_log import SUBSCRIPTION_FIX
from collector.service import Collector
from collector.subscription_retry import FIRST_S
from kienco.local_services import free_port
from tests.support.board import wait_until
from tests.support.mosquitto import Broker

DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
# Every client may publish and receive; no one may subscribe unless a role allows it.
NO_SUBSCRIBING = {
    "defaultACLAccess": {
        "publishClientSend": True,
        "publishClientReceive": True,
        "subscribe": False,
        "unsubscribe": True,
    },
    "clients": [],
    "groups": [],
    "roles": [],
}


def collector_config(
    tmp_path: Path, url: str, *, protocol: int = 5, username: str | None = None, **broker: Any
) -> CollectorConfig:
    return CollectorConfig.model_validate(
        {
            "broker": {
                "url": url,
                "username": username,
                "client_id": username or f"subscribe-{time.time_ns()}",
                "topic_filter": "kienco/v1/hp/#",
                "protocol": protocol,
                **broker,
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0},
        }
    )


@pytest.fixture
def run() -> Iterator[Callable[[CollectorConfig], Collector]]:
    running: list[Collector] = []

    def start(config: CollectorConfig) -> Collector:
        collector = Collector(config)
        running.append(collector)
        collector.start()
        return collector

    yield start
    for collector in running:
        collector.stop()


def healthz(collector: Collector) -> httpx.Response:
    assert collector.api is not None
    return httpx.get(f"{collector.api.url}/healthz", timeout=5)


def codes(answer: httpx.Response) -> set[str]:
    return {p["code"] for p in answer.json()["problems"]}


@pytest.fixture
def dynsec_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto whose dynamic-security plugin refuses every subscription."""
    if not DYNSEC_PLUGIN.exists():
        pytest.fail(f"{DYNSEC_PLUGIN} missing: apt-get install -y mosquitto")
    work = tmp_path / "mosquitto-dynsec"
    work.mkdir()
    (work / "dynsec.json").write_text(json.dumps(NO_SUBSCRIBING))
    conf = work / "dynsec.conf"
    conf.write_text(
        f"listener 1883\nplugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {work / 'dynsec.json'}\n"
    )
    broker = Broker(work, conf=conf)
    broker.start()
    yield broker
    broker.stop()


ADMIN = ("admin", "s3cret-admin")
COLLECTOR = ("collector", "collector-s3cret")


@pytest.fixture
def dynsec_admin_broker(tmp_path: Path) -> Iterator[Broker]:
    """As ``dynsec_broker``, with an administrator who can change the ACL live (made by
    ``mosquitto_ctrl dynsec init``, as an operator makes one), and counts every second."""
    ctrl = shutil.which("mosquitto_ctrl")
    if not DYNSEC_PLUGIN.exists() or ctrl is None:
        pytest.fail(
            "the dynamic-security plugin or mosquitto_ctrl missing: "
            "apt-get install -y mosquitto mosquitto-clients"
        )
    work = tmp_path / "mosquitto-dynsec-admin"
    work.mkdir()
    config = work / "dynsec.json"
    subprocess.run([ctrl, "dynsec", "init", str(config), *ADMIN], check=True, capture_output=True)
    made = json.loads(config.read_text())
    config.write_text(json.dumps({**made, "defaultACLAccess": NO_SUBSCRIBING["defaultACLAccess"]}))
    conf = work / "dynsec.conf"
    conf.write_text(
        f"listener 1883\nplugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {config}\nsys_interval 1\n"
    )
    work.chmod(0o777)  # the broker, run as root, drops to its own user and saves the file
    config.chmod(0o666)
    broker = Broker(work, conf=conf)
    broker.start()
    dynsec(broker, "createClient", COLLECTOR[0], "-p", COLLECTOR[1])  # with no role
    yield broker
    broker.stop()


def dynsec(broker: Broker, *command: str) -> None:
    ctrl = shutil.which("mosquitto_ctrl") or "mosquitto_ctrl"
    login = ["-h", "127.0.0.1", "-p", str(broker.port), "-u", ADMIN[0], "-P", ADMIN[1]]
    subprocess.run([ctrl, *login, "dynsec", *command], check=True, capture_output=True, timeout=10)


def test_a_refused_subscription_is_asked_again_and_a_live_fix_is_heard(
    tmp_path: Path, dynsec_admin_broker: Broker, run: Callable[[CollectorConfig], Collector]
) -> None:
    """The operator grants subscribing on the running broker; the collector, still on the
    same connection, asks again and receives: no restart of either."""
    config = collector_config(
        tmp_path,
        dynsec_admin_broker.url,
        username=COLLECTOR[0],
        password={"value": COLLECTOR[1]},
        topic_filter="kienco/v1/hp/#",
    )
    collector = run(config)
    wait_until(
        lambda: "broker_subscription_refused" in codes(healthz(collector)),
        what="the refused SUBACK in /healthz",
    )
    # The counts' subscription was refused too: unwatched now, not after a minute's silence.
    assert collector.broker_watch.unwatched_since is not None
    connection = collector.delivery.generation
    # The default ACL changed on the running broker: Mosquitto does not drop the clients
    # it concerns (a role given to a client does, and the reconnection subscribes anew),
    # as an auth plugin whose backend was down answers again without a word to anyone.
    # (mosquitto_ctrl 2.0.11's setDefaultACLAccess sends a command the plugin ignores.)
    command = {"command": "setDefaultACLAccess", "acls": [{"acltype": "subscribe", "allow": True}]}
    paho_publish.single(
        "$CONTROL/dynamic-security/v1",
        json.dumps({"commands": [command]}),
        hostname="127.0.0.1",
        port=dynsec_admin_broker.port,
        auth={"username": ADMIN[0], "password": ADMIN[1]},
        protocol=MQTTv5,
    )
    fixed_at = time.monotonic()
    assert collector.wait_connected(FIRST_S + 10), collector.connection_log.failing
    assert time.monotonic() - fixed_at < FIRST_S + 5
    answer = healthz(collector)
    assert answer.status_code == 200 and answer.json()["broker_failure"] is None
    assert collector.delivery.generation == connection  # the same connection, asked again
    # The counts come (sys_interval 1): the drops are watched again.
    wait_until(lambda: collector.broker_watch.unwatched_since is None, what="the counts heard")


@pytest.mark.parametrize(
    ("protocol", "refusal"), [(5, "Not authorized (0x87)"), (4, "Unspecified error (0x80)")]
)
def test_a_subscription_the_broker_refuses_is_said_with_its_fix(
    tmp_path: Path,
    dynsec_broker: Broker,
    run: Callable[[CollectorConfig], Collector],
    protocol: int,
    refusal: str,
) -> None:
    collector = run(collector_config(tmp_path, dynsec_broker.url, protocol=protocol))
    answer = wait_until(
        lambda: "broker_subscription_refused" in codes(r := healthz(collector)) and r,
        what="the refused SUBACK in /healthz",
    )
    body = answer.json()
    assert answer.status_code == 503 and body["broker_connected"] is False
    assert codes(answer) == {"broker_subscription_refused"}  # not "disconnected": it is not
    failure = body["broker_failure"]
    assert failure["state"] == "subscription_refused"
    assert failure["cause"] == f"subscription to kienco/v1/hp/# refused: {refusal}"
    assert failure["fix"] == SUBSCRIPTION_FIX
    problem = body["problems"][0]
    assert "refused" in problem["text_en"] and "từ chối" in problem["text_vi"]
    assert not collector.wait_connected(0.5)
    assert collector.metrics.connected._value.get() == 0


@pytest.mark.parametrize("protocol", [5, 4])
def test_mosquitto_s_acl_file_grants_a_denied_subscription_and_says_nothing(
    tmp_path: Path, acl_broker: Broker, run: Callable[[CollectorConfig], Collector], protocol: int
) -> None:
    """An agent's account (read on its own status and command only) as the collector's:
    Mosquitto 2.0's acl_file grants kienco/v1/hp/# in the SUBACK and delivers nothing."""
    config = collector_config(
        tmp_path,
        acl_broker.url,
        protocol=protocol,
        username="hp/hp-bts-001",
        password={"value": "s1"},
    )
    collector = run(config)
    assert collector.wait_connected(10), "the SUBACK granted it"
    answer = healthz(collector)
    assert answer.status_code == 200 and answer.json()["broker_failure"] is None


class SubackHold:
    """A loopback relay to a broker that holds the broker's bytes from its first SUBACK
    on, until ``release()``: the window between CONNACK and SUBACK, made long."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.held = threading.Event()  # a SUBACK arrived and is held
        self._lock = threading.Lock()
        self._flowing = False  # released: the broker's bytes go straight through
        self._pending = b""  # the broker's bytes not yet sent on
        self._client: socket.socket | None = None
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        with self._lock:
            self._flowing = True
            if self._client is not None:
                self._client.sendall(self._pending)
            self._pending = b""

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        try:
            near, _ = self._listener.accept()
        except OSError:
            return
        far = socket.create_connection(("127.0.0.1", self.target_port))
        self._sockets += [near, far]
        self._client = near
        threading.Thread(target=self._to_broker, args=(near, far), daemon=True).start()
        threading.Thread(target=self._to_client, args=(far, near), daemon=True).start()

    @staticmethod
    def _to_broker(client: socket.socket, broker: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                broker.sendall(data)
        except OSError:
            pass

    def _to_client(self, broker: socket.socket, client: socket.socket) -> None:
        try:
            while data := broker.recv(65536):
                with self._lock:
                    if self._flowing:
                        client.sendall(data)
                        continue
                    self._pending += data
                    while not self.held.is_set() and (size := _packet_size(self._pending)):
                        if self._pending[0] >> 4 == 9:  # SUBACK: hold it, and all after it
                            self.held.set()
                            break
                        client.sendall(self._pending[:size])
                        self._pending = self._pending[size:]
        except OSError:
            pass


def _packet_size(data: bytes) -> int | None:
    """The size of the whole MQTT packet at the start of ``data``, if it is all there."""
    length, shift = 0, 0
    for n in range(1, min(len(data), 5)):
        length |= (data[n] & 0x7F) << shift
        shift += 7
        if not data[n] & 0x80:
            size = 1 + n + length
            return size if len(data) >= size else None
    return None


def test_between_connack_and_suback_healthz_says_it_waits_for_the_subscriptions(
    tmp_path: Path, fresh_broker: Broker, run: Callable[[CollectorConfig], Collector]
) -> None:
    hold = SubackHold(fresh_broker.port)
    try:
        collector = run(collector_config(tmp_path, f"mqtt://127.0.0.1:{hold.port}"))
        assert hold.held.wait(10), "no SUBACK came"
        answer = healthz(collector)
        body = answer.json()
        assert answer.status_code == 503 and body["broker_connected"] is False
        assert codes(answer) == {"broker_subscribing"}
        failure = body["broker_failure"]
        assert failure is not None, "connected, not subscribed: null said nothing"
        assert failure["state"] == "subscribing" and failure["fix"] is None
        assert failure["cause"] == (
            "connected, waiting for the broker to accept the subscriptions (SUBACK)"
        )
        assert failure["failed_attempts"] == 0
        problem = body["problems"][0]
        assert "waiting" in problem["text_en"] and "đang chờ" in problem["text_vi"]
        hold.release()
        assert collector.wait_connected(10)
        answer = healthz(collector)
        assert answer.status_code == 200 and answer.json()["broker_failure"] is None
    finally:
        hold.close()
