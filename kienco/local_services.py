"""Mosquitto and InfluxDB started on free loopback ports, for the demo, the tests and benchmarks.

Mosquitto runs from the shipped ``firmware-configs/mosquitto/kienco.conf`` (its
queue limits are what keeps QoS 1 messages from being dropped), with only the
listener, file paths and TLS lines replaced. InfluxDB runs from a generated
config with every port on loopback and its files in the given folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from plumbing.data import firmware_configs

SHIPPED_CONF = firmware_configs() / "mosquitto" / "kienco.conf"
SHIPPED_ACL = firmware_configs() / "mosquitto" / "kienco.acl"
_REPLACED = (
    "listener",
    "cafile",
    "certfile",
    "keyfile",
    "password_file",
    "acl_file",
    "persistence_location",
    "allow_anonymous",
)


class ServiceError(RuntimeError):
    """A local service is missing or would not start; the message says how to fix it."""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now (TCP by default; ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str | None:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def wait_for_tcp(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Mosquitto:
    """A Mosquitto that can be stopped and started again on the same port and store."""

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None) -> None:
        binary = find_binary("mosquitto")
        if binary is None:
            raise ServiceError(
                "Mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients"
            )
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.users = users
        self.process: subprocess.Popen[bytes] | None = None
        self.conf = self._write_config()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> Path:
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
            # As root Mosquitto drops to user "mosquitto", which cannot read private tmp dirs.
            "user root",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            passwd_tool = find_binary("mosquitto_passwd") or "mosquitto_passwd"
            for user, password in self.users.items():
                subprocess.run([passwd_tool, "-b", str(passwd), user, password], check=True)
            acl = self.workdir / "acl"
            shutil.copy(SHIPPED_ACL, acl)
            lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        log_path = self.workdir / "mosquitto.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=log
            )
        try:
            wait_for_tcp(self.port)
        except TimeoutError:
            self.stop()
            raise ServiceError(f"mosquitto did not start: {log_path.read_text()}") from None

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


INFLUXD_CONF = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false

[ifql]
  enabled = false

[logging]
  level = "error"
  suppress-logo = true

[continuous_queries]
  enabled = false
"""


@dataclass
class Influxd:
    """A running ``influxd`` (InfluxDB 1.x) serving the v1 API on loopback."""

    url: str
    root: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, root: Path, *, timeout_s: float = 30.0) -> Influxd:
        binary = find_binary("influxd")
        if binary is None:
            raise ServiceError("InfluxDB is not installed: apt-get install -y influxdb")
        root.mkdir(parents=True, exist_ok=True)
        http_port, rpc_port = free_port(), free_port()
        config = root / "influxdb.conf"
        config.write_text(INFLUXD_CONF.format(root=root, http_port=http_port, rpc_port=rpc_port))
        log = root / "influxd.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [binary, "-config", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceError(f"influxd exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/ping", timeout=1.0).status_code == 204:
                    return cls(url=url, root=root, process=process)
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        _stop(process)
        raise ServiceError(f"influxd did not answer /ping within {timeout_s} s: {log.read_text()}")

    def stop(self) -> None:
        _stop(self.process)
