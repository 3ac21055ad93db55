"""Two real link paths between two network namespaces the tests make, and ways to break them.

    agent ns (kienco-lp-<pid>-c)                 far end ns (kienco-lp-<pid>-s)
      pa 10.123.1.1/30  ===== veth, path a =====  sa 10.123.1.2/30
      pb 10.123.2.1/30  ===== veth, path b =====  sb 10.123.2.2/30
                                                  lo 10.123.0.1/32 (the "collector")

The agent reaches the collector's address over path a by default, and over
path b when its source is 10.123.2.1 (a source rule, as on a multi-WAN box).
Everything lives in the two namespaces: the root namespace gets no address,
route or nftables rule, and the addresses exist nowhere else. Python code runs
inside a namespace on a thread that entered it (``setns`` is per thread);
a socket keeps the namespace it was made in.

A path is cut by an nftables table in the far end that drops everything
arriving on the path's veth, and made thin by tc's token-bucket shaper (tbf,
part of iproute2) on both of its ends; netem is not available.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pytest

T = TypeVar("T")

PREFIX = "kienco-lp-"
_OURS = re.compile(rf"^{PREFIX}(\d+)-[cs]$")
_CLONE_NEWNET = 0x40000000
TABLE = "kienco_test"
INSTALL = "apt-get install -y iproute2 nftables"

PATHS = {
    "a": ("pa", "sa", "10.123.1.1", "10.123.1.2"),
    "b": ("pb", "sb", "10.123.2.1", "10.123.2.2"),
}
"""path -> (agent-side veth, far-side veth, agent address, far-end address)."""
COLLECTOR = "10.123.0.1"


def require_root_and_tools() -> None:
    """Fail (never skip) with what to do: CI runs these as root with iproute2 and nftables."""
    missing = [tool for tool in ("ip", "tc", "nft") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"link-path tests need {' and '.join(missing)}: {INSTALL}", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail(
            "link-path tests need root (network namespaces, veth, nftables); "
            "run them as root, as CI does",
            pytrace=False,
        )


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def remove_leftovers() -> list[str]:
    """Delete namespaces an earlier run left behind (its process is gone, or its pid is
    ours now); never those of a run still going."""
    removed = []
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _OURS.match(name)
        pid = int(match.group(1)) if match else None
        if pid is not None and (pid == os.getpid() or not os.path.exists(f"/proc/{pid}")):
            with contextlib.suppress(RuntimeError):
                run("ip", "netns", "delete", name)
                removed.append(name)
    return removed


def _enter(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Namespace:
    """A network namespace and a worker thread living in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        run("ip", "netns", "add", name)
        self.ip("link", "set", "lo", "up")
        self._worker = ThreadPoolExecutor(1, f"netns-{name}", initializer=_enter, initargs=(name,))

    def ip(self, *args: str) -> str:
        return run("ip", "-n", self.name, *args)

    def tc(self, *args: str) -> str:
        return run("ip", "netns", "exec", self.name, "tc", *args)

    def nft(self, ruleset: str) -> None:
        run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=ruleset)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread inside the namespace (sockets it makes stay there)."""
        return self._worker.submit(fn).result()

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        with contextlib.suppress(RuntimeError):
            run("ip", "netns", "delete", self.name)


@dataclass
class TwoPaths:
    agent: Namespace
    far: Namespace

    def address(self, path: str) -> str:
        """The far end's own address on ``path`` (the path's probe target)."""
        return PATHS[path][3]

    def source(self, path: str) -> str:
        """The agent's address on ``path`` (bind to it to use that path)."""
        return PATHS[path][2]

    def cut(self, path: str) -> None:
        """Drop everything that arrives over ``path``, whatever its address."""
        self._rules(f'iifname "{PATHS[path][1]}" drop')

    def throttle(self, path: str, kbit_per_s: int) -> None:
        """Shape ``path`` to ``kbit_per_s`` each way, with a queue: a thin link (tc's tbf)."""
        mine, theirs = PATHS[path][:2]
        for namespace, device in ((self.agent, mine), (self.far, theirs)):
            shape = f"qdisc replace dev {device} root tbf rate {kbit_per_s}kbit burst 16kb"
            namespace.tc(*shape.split(), "latency", "300ms")

    def mend(self) -> None:
        """Remove every rule and shaper: both paths work again."""
        with contextlib.suppress(RuntimeError):
            self.far.nft(f"delete table inet {TABLE}\n")
        for mine, theirs, *_ in PATHS.values():
            for namespace, device in ((self.agent, mine), (self.far, theirs)):
                with contextlib.suppress(RuntimeError):
                    namespace.tc("qdisc", "del", "dev", device, "root")

    def _rules(self, inbound: str) -> None:
        self.mend()
        self.far.nft(
            f"table inet {TABLE} {{\n"
            f"  chain input {{ type filter hook input priority 0; {inbound}; }}\n"
            "}\n"
        )


@contextlib.contextmanager
def two_paths() -> Iterator[TwoPaths]:
    """Make the two namespaces and both paths; tear all of it down afterwards."""
    require_root_and_tools()
    remove_leftovers()
    made: list[Namespace] = []
    try:
        agent = Namespace(f"{PREFIX}{os.getpid()}-c")
        made.append(agent)
        far = Namespace(f"{PREFIX}{os.getpid()}-s")
        made.append(far)
        for path, (mine, theirs, source, target) in PATHS.items():
            agent.ip("link", "add", mine, "type", "veth", "peer", "name", theirs, "netns", far.name)
            agent.ip("addr", "add", f"{source}/30", "dev", mine)
            far.ip("addr", "add", f"{target}/30", "dev", theirs)
            agent.ip("link", "set", mine, "up")
            far.ip("link", "set", theirs, "up")
            table = str(100 + ord(path))
            agent.ip("rule", "add", "from", source, "lookup", table, "priority", table)
            agent.ip("route", "add", f"{COLLECTOR}/32", "via", target, "table", table)
        far.ip("addr", "add", f"{COLLECTOR}/32", "dev", "lo")
        agent.ip("route", "add", f"{COLLECTOR}/32", "via", PATHS["a"][3])
        yield TwoPaths(agent=agent, far=far)
    finally:
        for namespace in reversed(made):
            namespace.close()  # deleting a namespace deletes its veths and nftables rules
