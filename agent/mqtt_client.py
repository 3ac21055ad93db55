"""aiomqtt, plus the one thing the outbox needs that aiomqtt hides: the PUBACK reason code.

aiomqtt 2.x's ``publish()`` returns normally when the broker answers a QoS 1
publish with a failure reason code (MQTT 5, e.g. 135 "Not authorized" from a
Mosquitto ACL): an outbox that deleted on that return would delete reports the
broker never accepted (STACK-NOTES.md, "Refused publishes"). We keep aiomqtt
for the connection, the event loop integration and the errors, and read the
reason code from paho's ``on_publish`` callback, which aiomqtt receives and
drops. This leans on two private names of aiomqtt 2.x (``_on_publish`` and
``_pending_publishes``); the dependency is pinned ``<3`` and
``tests/test_agent_acl.py`` fails if they change.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode


class PublishRefused(Exception):
    """The broker answered a publish with a failure reason code: not a delivery."""

    def __init__(self, topic: str, reason_code: int, reason: str) -> None:
        self.topic = topic
        self.reason_code = reason_code
        self.reason = reason
        super().__init__(f"broker refused publish to {topic}: {reason_code} {reason}")


class AckingClient(aiomqtt.Client):
    """An aiomqtt client whose :meth:`publish_acked` returns only on a successful PUBACK."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reasons: dict[int, ReasonCode] = {}

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._reasons[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _lost(self) -> asyncio.Future[object]:
        """aiomqtt's future that completes when the connection drops."""
        lost: asyncio.Future[object] = self._disconnected  # type: ignore[assignment]
        return lost

    async def publish_acked(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 30.0
    ) -> None:
        """Publish at QoS 1 and wait for the PUBACK; raise PublishRefused on a failure code."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        mid = info.mid
        if mid not in self._reasons:
            confirmation = asyncio.Event()
            self._pending_publishes[mid] = confirmation
            waiter: asyncio.Future[object] = asyncio.ensure_future(confirmation.wait())
            try:
                await asyncio.wait(
                    {waiter, self._lost()},
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
                self._pending_publishes.pop(mid, None)
            if not confirmation.is_set():
                if self._disconnected.done():
                    raise aiomqtt.MqttError(f"connection lost before the PUBACK for {topic}")
                raise aiomqtt.MqttError(f"no PUBACK for {topic} within {timeout} s")
        reason = self._reasons.pop(mid, None)
        if reason is not None and reason.is_failure:
            raise PublishRefused(topic, reason.value, str(reason))

    async def wait_or_disconnect(self, event: asyncio.Event, timeout: float) -> None:
        """Wait for ``event`` or ``timeout``; raise MqttError at once if the connection drops."""
        waiter: asyncio.Future[object] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait(
                {waiter, self._lost()}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if self._disconnected.done():
            raise aiomqtt.MqttError("connection lost")
