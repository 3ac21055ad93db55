"""Link path probe: RTT, jitter and loss over several TCP connects per cycle.

A TCP connect to a declared target needs no root (ICMP does, or a sysctl), works
through NAT and firewalls that pass the service, and times the path's round trip
with the SYN/SYN-ACK exchange. A refused or timed-out connect counts as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from statistics import fmean

from agent.config import PathConfig
from contract.wire import LinkReading

Connector = Callable[..., Awaitable[None]]
"""Opens and closes one connection to host:port in time, or raises OSError/TimeoutError."""


async def tcp_connect(host: str, port: int, timeout_s: float, source: str | None = None) -> None:
    local = (source, 0) if source else None  # this path's address: source routing picks it
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=local), timeout_s
    )
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def collect(
    path: PathConfig,
    *,
    connect: Connector = tcp_connect,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> LinkReading:
    """Probe one path ``path.probes`` times; up when at least one probe got through."""
    rtts: list[float] = []
    last_error = ""
    for attempt in range(path.probes):
        if attempt:
            await sleep(path.spacing_s)
        started = clock()
        try:
            if path.source is None:
                await connect(path.target.host, path.target.port, path.timeout_s)
            else:
                await connect(path.target.host, path.target.port, path.timeout_s, path.source)
        except (OSError, TimeoutError) as exc:
            last_error = f"{type(exc).__name__}: {exc}".strip(": ")
            continue
        rtts.append((clock() - started) * 1000.0)
    loss = 100.0 * (path.probes - len(rtts)) / path.probes
    return LinkReading(
        path=path.path,
        media=path.media,
        provider=path.provider,
        srlg=path.srlg,
        up=bool(rtts),
        rtt_ms=fmean(rtts) if rtts else None,
        jitter_ms=jitter_ms(rtts),
        loss_pct=loss,
        probes_sent=path.probes,
        error=None if rtts else (last_error or "no probe got through")[:500],
    )


def jitter_ms(rtts: list[float]) -> float | None:
    """Mean absolute difference of consecutive RTTs (the RFC 3550 idea, unsmoothed)."""
    if len(rtts) < 2:
        return 0.0 if rtts else None
    return fmean(abs(b - a) for a, b in itertools.pairwise(rtts))
