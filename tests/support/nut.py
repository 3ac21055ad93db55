"""pytest plugin: a real NUT ``upsd`` with the ``dummy-ups`` driver on a free loopback port.

It runs from the shipped ``firmware-configs/nut/`` (ups.conf, upsd.conf,
meeting-ups.dev) with only the LISTEN line, the state folder and the poll
interval replaced. ``/lib/nut/upsd`` and ``/lib/nut/dummy-ups`` are started
directly: Debian's ``/usr/sbin/upsd`` wrapper would read /etc/nut/nut.conf.
dummy-ups re-reads its .dev file when the file's modification time changes,
every ``pollinterval`` (1 s here), so a test changes the UPS by rewriting it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.nut_client import NutError, read_vars
from kienco.devices_serve import die_with_parent
from kienco.local_services import free_port, wait_for_tcp

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "firmware-configs" / "nut"
UPS = "meeting-ups"
INSTALL = "NUT is not installed: apt-get install -y nut-server"
_DIRS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")
# If pytest is killed, upsd and the driver go with it instead of holding the port.
ORPHANLESS: dict[str, Any] = {"preexec_fn": die_with_parent}


def nut_binary(name: str) -> str:
    """The real program (not Debian's nut.conf wrapper), or a failed test saying how to install."""
    for folder in _DIRS:
        if os.access(f"{folder}/{name}", os.X_OK):
            return f"{folder}/{name}"
    found = shutil.which(name)
    if found is None or found.startswith("/usr/sbin/"):
        pytest.fail(f"{INSTALL} ({name} not found in {', '.join(_DIRS)})")
    return found


def dev_values(path: Path) -> dict[str, str]:
    """The variables of a dummy-ups .dev file, name -> value."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(":")
            values[name.strip()] = value.strip()
    return values


def shipped_values() -> dict[str, str]:
    """The variables of the shipped meeting-ups.dev, name -> value."""
    return dev_values(SHIPPED / f"{UPS}.dev")


@dataclass
class Upsd:
    """A running upsd + dummy-ups; ``write`` changes what the UPS reports."""

    host: str
    port: int
    ups: str
    dev_file: Path
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _mtime_ns: int = 0
    _written: set[str] = field(default_factory=set)

    def write(self, values: Mapping[str, object]) -> None:
        """Replace the whole .dev file; the driver serves it within ~1 s."""
        # Re-reading only adds and updates; "" removes a variable (a bare empty value
        # makes dummy-ups 2.8 take a stray token instead).
        gone = {name: '""' for name in self._written - values.keys()}
        self._written = set(values)
        text = "".join(f"{name}: {value}\n" for name, value in {**values, **gone}.items())
        tmp = self.dev_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.dev_file)
        # A strictly later mtime, a whole second on: two writes within one
        # second must still look changed to a driver comparing seconds.
        self._mtime_ns = max(time.time_ns(), self._mtime_ns + 1_000_000_000)
        os.utime(self.dev_file, ns=(self._mtime_ns, self._mtime_ns))

    async def wait_until(
        self, check: Callable[[dict[str, str]], bool], timeout_s: float = 10.0
    ) -> dict[str, str]:
        """Poll upsd until ``check(variables)`` holds; fail the test with what it last saw."""
        deadline = time.monotonic() + timeout_s
        seen: dict[str, str] | str = "nothing"
        while time.monotonic() < deadline:
            try:
                seen = await read_vars(self.host, self.port, self.ups, timeout_s=2)
            except NutError as exc:
                seen = str(exc)
            if isinstance(seen, dict) and check(seen):
                return seen
            await asyncio.sleep(0.2)
        pytest.fail(f"upsd did not show the change within {timeout_s} s; last saw {seen}")

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)


def _start(workdir: Path, recordings: Mapping[str, Path] | None = None) -> Upsd:
    """upsd with the shipped meeting-ups, or with one dummy-ups per recording (name -> .dev)."""
    upsd, driver = nut_binary("upsd"), nut_binary("dummy-ups")
    conf, state = workdir / "conf", workdir / "state"
    shutil.copytree(SHIPPED, conf)
    state.mkdir(mode=0o700)
    port = free_port()
    (conf / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    if recordings:
        sections = [
            f"[{name}]\n    driver = dummy-ups\n    port = {name}.dev\n"
            f'    desc = "recording {path.name}"\n    pollinterval = 1\n'
            for name, path in recordings.items()
        ]
        (conf / "ups.conf").write_text("maxretry = 3\n\n" + "\n".join(sections))
        for name, path in recordings.items():
            shutil.copyfile(path, conf / f"{name}.dev")
    else:
        ups_conf = (conf / "ups.conf").read_text().replace("pollinterval = 2", "pollinterval = 1")
        (conf / "ups.conf").write_text(ups_conf)
    names = list(recordings or [UPS])
    env = {**os.environ, "NUT_CONFPATH": str(conf), "NUT_STATEPATH": str(state)}
    # As root both would drop to user "nut", who cannot read a private temp folder.
    user = ["-u", "root"] if os.geteuid() == 0 else []
    server = Upsd("127.0.0.1", port, names[0], conf / f"{names[0]}.dev", workdir)
    for name in names:
        with (workdir / f"dummy-ups-{name}.log").open("wb") as log:
            server.processes.append(
                subprocess.Popen(
                    [driver, "-a", name, "-F", *user], stdout=log, stderr=log, env=env, **ORPHANLESS
                )
            )
        driver_socket = state / f"dummy-ups-{name}"
        _wait_for(driver_socket.exists, server, f"dummy-ups socket for {name}")
    with (workdir / "upsd.log").open("wb") as log:
        server.processes.append(
            subprocess.Popen([upsd, "-F", *user], stdout=log, stderr=log, env=env, **ORPHANLESS)
        )
    try:
        wait_for_tcp(port, timeout_s=10)
    except TimeoutError:
        _stop(server)
        pytest.fail(f"upsd did not listen on 127.0.0.1:{port}:\n{server.log_tail()}")
    return server


def _wait_for(ready: Callable[[], bool], server: Upsd, what: str, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not ready():
        if time.monotonic() > deadline or any(p.poll() is not None for p in server.processes):
            _stop(server)
            pytest.fail(f"NUT did not start ({what}):\n{server.log_tail()}")
        time.sleep(0.05)


def _stop(server: Upsd) -> None:
    for process in reversed(server.processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _serving(server: Upsd, values: Mapping[str, str], ups: str | None = None) -> bool:
    try:
        seen = asyncio.run(read_vars(server.host, server.port, ups or server.ups, timeout_s=2))
    except NutError:
        return False
    return all(seen.get(k) == v for k, v in values.items())


@pytest.fixture(scope="session")
def nut_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upsd]:
    """upsd + dummy-ups serving ``meeting-ups`` (the shipped .dev) on 127.0.0.1:<free port>."""
    server = _start(tmp_path_factory.mktemp("nut"))
    expected = shipped_values()
    _wait_for(lambda: _serving(server, expected), server, "serving meeting-ups.dev", 15)
    try:
        yield server
    finally:
        _stop(server)


@pytest.fixture
async def nut_ups(nut_server: Upsd) -> Upsd:
    """The shared upsd, put back to the shipped UPS on mains before the test."""
    expected = shipped_values()
    nut_server.write(expected)
    await nut_server.wait_until(lambda seen: all(seen.get(k) == v for k, v in expected.items()))
    return nut_server


def serve_recordings(workdir: Path, recordings: Mapping[str, Path]) -> Upsd:
    """upsd serving each recording (name -> dummy-ups .dev file) as UPS ``name``; stop it
    with ``stop(server)``."""
    server = _start(workdir, recordings)
    for name, path in recordings.items():
        expected = dev_values(path)
        serving = functools.partial(_serving, server, expected, name)
        _wait_for(serving, server, f"serving {path.name}", 15)
    return server


def stop(server: Upsd) -> None:
    """Stop upsd and its drivers."""
    _stop(server)
