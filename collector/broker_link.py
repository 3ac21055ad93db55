"""The collector's TCP connection to its broker: segments no larger than on a LAN.

Why: over loopback (a collector beside its Mosquitto) the MSS is ~64 KB, larger than the
~57 KB window Mosquitto's socket advertises once small packets have kept its receive
threshold low. When a burst of statuses and acks queues in the kernel (1 000 statuses
after the start's metas, or after a sweeper burst), Linux coalesces them into segments of
one MSS and sends nothing while the window is smaller than one segment: the bytes wait in
the collector's send queue (``ss``: ``notsent`` ~650 KB, ``rwnd_limited`` 96 %, the
broker's receive queue empty) until the zero-window probe timer, backing off, pushes them,
2-11 s later, all at once. Mosquitto acknowledges nothing meanwhile, so no status reaches
a subscriber while the collector goes on reading reports (docs/throughput.md, "Latency
under steady load"). On a LAN the MSS is <= 1 460 bytes and any open window holds a
segment; opening the socket with that MSS (``TCP_MAXSEG`` before ``connect()``, so the
SYN announces it and both directions use it) gives loopback the same property.
"""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt

# Ethernet's MTU (1 500) less the IPv4 and TCP headers: the MSS across a LAN.
LAN_MSS = 1460


def open_connection(
    address: tuple[str, int], timeout: float | None, source: tuple[str, int] | None = None
) -> socket.socket:
    """``socket.create_connection`` with ``TCP_MAXSEG`` = LAN_MSS set before connecting."""
    host, port = address
    error: OSError | None = None
    for family, kind, proto, _name, target in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            if hasattr(socket, "TCP_MAXSEG"):  # Linux, BSDs, macOS; Windows has none
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, LAN_MSS)
            sock.settimeout(timeout)
            if source and (source[0] or source[1]):
                sock.bind(source)
            sock.connect(target)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error if error is not None else OSError(f"no address for {host}:{port}")


class BrokerClient(mqtt.Client):
    """paho's Client whose TCP socket is opened by ``open_connection`` (TLS wraps it as before)."""

    def _create_socket_connection(self) -> socket.socket:
        if self._get_proxy():  # a SOCKS/HTTP proxy: paho's own path
            return super()._create_socket_connection()
        return open_connection(
            (self._host, self._port),
            self._connect_timeout,
            (self._bind_address, self._bind_port),
        )
