"""A busy event loop is not network jitter; a jittery path still is.

The link probe takes each connect's round trip from the kernel (TCP_INFO), so a
loop that runs the probe late — a CPU-bound coroutine, a thread holding the GIL —
changes nothing, while a path whose delay varies (a real wire in network
namespaces, tests/support/delay_line.py) reads as jitter. The same connects timed
with a clock around the ``await`` show what the load would have done.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest

from agent.config import PathConfig, TcpTarget
from agent.probes import links
from contract.wire import LinkReading
from rules.policy import LinkQualityPolicy
from tests.support.delay_line import FAR_ADDRESS, DelayLine, delay_line

LIMITS = LinkQualityPolicy()  # the shipped thresholds: 100 ms RTT, 30 ms jitter


def _path(host: str, port: int, probes: int = 8) -> PathConfig:
    return PathConfig(
        path="fibre-a",
        media="fibre",
        target=TcpTarget(host=host, port=port),
        probes=probes,
        spacing_s=0.02,
        timeout_s=3.0,
    )


@contextmanager
def gil_hog() -> Iterator[None]:
    """A thread that keeps the GIL busy (pure Python), as a decoding thread would."""
    done = threading.Event()

    def spin() -> None:
        while not done.is_set():
            sum(range(10_000))

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@asynccontextmanager
async def loop_hog(seed: int = 7) -> AsyncIterator[None]:
    """A coroutine that holds the event loop for 5–150 ms at a time (an SNMP decode, a
    pydantic validation of a big document), yielding only in between."""
    done = asyncio.Event()
    slices = random.Random(seed)

    async def spin() -> None:
        while not done.is_set():
            until = time.perf_counter() + slices.uniform(0.005, 0.15)
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    task = asyncio.create_task(spin())
    try:
        yield
    finally:
        done.set()
        await task


def clocked(wall_ms: list[float]) -> links.Connector:
    """The real connect, also timed around the await (what the probe used to measure)."""

    async def connect(host: str, port: int, timeout_s: float) -> float | None:
        started = time.perf_counter()
        kernel_s = await links.tcp_connect(host, port, timeout_s)
        wall_ms.append((time.perf_counter() - started) * 1000.0)
        return kernel_s

    return connect


async def probe_loaded(path: PathConfig) -> tuple[LinkReading, list[float]]:
    wall_ms: list[float] = []
    with gil_hog():
        async with loop_hog():
            await asyncio.sleep(0.05)  # the hog is running
            reading = await links.collect(path, connect=clocked(wall_ms))
    return reading, wall_ms


def _jitter(values: list[float]) -> float:
    jitter = links.jitter_ms(values)
    assert jitter is not None
    return jitter


async def test_a_loaded_event_loop_is_not_jitter_on_loopback() -> None:
    with socket.socket() as listener:  # the kernel answers the handshakes; nobody accepts
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        reading, wall_ms = await probe_loaded(_path("127.0.0.1", listener.getsockname()[1]))
    # The load was real: timed by a clock around the await, these connects read as a bad path.
    assert _jitter(wall_ms) > LIMITS.max_jitter_ms, wall_ms
    assert reading.up and reading.loss_pct == 0.0
    assert reading.jitter_ms is not None and reading.jitter_ms < 1.0  # loopback: microseconds
    assert reading.rtt_ms is not None and reading.rtt_ms < 1.0


def _probe_in_agent_ns(line: DelayLine, port: int, *, loaded: bool) -> LinkReading:
    async def probe() -> LinkReading:
        if loaded:
            reading, wall_ms = await probe_loaded(_path(FAR_ADDRESS, port))
            assert _jitter(wall_ms) > LIMITS.max_jitter_ms, wall_ms  # the load was real
            return reading
        return await links.collect(_path(FAR_ADDRESS, port))

    return line.agent.call(lambda: asyncio.run(probe()))


@contextmanager
def wire(delays_ms: list[float]) -> Iterator[tuple[DelayLine, int]]:
    """The delay line with a listening port at its far end."""
    with delay_line(delays_ms) as line:

        def listen() -> socket.socket:
            listener = socket.socket()
            listener.bind((FAR_ADDRESS, 0))
            listener.listen(64)
            return listener

        listener = line.far.call(listen)
        try:
            yield line, listener.getsockname()[1]
        finally:
            listener.close()


@pytest.mark.timeout(60)
def test_a_steady_path_reads_its_delay_without_jitter_under_load() -> None:
    with wire([20.0]) as (line, port):  # 20 ms each way: a 40 ms round trip
        reading = _probe_in_agent_ns(line, port, loaded=True)
    assert reading.up and reading.loss_pct == 0.0, reading
    assert reading.rtt_ms is not None and 40.0 <= reading.rtt_ms < 40.0 + 15.0, reading
    assert reading.jitter_ms is not None and reading.jitter_ms < LIMITS.max_jitter_ms / 3, reading


@pytest.mark.timeout(60)
def test_a_jittery_path_still_reads_as_jitter() -> None:
    # Round trips of 10 and 90 ms, one after the other.
    with wire([5.0, 45.0]) as (line, port):
        reading = _probe_in_agent_ns(line, port, loaded=False)
    assert reading.up and reading.loss_pct == 0.0, reading
    assert reading.jitter_ms is not None and reading.jitter_ms > LIMITS.max_jitter_ms, reading
    assert 80.0 - 15.0 < reading.jitter_ms < 80.0 + 15.0, reading
    assert reading.rtt_ms is not None and 50.0 <= reading.rtt_ms < 50.0 + 15.0, reading


@pytest.mark.timeout(60)
def test_a_resent_syn_counts_its_wait() -> None:
    """The kernel's RTT of a resent SYN is the last SYN's alone (Karn), hiding the second
    lost waiting for it: the probe reads the whole connect then, as the clock saw it."""
    with wire([-5.0]) as (line, port):  # each connection's first SYN is lost
        path = _path(FAR_ADDRESS, port, probes=2)
        reading = line.agent.call(lambda: asyncio.run(links.collect(path)))
    assert reading.up and reading.loss_pct == 0.0, reading
    # Linux resends a SYN after 1 s; 10 ms of wire on top.
    assert reading.rtt_ms is not None and 1000.0 <= reading.rtt_ms < 1500.0, reading
