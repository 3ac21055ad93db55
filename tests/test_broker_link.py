"""collector/broker_link.py: the collector's broker connection uses a LAN's MSS, both ways.

Over loopback the MSS is ~64 KB; a burst queued in the kernel then waits for a receive window
of one whole segment, and Mosquitto's stays near 57 KB: statuses sat 2-11 s in the
collector's send queue (docs/throughput.md, "Latency under steady load").
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from collector.broker_link import LAN_MSS, BrokerClient, open_connection
from collector.config import CollectorConfig
from collector.mqtt_client import ReadBuffer
from collector.service import Collector
from tests.support.mosquitto import Broker


def mss(sock: socket.socket) -> int:
    # Not a skip: the collector runs, and is tested, on Linux, where the option exists.
    assert hasattr(socket, "TCP_MAXSEG"), "this Python has no socket.TCP_MAXSEG: run on Linux"
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)


def test_the_collectors_connection_to_a_broker_on_loopback_uses_a_lan_mss(
    tmp_path: Path, mosquitto: Broker
) -> None:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": f"link-{time.time_ns()}",
                "topic_filter": "kienco/v1/linktest/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
        }
    )
    collector = Collector(config)
    collector.start(serve_http=False)
    try:
        assert collector.wait_connected(10), "collector did not connect"
        assert isinstance(collector.client, BrokerClient)
        buffered = collector.client.socket()  # reads buffered (collector/mqtt_client.py)
        assert isinstance(buffered, ReadBuffer)
        sock = buffered.wrapped
        assert isinstance(sock, socket.socket)
        assert 0 < mss(sock) <= LAN_MSS
        # What paho alone opens to the same broker: loopback's own, far above a LAN's.
        with socket.create_connection((mosquitto.host, mosquitto.port), timeout=5) as plain:
            assert mss(plain) > LAN_MSS
    finally:
        collector.stop()


def test_the_peer_sends_in_lan_segments_too() -> None:
    # The SYN announces the MSS: the broker's side of the connection is held to it as well.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with open_connection(("127.0.0.1", port), 5.0) as client:
            accepted, _ = server.accept()
            with accepted:
                assert 0 < mss(client) <= LAN_MSS
                assert 0 < mss(accepted) <= LAN_MSS


def test_a_refused_connection_raises_the_os_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        open_connection(("127.0.0.1", port), 2.0)
