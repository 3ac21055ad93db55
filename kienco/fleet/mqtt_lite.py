"""A light MQTT 3.1.1 client for the fleet simulator: thousands of connections in one process.

Only what a simulated agent does: CONNECT (credentials, a Will, clean session), PUBLISH
at QoS 1 and the matching PUBACK, SUBSCRIBE to its command topic (answering what comes
with a PUBACK), PINGREQ at the keepalive, DISCONNECT. One ``asyncio.Protocol`` per
connection, no task of its own: 10 000 connections cost ~10 000 small objects and
sockets. (aiomqtt is one paho client, a task and a queue per connection: measured in
docs/capacity.md, several times the memory and the CPU per message.)

Delivery is at least once, as the agent's outbox does it: a message leaves
``unsent`` for ``inflight`` when written, and ``inflight`` only on its PUBACK; when the
connection drops, what was in flight goes back ahead of ``unsent`` and is sent again
(DUP) on the next connection.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
MAX_PACKET_ID = 65_535


def varint(length: int) -> bytes:
    """MQTT's variable-length integer (the remaining length of a packet)."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def _packet(kind_flags: int, body: bytes) -> bytes:
    return bytes((kind_flags,)) + varint(len(body)) + body


@dataclass(frozen=True)
class Login:
    """What a connection says in CONNECT."""

    client_id: str
    username: str | None = None
    password: str | None = None
    will_topic: str | None = None
    will_payload: bytes = b""
    keepalive_s: int = 60
    clean_session: bool = True

    def connect_packet(self) -> bytes:
        flags = 0x02 if self.clean_session else 0
        payload = _string(self.client_id)
        if self.will_topic is not None:
            flags |= 0x04 | (1 << 3) | 0x20  # Will, QoS 1, retained (the agent's offline)
            payload += _string(self.will_topic) + _string(self.will_payload)
        if self.username is not None:
            flags |= 0x80
            payload += _string(self.username)
            if self.password is not None:
                flags |= 0x40
                payload += _string(self.password)
        header = _string("MQTT") + bytes((4, flags)) + struct.pack("!H", self.keepalive_s)
        return _packet(CONNECT << 4, header + payload)


def publish_packet(topic: str, payload: bytes, packet_id: int, *, retain: bool, dup: bool) -> bytes:
    flags = (PUBLISH << 4) | (1 << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return _packet(flags, _string(topic) + struct.pack("!H", packet_id) + payload)


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False
    made_at: float = 0.0  # time.monotonic() when the site made it: the ack latency's start
    sent_before: bool = False


@dataclass
class Stats:
    """Counts over every connection of a fleet (one event loop: no locks)."""

    connected: int = 0
    connects: int = 0
    refused: int = 0
    lost: int = 0
    published: int = 0  # written to a socket, resends included
    resent: int = 0
    acked: int = 0
    commands: int = 0
    ack_latency_s: list[float] = field(default_factory=list)
    latency_every: int = 50  # keep one latency sample in this many acks

    def on_ack(self, message: Message, now: float) -> None:
        self.acked += 1
        if self.acked % self.latency_every == 0:
            self.ack_latency_s.append(now - message.made_at)


class Connection(asyncio.Protocol):
    """One MQTT connection that reconnects by itself and never loses a message it was given."""

    def __init__(
        self,
        host: str,
        port: int,
        login: Login,
        stats: Stats,
        *,
        tls: ssl.SSLContext | None = None,
        subscribe: tuple[str, ...] = (),
        on_connected: Callable[[Connection], None] | None = None,
        reconnect_s: tuple[float, float] = (0.5, 5.0),
    ) -> None:
        self.host, self.port, self.login, self.stats = host, port, login, stats
        self.tls = tls
        self.subscribe_to = subscribe
        self.on_connected = on_connected
        self.reconnect_s = reconnect_s
        self.unsent: deque[Message] = deque()
        self.inflight: dict[int, Message] = {}
        self.transport: asyncio.Transport | None = None
        self.ready = False  # CONNACK accepted
        self.closing = False
        self._buffer = bytearray()
        self._next_id = 0
        self._delay = reconnect_s[0]
        self._last_write = 0.0
        self._ping_handle: asyncio.TimerHandle | None = None
        self.first_connected = asyncio.get_running_loop().create_future()

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: self,
                self.host,
                self.port,
                ssl=self.tls,
                server_hostname=self.host if self.tls else None,
            )
        except OSError as exc:
            self._retry_later(exc)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._buffer.clear()
        transport.write(self.login.connect_packet())
        self._last_write = time.monotonic()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready:
            self.stats.connected -= 1
            if not self.closing:
                self.stats.lost += 1
        self.ready = False
        self.transport = None
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        # What was in flight may or may not have arrived: send it again, first.
        for packet_id in sorted(
            self.inflight, key=lambda pid: self.inflight[pid].made_at, reverse=True
        ):
            message = self.inflight[packet_id]
            message.sent_before = True
            self.unsent.appendleft(message)
        self.inflight.clear()
        if not self.closing:
            self._retry_later(exc)

    def _retry_later(self, exc: BaseException | None) -> None:
        if self.closing:
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self._delay, lambda: loop.create_task(self.open()))
        self._delay = min(self._delay * 2, self.reconnect_s[1])

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            if self.ready:
                self.transport.write(bytes((DISCONNECT << 4, 0)))
            self.transport.close()

    # --- sending --------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Queue a message; it is written now if connected, else after the next CONNACK."""
        if self.ready and not self.unsent:
            self._write(message)
        else:
            self.unsent.append(message)

    def _packet_id(self) -> int:
        for _ in range(MAX_PACKET_ID):
            self._next_id = self._next_id % MAX_PACKET_ID + 1
            if self._next_id not in self.inflight:
                return self._next_id
        raise RuntimeError("65 535 messages in flight on one connection")

    def _write(self, message: Message) -> None:
        assert self.transport is not None
        packet_id = self._packet_id()
        self.inflight[packet_id] = message
        self.transport.write(
            publish_packet(
                message.topic,
                message.payload,
                packet_id,
                retain=message.retain,
                dup=message.sent_before,
            )
        )
        self._last_write = time.monotonic()
        self.stats.published += 1
        if message.sent_before:
            self.stats.resent += 1

    def _flush(self) -> None:
        while self.unsent and self.ready:
            self._write(self.unsent.popleft())

    # --- receiving ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            length, multiplier, index = 0, 1, 1
            while True:
                if index >= len(buffer):
                    return  # the length is not all here yet
                byte = buffer[index]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                index += 1
                if not byte & 0x80:
                    break
            end = index + length
            if len(buffer) < end:
                return
            self._packet_in(buffer[0] >> 4, buffer[0] & 0x0F, bytes(buffer[index:end]))
            del buffer[:end]

    def _packet_in(self, kind: int, flags: int, body: bytes) -> None:
        if kind == PUBACK:
            message = self.inflight.pop(struct.unpack("!H", body[:2])[0], None)
            if message is not None:
                self.stats.on_ack(message, time.monotonic())
        elif kind == CONNACK:
            self._connack(body[1])
        elif kind == PUBLISH:  # a command for one of its sites: acknowledge it
            self.stats.commands += 1
            qos = (flags >> 1) & 0x03
            if qos and self.transport is not None:
                topic_length = struct.unpack("!H", body[:2])[0]
                packet_id = body[2 + topic_length : 4 + topic_length]
                self.transport.write(bytes((PUBACK << 4, 2)) + packet_id)

    def _connack(self, code: int) -> None:
        if code != 0:
            self.stats.refused += 1
            if not self.first_connected.done():
                self.first_connected.set_exception(
                    ConnectionRefusedError(f"{self.login.client_id}: CONNACK return code {code}")
                )
            if self.transport is not None:
                self.transport.close()
            return
        self.ready = True
        self._delay = self.reconnect_s[0]
        self.stats.connected += 1
        self.stats.connects += 1
        if self.subscribe_to and self.transport is not None:
            body = struct.pack("!H", self._packet_id_for_subscribe())
            body += b"".join(_string(t) + b"\x01" for t in self.subscribe_to)
            self.transport.write(_packet((SUBSCRIBE << 4) | 0x02, body))
        if self.on_connected is not None:
            self.on_connected(self)
        self._flush()
        self._schedule_ping()
        if not self.first_connected.done():
            self.first_connected.set_result(None)

    def _packet_id_for_subscribe(self) -> int:
        return self._packet_id()  # never stored in inflight: its SUBACK is not a PUBACK

    def _schedule_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self._ping_handle = loop.call_later(self.login.keepalive_s * 0.75, self._ping)

    def _ping(self) -> None:
        if self.transport is None or not self.ready:
            return
        if time.monotonic() - self._last_write >= self.login.keepalive_s * 0.5:
            self.transport.write(bytes((PINGREQ << 4, 0)))
            self._last_write = time.monotonic()
        self._schedule_ping()
