"""The collector's MQTT client: paho's, reading the socket in large chunks and acking a batch
in one write.

Why not plain paho (2.2): its network loop reads one packet per pass, each after a
``select`` and with a ``recv`` per piece (the command byte, each byte of the remaining
length, then the rest): five system calls for every report. And each manual PUBACK is a
packet of its own: a byte on paho's socket pair to wake its loop and a ``send`` of 4 bytes,
one per message. In place (benchmarks/ingest.py) these are a measurable part of the
collector's CPU per report (docs/throughput.md, "In place").

What it changes, and nothing else of paho's behaviour:

- :class:`ReadBuffer` wraps the connected socket (TCP or TLS): one ``recv`` of up to
  :data:`READ_CHUNK` bytes serves paho's small reads from memory. It answers ``pending()``
  with the bytes it holds (plus those TLS has decrypted), which paho's loop honours: it does
  not wait in ``select`` while bytes are buffered, so a buffered message is never stranded.
  :meth:`CollectorClient.loop_read` reads up to :data:`MAX_READ_PACKETS` packets a call,
  so a chunk costs one ``select`` rather than one per message, and then returns: paho's
  own ``loop_read`` reads as many packets as it has QoS 1/2 messages of its own unacked
  (``len(_out_messages)``, every status waiting to go out included) for as long as the
  socket has bytes. Under a backlog that is a read that does not end: the collector wrote
  nothing (no PUBACK, no status, no PINGREQ) for 50 s at a time and the broker dropped it
  as silent (benchmarks/fleet.py at 103 400 sites; tests/test_mqtt_client.py).
- :meth:`CollectorClient.loop_read` lets a light stream of messages gather for up to
  ``read_window_s`` (``broker.read_window_ms``) before it reads them: when paho's
  ``select`` wakes it for the first bytes after a pause, it waits until that long after its
  previous read began, then reads what came meanwhile in one pass (only after a pass that
  emptied the socket: a backlog is read on at once). A shard of a fleet
  reporting on time gets a message every millisecond or so, and a thread that wakes for
  each one pays for its idle core every time: a report handled after a 2 ms pause took
  ~3 times the CPU of one handled back to back (950 against 310 µs; in bursts of ten,
  ~520). A backlog is read as before: no wait while bytes are in hand or after a pass that
  stopped at its packet count. What a message waits is at most the window.
- :meth:`CollectorClient.ack_many` queues a batch's acknowledgements as one packet: the same
  bytes as one ``ack`` per message, in the same order, in one write.
- :class:`AcyclicMatcher` looks up the per-topic callbacks paho checks for on every message
  without leaving a reference cycle: paho's ``MQTTMatcher.iter_match`` makes a generator
  that refers to itself through a closure cell, six objects a message that only the cyclic
  garbage collector frees; ``collector run`` freezes what survives each collection
  (collector/heap.py), and a message in hand at one was leaked (``heap.audit`` found 9 to
  28 a shard in a 90 s run of benchmarks/fleet.py). The same matches in the same order.
- :meth:`CollectorClient.take_link_error` says what the last connection attempt or
  connection met (a failed TLS handshake, a TLS alert, a reset, the broker closing it):
  paho catches these and tells only its own logger, which the collector leaves off (it
  would format a log call for every packet). They are kept where they are raised, in
  ``_create_socket`` and in :class:`ReadBuffer` (``error``), at no cost while nothing
  fails; collector/connection_log.py logs them.

They lean on paho internals (``_create_socket``, ``_packet_read``, ``_loop_rc_handle``,
``_packet_queue``, ``_sock``, ``_on_message_filtered``): the pin in
pyproject keeps paho 2.x, and tests/test_mqtt_client.py holds the behaviour on a real
Mosquitto (messages split across reads, many per read, TLS, acks in order). The pin asks
for 2.2 at least: its keepalive check keeps a connection whose PINGRESP waits behind a
backlog (bytes still arrive) and pings on, and still leaves a broker that went silent;
the same file holds both.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher

from collector.broker_link import BrokerClient
from collector.connection_log import ClosedByBroker

__all__ = ["READ_CHUNK", "AcyclicMatcher", "CollectorClient", "ReadBuffer", "ack_packets"]

# One recv takes this much at most: ~57 reports of 1 126 bytes; TLS hands out one record
# (16 KiB) per recv whatever is asked.
READ_CHUNK = 64 * 1024
# loop_read reads at most this many packets before paho's loop gets a turn (its writes:
# PUBACKs, statuses, PINGREQ; keepalive): ~a chunk of reports, ~15-20 ms of handling here.
MAX_READ_PACKETS = 64

_PUBACK, _PUBCOMP = 0x40, 0x70
# A non-blocking socket with nothing to read or no room to write: paho's normal, no error.
_NOT_YET = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def ack_packets(acks: Iterable[tuple[int, int]]) -> bytes:
    """The PUBACK (QoS 1) or PUBCOMP (QoS 2) packets paho's ``ack`` sends, concatenated in
    order; QoS 0 needs none. MQTT 3.1.1 and 5 alike (5: no reason code means success)."""
    pack = struct.Struct("!BBH").pack
    return b"".join(
        pack(_PUBACK if qos == 1 else _PUBCOMP, 2, mid) for mid, qos in acks if qos in (1, 2)
    )


class ReadBuffer:
    """A connected socket whose ``recv`` serves small reads from one large one.

    Everything but ``recv``, ``send`` and ``pending`` goes to the socket it wraps
    (``fileno`` for ``select``, ``close``, ``setblocking``, TLS's ``getpeercert`` ...).
    Errors of the underlying ``recv`` and ``send`` (``BlockingIOError``,
    ``ssl.SSLWantReadError``, a closed connection's ``b""``) reach paho as they are, and
    only when nothing is buffered; the first real one (a closed connection too) is kept
    in ``error`` first: paho keeps it to itself.
    """

    def __init__(self, sock: socket.socket, chunk: int = READ_CHUNK) -> None:
        self._sock = sock
        self._chunk = chunk
        self._buf = b""
        self._pos = 0
        self.reads = 0  # recv calls on the socket (tests/test_mqtt_client.py counts them)
        # The first: the ones after it (a write after a TLS alert) only follow from it.
        self.error: OSError | None = None

    @property
    def wrapped(self) -> socket.socket:
        return self._sock

    def recv(self, size: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            end = pos + size
            self._pos = min(end, len(buf))
            return buf[pos:end]
        try:  # free in Python 3.11 while nothing is raised
            data = self._sock.recv(max(size, self._chunk))
        except _NOT_YET:
            raise
        except OSError as exc:
            self._failed(exc)
            raise
        self.reads += 1
        if len(data) <= size:
            if not data:  # paho sees only a lost connection ("Unspecified error")
                self._failed(ClosedByBroker())
            self._buf, self._pos = b"", 0
            return data
        self._buf, self._pos = data, size
        return data[:size]

    def send(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._sock.send(data)
        except _NOT_YET:
            raise
        except OSError as exc:
            self._failed(exc)
            raise

    def _failed(self, error: OSError) -> None:
        if self.error is None:
            self.error = error

    def buffered(self) -> int:
        """Bytes read from the socket and not yet handed out."""
        return len(self._buf) - self._pos

    def pending(self) -> int:
        """Bytes readable without waiting: ours, and those TLS has already decrypted."""
        inner = getattr(self._sock, "pending", None)
        return self.buffered() + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _matching(node: Any, parts: list[str], i: int, normal: bool) -> Iterator[Any]:
    """paho's ``iter_match`` walk, a module function: no closure, so no cycle."""
    if i == len(parts):
        if node._content is not None:
            yield node._content
    else:
        part = parts[i]
        if part in node._children:
            yield from _matching(node._children[part], parts, i + 1, normal)
        if "+" in node._children and (normal or i > 0):
            yield from _matching(node._children["+"], parts, i + 1, normal)
    if "#" in node._children and (normal or i > 0):
        content = node._children["#"]._content
        if content is not None:
            yield content


class AcyclicMatcher(MQTTMatcher):
    """paho's topic matcher whose lookups leave no reference cycle (module docstring)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # paho's is untyped

    def iter_match(self, topic: str) -> Iterator[Any]:
        root = cast(Any, self)._root
        return _matching(root, topic.split("/"), 0, not topic.startswith("$"))


class CollectorClient(BrokerClient):
    """paho's client with a LAN's MSS (BrokerClient), buffered reads, batched acks and
    callback lookups that leave no garbage cycle."""

    def __init__(self, *args: Any, read_window_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(Any, self)._on_message_filtered = AcyclicMatcher()
        self.read_window_s = read_window_s
        self._read_began = 0.0  # time.monotonic() when the last read pass began
        self._ran_dry = True  # the last pass ended with the socket empty
        # For take_link_error: what the last attempt to connect met, and the last
        # connection's socket (no reference back to us: no cycle for the collector's GC).
        self._link_error: OSError | None = None
        self._link: ReadBuffer | None = None

    def take_link_error(self) -> OSError | None:
        """The error the last connection (or attempt to connect) met, then forgotten: what
        paho's on_connect_fail and on_disconnect do not say."""
        error, self._link_error = self._link_error, None
        link = self._link
        if error is None and link is not None:
            error, link.error = link.error, None
        return error

    def _create_socket(self) -> Any:
        # paho's thread, outside our guarded callbacks: nothing added here may raise.
        self._link_error, self._link = None, None  # a new attempt
        try:
            sock = super()._create_socket()  # TCP, then the TLS handshake
            if not isinstance(sock, socket.socket):  # websockets: paho's wrapper, left alone
                return sock
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # PUBACKs and statuses are small: no Nagle delay (TLS sockets are sockets too).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # paho's loop catches it and retries, saying nothing
            self._link_error = exc
            raise
        self._link = ReadBuffer(sock)
        return self._link

    def loop_read(self, max_packets: int = MAX_READ_PACKETS) -> MQTTErrorCode:
        """Read and handle up to ``max_packets`` packets (fewer once the socket has none):
        paho's own loop, with its count bounded; a light stream is let gather for up to
        ``read_window_s`` first (see the module's docstring)."""
        this = cast(Any, self)
        began = time.monotonic()
        if self._ran_dry and not self._buffered():
            # The first bytes after a pause: let the stream gather for the rest of the window.
            wait = self._read_began + self.read_window_s - began
            if wait > 0:
                time.sleep(wait)  # paho's thread; none of paho's locks is held here
                began = time.monotonic()
        self._read_began = began
        self._ran_dry = False  # a pass that stops at max_packets: a backlog, read on at once
        for _ in range(max(1, min(max_packets, MAX_READ_PACKETS))):
            if self._sock is None:
                return mqtt.MQTT_ERR_NO_CONN
            rc = cast(MQTTErrorCode, this._packet_read())
            if rc > 0:
                return cast(MQTTErrorCode, this._loop_rc_handle(rc))
            if rc == mqtt.MQTT_ERR_AGAIN:
                self._ran_dry = True
                break
        return mqtt.MQTT_ERR_SUCCESS

    def _buffered(self) -> int:
        """Bytes in hand already (ours, and those TLS decrypted): a burst is being read."""
        sock = self._sock
        return sock.pending() if isinstance(sock, ReadBuffer) else 0

    def ack_many(self, acks: Iterable[tuple[int, int]]) -> MQTTErrorCode:
        """Acknowledge ``(mid, qos)`` messages in the given order, in one write.

        The same bytes as ``ack(mid, qos)`` for each, queued as one packet: dropped like
        any queued packet if the connection is lost before it is written."""
        packet = ack_packets(acks)
        if not packet:
            return mqtt.MQTT_ERR_SUCCESS
        queue = cast(Any, self)._packet_queue  # what paho's own ack() ends in
        return cast(MQTTErrorCode, queue(_PUBACK, packet, 0, 1))
