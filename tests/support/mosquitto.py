"""A real Mosquitto on a free loopback port, configured from firmware-configs/mosquitto/."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_for_tcp

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO / "firmware-configs" / "mosquitto" / "kienco.conf"
SHIPPED_ACL = REPO / "firmware-configs" / "mosquitto" / "kienco.acl"
_REPLACED = ("listener", "cafile", "certfile", "keyfile", "password_file", "acl_file",
             "persistence_location", "allow_anonymous")


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if not found:
        pytest.fail("Mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients")
    return found


class Broker:
    """A Mosquitto process that can be stopped and started again on the same port and store."""

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None) -> None:
        self.binary = _mosquitto_binary()
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.users = users
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> None:
        lines = [
            line
            for line in SHIPPED_CONF.read_text().splitlines()
            if line.split(" ", 1)[0] not in _REPLACED
        ]
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        lines += [
            f"listener {self.port} 127.0.0.1",
            f"persistence_location {self.workdir / 'data'}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            # As root Mosquitto drops to user "mosquitto", which cannot read pytest's tmp dirs.
            "user root",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwd), user, password], check=True
                )
            acl = self.workdir / "acl"
            shutil.copy(SHIPPED_ACL, acl)
            lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=log, stderr=log
        )
        try:
            wait_for_tcp(self.port)
        except TimeoutError:
            self.stop()
            pytest.fail(f"mosquitto did not start: {(self.workdir / 'mosquitto.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_for_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for_s)
        self.start()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A shared anonymous broker with the shipped tuning; tests use their own topics."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of one's own, for tests that stop and restart it."""
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker with passwords and the shipped per-site ACL."""
    users = {"collector": "collector-secret", "hp-bts-001": "s1", "qn-bts-002": "s2"}
    broker = Broker(tmp_path / "mosquitto-acl", users=users)
    broker.start()
    yield broker
    broker.stop()
