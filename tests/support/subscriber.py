"""A plain paho subscriber that records what the broker delivered, for wire tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.pki import KeyPair


def use_tls(client: mqtt.Client, ca_file: Path, certificate: KeyPair | None = None) -> None:
    """TLS trusting ``ca_file`` alone (the broker's name checked), with ``certificate``
    for a broker that requires one."""
    client.tls_set(
        ca_certs=str(ca_file),
        certfile=None if certificate is None else str(certificate.cert),
        keyfile=None if certificate is None else str(certificate.key),
    )


class Subscriber:
    def __init__(
        self,
        port: int,
        topic_filter: str,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        certificate: KeyPair | None = None,
    ) -> None:
        """``ca_file``: over TLS, that CA alone trusted and the broker's name checked;
        ``certificate``: the client's, for a broker that requires one."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            use_tls(self.client, ca_file, certificate)
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho takes floats
        self.client.connect_async("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber did not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def received(
        self, predicate: Callable[[str], bool] = lambda _t: True
    ) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(t, p) for t, p, _r in self.messages if predicate(t)]

    def wait_for(
        self, count: int, predicate: Callable[[str], bool], timeout_s: float = 20
    ) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.received(predicate)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.received(predicate)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
