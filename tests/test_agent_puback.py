"""A PUBACK belongs to one publish on one connection, on a real Mosquitto.

The broker is frozen (SIGSTOP) to make a publish time out and its PUBACK come late,
and paho's packet-id counter is moved on instead of sending 65 534 more publishes to
make it hand the same id out again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiomqtt
import pytest

from agent.mqtt_client import AckingClient
from tests.support.mosquitto import Broker

TOPIC = "kienco/v1/hp/hp-bts-151/report"


@contextmanager
def frozen(broker: Broker) -> Iterator[None]:
    """The broker stops answering (its socket stays open) until the block ends."""
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)


@asynccontextmanager
async def connected(broker: Broker, protocol: int) -> AsyncIterator[AckingClient]:
    version = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
    async with AckingClient(
        broker.host, broker.port, identifier=f"t-puback-{protocol}", protocol=version
    ) as client:
        yield client


def next_mid_will_be(client: AckingClient, mid: int) -> None:
    """Make paho's next publish carry packet id ``mid`` (it counts 1…65 535 and wraps)."""
    client._client._last_mid = mid - 1


def last_mid(client: AckingClient) -> int:
    mid: int = client._client._last_mid
    return mid


@pytest.mark.parametrize("protocol", [4, 5])
async def test_a_late_puback_does_not_acknowledge_a_later_publish_with_the_same_id(
    fresh_broker: Broker, protocol: int
) -> None:
    async with connected(fresh_broker, protocol) as client:
        with frozen(fresh_broker):
            with pytest.raises(aiomqtt.MqttError, match="no PUBACK"):
                await client.publish_acked(TOPIC, b"timed out", timeout=0.3)
            timed_out = last_mid(client)
        # In order on one TCP stream: once this one is acknowledged, the late PUBACK
        # of the timed-out publish has been read too.
        await client.publish_acked(TOPIC, b"after", timeout=10)

        next_mid_will_be(client, timed_out)
        with frozen(fresh_broker):  # no PUBACK can come for this one
            with pytest.raises(aiomqtt.MqttError, match="no PUBACK"):
                await client.publish_acked(TOPIC, b"reused id", timeout=0.5)
            assert last_mid(client) == timed_out
        assert client.late_pubacks >= 1

        await client.publish_acked(TOPIC, b"still works", timeout=10)


async def test_an_id_whose_puback_is_still_due_is_not_used_again(
    fresh_broker: Broker,
) -> None:
    async with connected(fresh_broker, 5) as client:
        with frozen(fresh_broker):
            with pytest.raises(aiomqtt.MqttError, match="no PUBACK"):
                await client.publish_acked(TOPIC, b"timed out", timeout=0.3)
            timed_out = last_mid(client)
            next_mid_will_be(client, timed_out)
            # A PUBACK for this id could answer either publish: it must not be sent
            # (paho refuses: its queue still holds the first), never taken as delivered.
            with pytest.raises(aiomqtt.MqttError):
                await client.publish_acked(TOPIC, b"reused id", timeout=5)
        # The late PUBACK arrives now (before this one's) and acknowledges nothing else.
        await client.publish_acked(TOPIC, b"after", timeout=10)
        assert client.late_pubacks == 1
        assert client._awaiting == {}


async def test_a_new_connection_forgets_what_the_old_one_waited_for(fresh_broker: Broker) -> None:
    client = AckingClient(fresh_broker.host, fresh_broker.port, identifier="t-puback-reuse")
    async with client:
        with frozen(fresh_broker):
            with pytest.raises(aiomqtt.MqttError, match="no PUBACK"):
                await client.publish_acked(TOPIC, b"timed out", timeout=0.3)
            assert client._abandoned == {last_mid(client)}
    # The connection ended: its packet ids mean nothing on the next one.
    assert client._abandoned == set() and client._awaiting == {}
    async with client:  # aiomqtt's client may connect again
        await client.publish_acked(TOPIC, b"new connection", timeout=10)
        assert client._awaiting == {}
