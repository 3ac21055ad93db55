"""The collector's MQTT client on a real Mosquitto (collector/mqtt_client.py): reads the
socket in large chunks (many messages per read, a message split across reads, over TCP
and TLS) and loses or reorders nothing; acknowledges a batch in one write, and the broker
takes exactly those acks."""

from __future__ import annotations

import itertools
import random
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher

from collector.connection_log import ClosedByBroker
from collector.mqtt_client import (
    MAX_READ_PACKETS,
    READ_CHUNK,
    AcyclicMatcher,
    CollectorClient,
    ReadBuffer,
    ack_packets,
)
from kienco.local_services import ServerTls
from tests.support.garbage import cyclic_garbage
from tests.support.mosquitto import Broker
from tests.support.pki import Pki

QOS = 1


C = TypeVar("C", bound=CollectorClient)


def collector_client(kind: type[C], client_id: str, read_window_s: float = 0.0) -> C:
    """A client of ``kind`` as the collector runs it: a persistent session, manual acks."""
    return kind(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=False,
        manual_ack=True,
        read_window_s=read_window_s,
    )


class Receiver:
    """A CollectorClient on a persistent session (as the collector runs it), manual acks."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        ctx: ssl.SSLContext | None = None,
        *,
        read_window_s: float = 0.0,
    ):
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.client = collector_client(CollectorClient, client_id, read_window_s)
        if ctx is not None:
            self.client.tls_set_context(ctx)
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.broker = broker

    def start(self, topic: str) -> None:
        self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        self.client.subscribe(topic, QOS)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK"

    def wait_for(self, count: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"received {len(self.messages)} of {count}"

    def buffer(self) -> ReadBuffer:
        sock = self.client.socket()
        assert isinstance(sock, ReadBuffer), "the client reads through its buffer"
        return sock

    def drop(self) -> None:
        """The connection lost without a DISCONNECT (a killed process): the session stays."""
        self.client.loop_stop()
        self.buffer().wrapped.close()


def publish_all(
    broker: Broker, topic: str, payloads: list[bytes], ctx: ssl.SSLContext | None
) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="pub")
    if ctx is not None:
        client.tls_set_context(ctx)
    client.max_inflight_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=QOS) for payload in payloads]
    for info in infos:
        info.wait_for_publish(20)
    client.disconnect()
    client.loop_stop()


def queue_for_session(
    broker: Broker,
    topic: str,
    client_id: str,
    payloads: list[bytes],
    ctx: ssl.SSLContext | None = None,
) -> None:
    """``payloads`` queued by the broker for ``client_id``'s persistent session, offline:
    they arrive back to back when it connects again."""
    first = Receiver(broker, client_id, ctx)
    first.start(topic)
    first.client.disconnect()
    first.client.loop_stop()
    publish_all(broker, topic, payloads, ctx)


def mixed_payloads(count: int, seed: int) -> list[bytes]:
    """Numbered payloads of random sizes (packet boundaries fall anywhere in a read), and a
    few larger than a read so they must be put together from several."""
    rng = random.Random(seed)
    payloads = []
    for index in range(count):
        size = 3 * READ_CHUNK + 17 if index % 97 == 50 else rng.randrange(20, 3000)
        head = f"{index:06d}:".encode()
        payloads.append(head + rng.randbytes(size - len(head)))
    return payloads


def check_backlog_is_read_in_chunks(
    broker: Broker,
    topic: str,
    client_id: str,
    count: int,
    ctx: ssl.SSLContext | None = None,
    *,
    max_reads: float,
) -> int:
    """Messages queued by the broker for an offline session arrive back to back on
    reconnect: each must come whole, once, in order, in fewer reads than ``max_reads``.
    Returns the reads."""
    payloads = mixed_payloads(count, seed=len(client_id))
    queue_for_session(broker, topic, client_id, payloads, ctx)
    receiver = Receiver(broker, client_id, ctx)
    receiver.start(topic)
    try:
        receiver.wait_for(count)
        assert [m.payload for m in receiver.messages] == payloads
        assert all(m.qos == QOS for m in receiver.messages)
        reads = receiver.buffer().reads
        assert reads < max_reads, f"{reads} reads for {count} messages: not buffered"
        receiver.client.ack_many([(m.mid, m.qos) for m in receiver.messages])
        return reads
    finally:
        receiver.client.disconnect()
        receiver.client.loop_stop()


def test_a_backlog_is_read_many_messages_at_a_time_whole_and_in_order(mosquitto: Broker) -> None:
    count = 600
    check_backlog_is_read_in_chunks(
        mosquitto, "kienco-test/mqtt-client/tcp", "mc-tcp", count, max_reads=count / 4
    )


def test_a_backlog_is_read_on_without_waiting_out_the_read_window(mosquitto: Broker) -> None:
    """The read window is for a light stream: a backlog is read on at once (a pass that
    stops at MAX_READ_PACKETS is followed without a wait). 800 packets of 1 KiB, ~12
    passes of 64, each of which could empty a whole read: one wait of a 1 s window after
    each would take ~12 s."""
    topic, count = "kienco-test/mqtt-client/window", 800
    # PUBLISH: 1 byte, remaining length (2 bytes), topic length (2), topic, packet id (2).
    size = 1024 - (1 + 2 + 2 + len(topic) + 2)
    payloads = [f"{index:06d}".encode().ljust(size, b".") for index in range(count)]
    queue_for_session(mosquitto, topic, "mc-window", payloads)
    receiver = Receiver(mosquitto, "mc-window", read_window_s=1.0)
    started = time.monotonic()
    receiver.start(topic)
    try:
        receiver.wait_for(count)
        took = time.monotonic() - started
        assert [m.payload for m in receiver.messages] == payloads
        assert took < 4, f"{took:.1f} s for a backlog of {count}: it waited out the window"
    finally:
        receiver.client.disconnect()
        receiver.client.loop_stop()


class WriteWatcher(CollectorClient):
    """Records how many messages it had received at each of paho's writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        self.received_at_writes: list[int] = []

    def loop_write(self) -> MQTTErrorCode:
        self.received_at_writes.append(self.received)
        return super().loop_write()


def test_a_backlog_never_keeps_the_client_from_writing(mosquitto: Broker) -> None:
    """As the collector does, each message received publishes a status (QoS 1). paho's own
    loop_read reads as many packets as it has such messages unacked, while the socket has
    bytes: under a backlog it read on and wrote nothing, no PUBACK, no status, no PINGREQ,
    until the broker dropped the silent client (50 s at 103 400 sites). A write must come
    at least every two reads of MAX_READ_PACKETS (paho decides to write before it reads:
    what one read queues goes out after the next)."""
    topic, client_id, count = "kienco-test/mqtt-client/writes", "mc-writes", 3000
    queue_for_session(mosquitto, topic, client_id, [b"%06d" % i for i in range(count)])

    client = collector_client(WriteWatcher, client_id)
    statuses_acked = threading.Event()
    acked = 0

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        client.received += 1
        c.publish("kienco-test/mqtt-client/writes-status", msg.payload, qos=QOS)
        c.ack(msg.mid, msg.qos)

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            statuses_acked.set()

    client.on_message = on_message
    client.on_publish = on_publish
    client.connect(mosquitto.host, mosquitto.port, keepalive=30)
    client.subscribe(topic, QOS)
    client.loop_start()
    try:
        assert statuses_acked.wait(60), f"{acked} of {count} statuses acked by the broker"
        assert client.received == count
        marks = [0, *client.received_at_writes, count]
        gaps = [later - earlier for earlier, later in itertools.pairwise(marks)]
        assert max(gaps) <= 2 * MAX_READ_PACKETS, f"{max(gaps)} messages read with no write"
    finally:
        client.disconnect()
        client.loop_stop()


class PingWatcher(CollectorClient):
    """Counts the passes of paho's loop at which its PINGREQ had waited a keepalive or more
    for the PINGRESP (paho's own clock: ``time.monotonic``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.overdue = 0

    def loop_misc(self) -> MQTTErrorCode:
        sent = self._ping_t
        if sent and time.monotonic() - sent >= self._keepalive:
            self.overdue += 1
        return super().loop_misc()


def watcher(client_id: str, disconnected: threading.Event) -> PingWatcher:
    client = collector_client(PingWatcher, client_id)
    client.on_disconnect = lambda *_: disconnected.set()
    return client


def test_a_backlog_longer_than_the_keepalive_keeps_the_connection(mosquitto: Broker) -> None:
    """What the collector relies on in paho 2.2 (pyproject pins >=2.2): under a backlog the
    PINGRESP waits behind the queued messages, so the PINGREQ goes unanswered for more than
    a keepalive while the client reads on. paho must not take that for a dead broker
    (bytes keep arriving: its ``_check_keepalive`` since PR 923, after 2.1, for paho issue
    914), and must keep pinging, so the broker does not drop a client it hears
    nothing else from. 1 500 messages at 4 ms each: 6 s of reading, keepalive 1 s."""
    topic, client_id, count = "kienco-test/mqtt-client/keepalive", "mc-keepalive", 1500
    payloads = [b"%06d" % i for i in range(count)]
    queue_for_session(mosquitto, topic, client_id, payloads)

    disconnected = threading.Event()
    client = watcher(client_id, disconnected)
    received: list[bytes] = []
    done = threading.Event()

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        time.sleep(0.004)  # a report's handling, made slow
        received.append(bytes(msg.payload))
        c.ack(msg.mid, msg.qos)
        if len(received) == count:
            done.set()

    client.on_message = on_message
    client.connect(mosquitto.host, mosquitto.port, keepalive=1)
    client.subscribe(topic, QOS)
    client.loop_start()
    try:
        assert done.wait(60), f"{len(received)} of {count} received"
        assert client.overdue > 0, "the PINGRESP never waited behind the backlog: no test"
        assert not disconnected.is_set(), "the connection was dropped during the backlog"
        assert received == payloads  # each once, in order: no redelivery after a reconnect
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_silent_broker_is_still_left_after_a_keepalive(fresh_broker: Broker) -> None:
    """The other side of the same check: a broker that stops answering (stopped, not
    closed: no FIN, no RST) is left within two keepalives and a loop pass, so the collector
    reconnects rather than waiting on a dead connection."""
    disconnected = threading.Event()
    client = watcher("mc-silent-broker", disconnected)
    client.connect(fresh_broker.host, fresh_broker.port, keepalive=1)
    client.loop_start()
    process = fresh_broker.process
    assert process is not None
    try:
        time.sleep(0.5)
        assert not disconnected.is_set()
        process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        assert disconnected.wait(10), "still connected to a broker silent for 10 s"
        assert time.monotonic() - stopped <= 3 * 1 + 0.5
    finally:
        process.send_signal(signal.SIGCONT)
        client.loop_stop()


@pytest.fixture
def tls_setup(tmp_path: Path) -> Iterator[tuple[Broker, ssl.SSLContext]]:
    pki = Pki(tmp_path / "pki")
    server = pki.server()
    broker = Broker(
        tmp_path / "mosquitto", tls=ServerTls(pki.ca_file, server.cert, server.key, False)
    )
    broker.start()
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    yield broker, ctx
    broker.stop()


def test_the_same_over_tls(
    tls_setup: tuple[Broker, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS hands out one record per read (Mosquitto writes a record per packet): fewer
    reads than paho's calls (three or more a message), not many messages a read."""
    broker, ctx = tls_setup
    calls = 0
    recv = ReadBuffer.recv

    def counted(self: ReadBuffer, size: int) -> bytes:
        nonlocal calls
        calls += 1
        return recv(self, size)

    monkeypatch.setattr(ReadBuffer, "recv", counted)
    count = 300
    reads = check_backlog_is_read_in_chunks(
        broker, "kienco-test/mqtt-client/tls", "mc-tls", count, ctx, max_reads=1.5 * count
    )
    assert calls >= 3 * count and reads < calls / 2


def test_ack_many_acknowledges_exactly_the_messages_given(mosquitto: Broker) -> None:
    """Acked ones are gone from the session; the others come again after a lost connection."""
    topic, client_id = "kienco-test/mqtt-client/acks", "mc-acks"
    receiver = Receiver(mosquitto, client_id)
    receiver.start(topic)
    payloads = [f"{index:03d}".encode() for index in range(40)]
    publish_all(mosquitto, topic, payloads, None)
    receiver.wait_for(len(payloads))
    acked = receiver.messages[:25]
    receiver.client.ack_many([(m.mid, m.qos) for m in acked])
    deadline = time.monotonic() + 5
    while receiver.client.want_write() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the broker reads the acks before the connection drops
    receiver.drop()
    again = Receiver(mosquitto, client_id)
    again.start(topic)
    try:
        again.wait_for(15)
        time.sleep(0.5)  # nothing more arrives
        assert sorted(m.payload for m in again.messages) == payloads[25:]
        assert all(m.dup for m in again.messages)
    finally:
        again.client.disconnect()
        again.client.loop_stop()


def test_ack_packets_are_the_bytes_paho_sends_one_by_one() -> None:
    client = CollectorClient(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="bytes", manual_ack=True
    )
    sent: list[bytes] = []

    def queue(_command: int, packet: bytes | bytearray, *_rest: object) -> MQTTErrorCode:
        sent.append(bytes(packet))
        return mqtt.MQTT_ERR_SUCCESS

    client._packet_queue = queue  # type: ignore[method-assign,assignment]  # what paho's ack() ends in
    acks = [(7, 1), (65535, 1), (1, 0), (300, 2), (8, 1)]
    for mid, qos in acks:
        client.ack(mid, qos)
    one_by_one = b"".join(sent)
    sent.clear()
    client.ack_many(acks)
    assert sent == [one_by_one] == [ack_packets(acks)]
    assert one_by_one.startswith(b"\x40\x02\x00\x07\x40\x02\xff\xff\x70\x02\x01\x2c")


def test_read_buffer_serves_small_reads_and_says_what_it_holds() -> None:
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        buffer = ReadBuffer(ours, chunk=8)
        with pytest.raises(BlockingIOError):  # nothing yet: the socket's own error
            buffer.recv(1)
        theirs.sendall(b"abcdefghijkl")
        assert buffer.recv(1) == b"a" and buffer.pending() == 7 and buffer.reads == 1
        assert buffer.recv(3) == b"bcd" and buffer.recv(10) == b"efgh"  # no more than held
        assert buffer.pending() == 0 and buffer.reads == 1
        assert buffer.recv(10) == b"ijkl" and buffer.reads == 2
        theirs.close()
        assert buffer.recv(1) == b""  # closed: paho sees the end
        assert buffer.fileno() == ours.fileno()
    finally:
        ours.close()


def test_read_buffer_keeps_what_ended_the_connection_and_nothing_else() -> None:
    """paho turns these into a bare "Unspecified error": the collector logs them
    (collector/connection_log.py). Nothing to read yet is no error; the first is kept."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    buffer = ReadBuffer(ours)
    try:
        with pytest.raises(BlockingIOError):
            buffer.recv(1)
        assert buffer.error is None
        assert buffer.send(b"x") == 1 and theirs.recv(1) == b"x"
        theirs.close()
        assert buffer.recv(1) == b""  # paho still sees the end as before
        assert isinstance(buffer.error, ClosedByBroker)
        buffer.error = None
        with pytest.raises(BrokenPipeError):
            buffer.send(b"y")
        first = buffer.error
        assert isinstance(first, BrokenPipeError)
        with pytest.raises(BrokenPipeError):
            buffer.send(b"z")
        assert buffer.error is first
        buffer.error = None
    finally:
        ours.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        buffer.recv(1)
    assert type(buffer.error) is OSError


def test_the_client_keeps_the_error_of_an_attempt_until_asked(tmp_path: Path) -> None:
    """The failed TLS handshake of ``_create_socket``, and what ended a connection (kept
    by its ReadBuffer): each told once."""
    pki, other = Pki(tmp_path / "pki"), Pki(tmp_path / "other", "another CA")
    server = pki.server()
    broker = Broker(
        tmp_path / "mosquitto", tls=ServerTls(pki.ca_file, server.cert, server.key, False)
    )
    broker.start()
    client = collector_client(CollectorClient, "mc-link-error")
    client.tls_set_context(ssl.create_default_context(cafile=str(other.ca_file)))
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.connect("127.0.0.1", broker.port)
        assert isinstance(client.take_link_error(), ssl.SSLCertVerificationError)
        assert client.take_link_error() is None
        # The right CA: connected, then the broker goes away.
        right = collector_client(CollectorClient, "mc-link-lost")
        right.tls_set_context(ssl.create_default_context(cafile=str(pki.ca_file)))
        right.connect("127.0.0.1", broker.port)
        assert right.take_link_error() is None
        broker.stop()
        deadline = time.monotonic() + 10
        while right.loop(0.1) == mqtt.MQTT_ERR_SUCCESS and time.monotonic() < deadline:
            pass
        assert isinstance(right.take_link_error(), (ClosedByBroker, ConnectionResetError))
        assert right.take_link_error() is None
    finally:
        broker.stop()


FILTERS = ("a/b", "a/+", "a/#", "#", "+/b", "+/+", "$SYS/#", "+/#", "a/b/c", "a/+/c")
TOPICS = ("a/b", "a/c", "a", "a/b/c", "x/b", "$SYS/load", "$SYS", "a/b/c/d", "", "/b")


@pytest.mark.parametrize("topic", TOPICS)
def test_the_acyclic_matcher_matches_as_paho_s(topic: str) -> None:
    """The same callbacks, in the same order, for every subset of filters registered."""
    for size in (1, 2, 3, len(FILTERS)):
        for filters in itertools.combinations(FILTERS, size):
            ours, paho_s = AcyclicMatcher(), MQTTMatcher()  # type: ignore[no-untyped-call]
            for index, topic_filter in enumerate(filters):
                ours[topic_filter] = paho_s[topic_filter] = index
            theirs = list(paho_s.iter_match(topic))  # type: ignore[no-untyped-call]
            assert list(ours.iter_match(topic)) == theirs, filters


def test_messages_received_leave_no_garbage_cycle(mosquitto: Broker) -> None:
    """paho's matcher left a cycle a message (collector/heap.py freezes what survives a
    collection: one in hand then was leaked); the collector's client leaves none."""
    payloads = [f"{i}".encode() for i in range(50)]
    receivers = {
        "ours": Receiver(mosquitto, "acyclic-ours"),
        "paho's": Receiver(mosquitto, "acyclic-paho"),
    }
    receivers["paho's"].client._on_message_filtered = MQTTMatcher()  # type: ignore[no-untyped-call]
    found: dict[str, list[str]] = {}
    for name, receiver in receivers.items():
        receiver.start(f"acyclic/{name}")
        try:
            with cyclic_garbage("paho") as found[name]:
                publish_all(mosquitto, f"acyclic/{name}", payloads, None)
                receiver.wait_for(len(payloads))
        finally:
            receiver.client.disconnect()
            receiver.client.loop_stop()
    assert found["ours"] == []
    assert found["paho's"].count("paho.mqtt.matcher.MQTTMatcher.iter_match.<locals>.rec") >= 50


def _stream(broker: Broker, topic: str, count: int, every_s: float) -> list[float]:
    """``count`` numbered messages, one every ``every_s`` (a light stream); when each left."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="stream")
    client.connect(broker.host, broker.port)
    client.loop_start()
    sent = []
    try:
        for index in range(count):
            sent.append(time.monotonic())
            client.publish(topic, f"{index:04d}".encode(), qos=QOS).wait_for_publish(5)
            time.sleep(every_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


@pytest.mark.parametrize("window_s", [0.0, 0.05])
def test_a_light_stream_is_read_in_bursts_of_the_read_window(
    mosquitto: Broker, window_s: float
) -> None:
    """One message every 2 ms: with no window, a read each (the thread woken for every
    one); with a 50 ms window, messages gathered and read many at a time, each delayed by
    at most the window, none lost or reordered."""
    receiver = Receiver(mosquitto, f"stream-{window_s}", read_window_s=window_s)
    arrived: list[float] = []

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        arrived.append(time.monotonic())
        receiver.messages.append(msg)

    receiver.client.on_message = on_message
    receiver.start("stream/#")
    count = 150
    try:
        sent = _stream(mosquitto, "stream/x", count, 0.002)
        receiver.wait_for(count)
        reads = receiver.buffer().reads
    finally:
        receiver.client.disconnect()
        receiver.client.loop_stop()
    assert [m.payload for m in receiver.messages] == [f"{i:04d}".encode() for i in range(count)]
    span_s = sent[-1] - sent[0]
    if window_s == 0:
        assert reads > count * 0.8, f"{reads} reads for {count} messages"
        return
    assert reads <= span_s / window_s * 1.5 + 5, f"{reads} reads over {span_s:.2f} s"
    waited = [a - s for a, s in zip(arrived, sent, strict=True)]
    assert max(waited) < window_s + 0.2, f"a message waited {max(waited):.3f} s"
