"""aiomqtt, plus the one thing the outbox needs that aiomqtt hides: the PUBACK reason code.

aiomqtt 2.x's ``publish()`` returns normally when the broker answers a QoS 1
publish with a failure reason code (MQTT 5, e.g. 135 "Not authorized" from a
Mosquitto ACL): an outbox that deleted on that return would delete reports the
broker never accepted (STACK-NOTES.md, "Refused publishes"). We keep aiomqtt
for the connection, the event loop integration and the errors, and read the
reason code from paho's ``on_publish`` callback, which aiomqtt receives and
drops. This leans on aiomqtt 2.x's private ``_on_publish``, ``_on_disconnect``
and ``_disconnected``; the dependency is pinned ``<3`` and the tests in
``tests/test_agent_mqtt.py`` fail if they change.

A PUBACK names only a packet id, and paho hands ids out in turn (1…65 535, then
again), so a PUBACK is matched to the one publish waiting for that id on this
connection, never kept for later: a publish that gave up (timed out) leaves its
id marked abandoned and its late PUBACK is dropped (paho itself refuses to hand
out that id again until the PUBACK has come). A new connection starts with
nothing waiting and nothing abandoned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("kienco.agent")


class PublishRefused(Exception):
    """The broker answered a publish with a failure reason code: not a delivery."""

    def __init__(self, topic: str, reason_code: int, reason: str) -> None:
        self.topic = topic
        self.reason_code = reason_code
        self.reason = reason
        super().__init__(f"broker refused publish to {topic}: {reason_code} {reason}")


class AckingClient(aiomqtt.Client):
    """An aiomqtt client whose :meth:`publish_acked` returns only on that publish's PUBACK."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This connection's publishes waiting for their PUBACK, by packet id.
        self._awaiting: dict[int, asyncio.Future[ReasonCode]] = {}
        # Packet ids whose publish gave up before its PUBACK: the broker may still answer.
        self._abandoned: set[int] = set()
        self.late_pubacks = 0  # PUBACKs that came after their publish had given up

    async def __aenter__(self) -> Self:
        self._forget()  # a new connection: a new packet-id space
        return await super().__aenter__()

    def _forget(self) -> None:
        # The waiters themselves wake on the lost connection (``_lost``) and raise.
        self._awaiting.clear()
        self._abandoned.clear()

    def _on_disconnect(self, *args: Any, **kwargs: Any) -> None:
        super()._on_disconnect(*args, **kwargs)
        self._forget()  # ids of the old connection mean nothing on the next one

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        ack = self._awaiting.pop(mid, None)
        if ack is not None:
            if not ack.done():
                ack.set_result(reason_code)
            return
        if mid in self._abandoned:
            self._abandoned.discard(mid)
            self.late_pubacks += 1
            log.info("a PUBACK for packet %d came after its publish had given up; ignored", mid)
            return
        super()._on_publish(client, userdata, mid, reason_code, properties)  # aiomqtt's publish()

    def _lost(self) -> asyncio.Future[object]:
        """aiomqtt's future that completes when the connection drops."""
        lost: asyncio.Future[object] = self._disconnected  # type: ignore[assignment]
        return lost

    async def publish_acked(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 30.0
    ) -> None:
        """Publish at QoS 1 and wait for its PUBACK; raise PublishRefused on a failure code.

        Raises ``aiomqtt.MqttError`` when no PUBACK comes in ``timeout`` or the
        connection drops first: the message may or may not have arrived, so the
        caller keeps it and sends it again.
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        mid = info.mid
        # paho reads PUBACKs only in its read callback, on this event loop: none can be
        # handled between publish() returning and the registration below. And paho never
        # hands out an id whose PUBACK is still due (that publish() fails: queue size).
        ack: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._awaiting[mid] = ack
        either: set[asyncio.Future[Any]] = {ack, self._lost()}
        try:
            await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self._awaiting.get(mid) is ack:  # no PUBACK (timeout or cancelled): give up on it
                del self._awaiting[mid]
                self._abandoned.add(mid)
        if not ack.done():
            if self._disconnected.done():
                raise aiomqtt.MqttError(f"connection lost before the PUBACK for {topic}")
            raise aiomqtt.MqttError(f"no PUBACK for {topic} within {timeout} s")
        reason = ack.result()
        if reason.is_failure:
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
