"""A link path with real delay and jitter: two namespaces joined by a user-space wire.

    agent ns (kienco-dl-<pid>-a)                      far end ns (kienco-dl-<pid>-b)
      dla 10.124.0.1 ── TUN ══ this process ══ TUN ── dlb 10.124.0.2 (a listening port)

This kernel has no netem (tc's delay/jitter qdisc), so the wire is a TUN device in
each namespace and a child process that reads each IP packet from one and writes
it into the other after the delay chosen for its TCP connection (one delay per
connection, each way: a connection's SYN and SYN-ACK wait alike, so the handshake's
round trip is twice it). The packets, the TCP handshakes and their round trips are
the kernel's own; only the wire is slow. The root namespace is untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import heapq
import itertools
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.netns import Namespace, require_root_and_tools, run

REPO = Path(__file__).resolve().parents[2]
PREFIX = "kienco-dl-"
_OURS = re.compile(rf"^{PREFIX}(\d+)-[ab]$")
AGENT_ADDRESS = "10.124.0.1"
FAR_ADDRESS = "10.124.0.2"

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_TCP = 6

Flow = tuple[tuple[str, int], tuple[str, int]]
"""A TCP connection as (lower endpoint, higher endpoint): the same both ways."""


def _open_tun(name: str) -> int:
    """A TUN device named ``name`` in the calling thread's namespace; its file descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def flow_of(packet: bytes) -> Flow | None:
    """The TCP connection an IPv4 packet belongs to (None for anything else)."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != _TCP:
        return None
    header = (packet[0] & 0x0F) * 4
    if len(packet) < header + 4:
        return None
    source_port, dest_port = struct.unpack_from("!HH", packet, header)
    ends = sorted(
        [
            (socket.inet_ntoa(packet[12:16]), source_port),
            (socket.inet_ntoa(packet[16:20]), dest_port),
        ]
    )
    return ends[0], ends[1]


class Wire:
    """The relay itself: runs in a child process of its own (``python -m
    tests.support.delay_line``), so a test that loads its own process (a busy event
    loop, a thread holding the GIL) does not slow the wire too."""

    def __init__(self, fd_a: int, fd_b: int, delays_ms: Sequence[float]) -> None:
        self._fds = {"a": fd_a, "b": fd_b}
        self._next_delay = itertools.cycle(delays_ms)
        self._delays: dict[Flow, float] = {}
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stop = threading.Event()

    def run_until_stdin_closes(self) -> None:
        threads = [
            threading.Thread(target=self._read, args=("a", "b"), daemon=True),
            threading.Thread(target=self._read, args=("b", "a"), daemon=True),
            threading.Thread(target=self._write, daemon=True),
        ]
        for thread in threads:
            thread.start()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.read()
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in threads:
            thread.join(timeout=5)

    def _delay_s(self, packet: bytes) -> float | None:
        """How long ``packet`` waits on the wire; None: it is lost."""
        flow = flow_of(packet)
        if flow is None:
            return 0.0
        if flow not in self._delays:  # the connection's first packet (its SYN) picks it
            delay_ms = next(self._next_delay)
            self._delays[flow] = abs(delay_ms) / 1000.0
            if delay_ms < 0:  # this connection's first SYN is lost: the kernel sends it again
                return None
        return self._delays[flow]

    def _read(self, source: str, dest: str) -> None:
        fd = self._fds[source]
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            packet = os.read(fd, 65536)
            delay_s = self._delay_s(packet)
            if delay_s is None:
                continue
            due = time.monotonic() + delay_s
            with self._wake:
                heapq.heappush(self._queue, (due, next(self._order), self._fds[dest], packet))
                self._wake.notify()

    def _write(self) -> None:
        while True:
            with self._wake:
                while True:
                    if self._stop.is_set():
                        return
                    now = time.monotonic()
                    if self._queue and self._queue[0][0] <= now:
                        _, _, fd, packet = heapq.heappop(self._queue)
                        break
                    self._wake.wait(self._queue[0][0] - now if self._queue else 0.1)
            os.write(fd, packet)


@dataclass
class DelayLine:
    agent: Namespace
    far: Namespace


def _remove_leftovers() -> None:
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _OURS.match(name)
        pid = int(match.group(1)) if match else None
        if pid is not None and (pid == os.getpid() or not os.path.exists(f"/proc/{pid}")):
            with contextlib.suppress(RuntimeError):
                run("ip", "netns", "delete", name)


@contextlib.contextmanager
def delay_line(delays_ms: Sequence[float]) -> Iterator[DelayLine]:
    """The two namespaces and the wire between them; all of it removed afterwards.

    The n-th TCP connection waits ``delays_ms[n % len(delays_ms)]`` each way; a
    negative delay also loses the connection's first SYN.
    """
    require_root_and_tools()
    if not os.path.exists("/dev/net/tun"):
        pytest.fail("the delay line needs /dev/net/tun: modprobe tun (as root)", pytrace=False)
    _remove_leftovers()
    made: list[Namespace] = []
    fds: list[int] = []
    relay: subprocess.Popen[str] | None = None
    try:
        agent = Namespace(f"{PREFIX}{os.getpid()}-a")
        made.append(agent)
        far = Namespace(f"{PREFIX}{os.getpid()}-b")
        made.append(far)
        for side, namespace, mine, peer in (
            ("a", agent, AGENT_ADDRESS, FAR_ADDRESS),
            ("b", far, FAR_ADDRESS, AGENT_ADDRESS),
        ):
            device = f"dl{side}"
            fds.append(namespace.call(functools.partial(_open_tun, device)))
            namespace.ip("addr", "add", mine, "peer", peer, "dev", device)
            namespace.ip("link", "set", device, "up")
        spec = ",".join(map(str, delays_ms))
        relay = subprocess.Popen(
            [sys.executable, "-m", "tests.support.delay_line", *map(str, fds), spec],
            cwd=REPO,
            pass_fds=fds,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert relay.stdout is not None
        if relay.stdout.readline().strip() != "ready":
            raise RuntimeError("the delay line's relay did not start")
        yield DelayLine(agent, far)
    finally:
        if relay is not None:
            assert relay.stdin is not None
            relay.stdin.close()
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
        for fd in fds:
            os.close(fd)
        for namespace in reversed(made):
            namespace.close()


if __name__ == "__main__":
    fd_a, fd_b, delays = sys.argv[1:4]
    # The wire must keep its own time on a loaded machine (the tests load the CPU on
    # purpose): real-time priority as root; it sleeps between packets.
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    Wire(int(fd_a), int(fd_b), [float(d) for d in delays.split(",")]).run_until_stdin_closes()
