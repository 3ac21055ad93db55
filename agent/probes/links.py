"""Link path probe: RTT, jitter and loss over several TCP connects per cycle.

A TCP connect to a declared target needs no root (ICMP does, or a sysctl), works
through NAT and firewalls that pass the service, and times the path's round trip
with the SYN/SYN-ACK exchange. A refused or timed-out connect counts as lost.

The round trip is the one the kernel measured, not a clock read around ``await``:
on a busy edge box the event loop may run the probe's continuation tens of
milliseconds after the SYN-ACK arrived (an SNMP decode, a GIL-holding thread, the
CPU shared with other processes), and a clock around the await counts that as path
delay — and its variation as jitter, a false ``link_jitter_high``. Linux records the
SYN → SYN-ACK time when it handles the SYN-ACK (``TCP_INFO``'s ``tcpi_rtt``, in µs;
it is the first and only RTT sample of a connection that carried no data), whatever
the process is doing then. Where ``TCP_INFO`` is missing (not Linux), or the SYN was
sent again (Karn: the kernel's sample would be of the last SYN only, hiding the
retransmission wait), the probe falls back to the clock around the connect.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from statistics import fmean

from agent.config import PathConfig
from contract.wire import LinkReading

Connector = Callable[..., Awaitable[float | None]]
"""Opens and closes one connection to host:port in time, or raises OSError/TimeoutError.
Returns the handshake's round trip in seconds as the kernel measured it, or None when it
cannot tell (the probe then times the call itself)."""

_TCP_INFO = getattr(socket, "TCP_INFO", None)  # Linux only
# struct tcp_info (linux/tcp.h): 8 one-byte fields, then u32s; stable since Linux 2.6.
_U32 = struct.Struct("=I")
_TCPI_RTT_AT = 68  # tcpi_rtt: smoothed RTT in µs (the only sample, for a fresh connection)
_TCPI_TOTAL_RETRANS_AT = 100  # tcpi_total_retrans: counts a resent SYN
_TCP_INFO_LEN = 104


def handshake_rtt_s(sock: socket.socket) -> float | None:
    """The kernel's SYN → SYN-ACK time of a just-connected socket, or None if unknown."""
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    if len(info) < _TCP_INFO_LEN:
        return None
    (rtt_us,) = _U32.unpack_from(info, _TCPI_RTT_AT)
    (retransmitted,) = _U32.unpack_from(info, _TCPI_TOTAL_RETRANS_AT)
    if rtt_us == 0 or retransmitted:
        return None
    return float(rtt_us) / 1e6


async def tcp_connect(
    host: str, port: int, timeout_s: float, source: str | None = None
) -> float | None:
    """Connect to host:port (from ``source``, this path's address) and close at once."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        family, kind, proto, _, address = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setblocking(False)
            if source:
                sock.bind((source, 0))  # source routing sends it down this path
            await loop.sock_connect(sock, address)
            return handshake_rtt_s(sock)


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
                kernel_s = await connect(path.target.host, path.target.port, path.timeout_s)
            else:
                kernel_s = await connect(
                    path.target.host, path.target.port, path.timeout_s, path.source
                )
        except (OSError, TimeoutError) as exc:
            last_error = f"{type(exc).__name__}: {exc}".strip(": ")
            continue
        rtts.append((clock() - started if kernel_s is None else kernel_s) * 1000.0)
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
