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
    ) -> None:
        """``ca_file``: over TLS, that CA alone trusted and the broker's name checked."""
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
            self.client.tls_set(ca_certs=str(ca_file))
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
