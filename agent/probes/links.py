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

A path with a ``source`` address is probed from it, and only policy routing (``ip rule
from <source> lookup <the path's table>``) sends those probes down that path: without
it the kernel sends them by the main table's route, down another path, and the path
reads up (another path's RTT) while its own link is dead. Before probing, the probe asks
the kernel which way a packet from the source to the target leaves (``ip route get``):
when that is the main table's way, by an interface that does not hold the source, the
path is not probed and its reading says why (``up`` unknown, never another path's
figures). Where the route cannot be read (no ``ip``), the probe goes as configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from statistics import fmean

import psutil

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


Route = tuple[str, str | None]
"""The way a packet leaves: (interface, gateway or None when on link)."""
RouteOf = Callable[[str, str | None], Awaitable[Route | None]]
"""``route_of(target_ip, source)``: the kernel's way to the target (from the source)."""


IP_ROUTE_TIMEOUT_S = 2.0


async def ip_route(target: str, source: str | None) -> Route | None:
    """``ip route get`` as the kernel answers it; None when it cannot be asked (or it has
    not answered within ``IP_ROUTE_TIMEOUT_S``: the probe goes as configured)."""
    args = ["ip", "-j", "route", "get", target] + (["from", source] if source else [])
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError:  # no ip (not Linux, iproute2 missing)
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), IP_ROUTE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    if proc.returncode != 0:
        return None
    with contextlib.suppress(ValueError, LookupError, TypeError):
        first = json.loads(out)[0]
        return str(first["dev"]), (str(first["gateway"]) if "gateway" in first else None)
    return None


def address_devices() -> Mapping[str, str]:
    """This box's addresses, each with its interface."""
    return {
        str(ipaddress.ip_address(a.address.split("%")[0])): name
        for name, addresses in psutil.net_if_addrs().items()
        for a in addresses
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }


async def wrong_way(
    path: PathConfig,
    *,
    route_of: RouteOf = ip_route,
    devices: Callable[[], Mapping[str, str]] = address_devices,
) -> str | None:
    """Why probes from the path's source would leave down another path, or None."""
    if path.source is None:
        return None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            path.target.host, path.target.port, type=socket.SOCK_STREAM
        )
        target = str(infos[0][4][0])
        source = str(ipaddress.ip_address(path.source))
    except (OSError, ValueError, IndexError):
        return None  # the probe itself says what is wrong
    device = devices().get(source)
    bound, plain = await route_of(target, source), await route_of(target, None)
    if device is None or bound is None or bound != plain or bound[0] == device:
        return None
    via = f" via {bound[1]}" if bound[1] else ""
    return (
        f"not probed: probes from {source} (on {device}) would leave by {bound[0]}{via}, "
        f"the main table's way, not down this path: add policy routing for it "
        f"(ip rule add from {source} lookup <this path's table>)"
    )


async def collect(
    path: PathConfig,
    *,
    connect: Connector = tcp_connect,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    route_of: RouteOf = ip_route,
    devices: Callable[[], Mapping[str, str]] = address_devices,
) -> LinkReading:
    """Probe one path ``path.probes`` times; up when at least one probe got through."""
    why = await wrong_way(path, route_of=route_of, devices=devices)
    if why is not None:
        return LinkReading(
            path=path.path, media=path.media, provider=path.provider, srlg=path.srlg, error=why
        )
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
    """Mean absolute difference of consecutive RTTs (the RFC 3550 idea, unsmoothed);
    unknown below two of them: one round trip has no variation to measure."""
    if len(rtts) < 2:
        return None
    return fmean(abs(b - a) for a, b in itertools.pairwise(rtts))
