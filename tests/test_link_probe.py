"""Link path probe on real loopback sockets, and its arithmetic with an injected connector."""

from __future__ import annotations

import asyncio
import socket

import pytest

from agent.config import PathConfig, TcpTarget
from agent.probes import links


def _path(port: int, probes: int = 4) -> PathConfig:
    return PathConfig(
        path="fibre-a",
        media="fibre",
        provider="vnpt",
        srlg=("duct-1",),
        target=TcpTarget(host="127.0.0.1", port=port),
        probes=probes,
        spacing_s=0.01,
        timeout_s=0.5,
    )


async def test_path_to_a_listening_port_is_up() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reading = await links.collect(_path(port))
    assert reading.up is True
    assert reading.loss_pct == 0.0
    assert reading.rtt_ms is not None and 0 < reading.rtt_ms < 500
    assert reading.jitter_ms is not None and reading.jitter_ms >= 0
    assert reading.srlg == ("duct-1",) and reading.error is None


async def test_path_with_nothing_listening_is_down_with_the_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connects are refused
        reading = await links.collect(_path(port, probes=3))
    assert reading.up is False
    assert reading.loss_pct == 100.0
    assert reading.rtt_ms is None and reading.jitter_ms is None
    assert reading.error and "ConnectionRefused" in reading.error


@pytest.mark.parametrize(
    ("outcomes", "loss", "rtt", "jitter"),
    [
        ([10, 20, 10, 20], 0.0, 15.0, 10.0),
        ([10, None, 30, None], 50.0, 20.0, 20.0),
        ([None, None, None, 40], 75.0, 40.0, 0.0),
    ],
    ids=["steady", "half-lost", "one-through"],
)
async def test_loss_rtt_jitter_arithmetic(
    outcomes: list[int | None], loss: float, rtt: float, jitter: float
) -> None:
    clock_ms = [0.0]
    queue = list(outcomes)

    async def connect(host: str, port: int, timeout_s: float) -> None:
        took = queue.pop(0)
        if took is None:
            raise TimeoutError("timed out")
        clock_ms[0] += took

    async def no_sleep(_: float) -> None:
        return None

    reading = await links.collect(
        _path(1), connect=connect, clock=lambda: clock_ms[0] / 1000, sleep=no_sleep
    )
    assert reading.loss_pct == loss
    assert reading.rtt_ms == pytest.approx(rtt)
    assert reading.jitter_ms == pytest.approx(jitter)
