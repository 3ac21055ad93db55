"""The national topology's brokers, started from the shipped files on loopback ports.

A provincial broker runs ``firmware-configs/mosquitto/provincial-hp.conf`` with ``hp``
replaced by its province, as the file tells an operator to do, and its bridge's
``address`` and ``remote_password`` pointed at the test's central broker; its bridge is
plain TCP unless given the CA to check the centre with (``bridge_cafile``: the shipped
line, with a throwaway CA's path). A central broker runs ``central-a.conf`` with
``central-a.acl``. Either listener serves TLS when given ``tls`` (its ``cafile``,
``certfile``, ``keyfile``). Only the listener, the paths and those settings change, and
the options the files ship commented out that a test ``enable``s, where they stand (the
bridge's client certificate, ``require_certificate``), as an operator enables them.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

import httpx
import pytest
import yaml

from kienco.local_services import Mosquitto, ServerTls, ServiceError, free_port
from plumbing.data import firmware_configs
from tests.support.pki import KeyPair

SHIPPED = firmware_configs() / "mosquitto"
PROVINCIAL = SHIPPED / "provincial-hp.conf"
CENTRAL = SHIPPED / "central-a.conf"
CENTRAL_ACL = SHIPPED / "central-a.acl"


def enabled(conf: Path, options: Collection[str]) -> list[str]:
    """``conf``'s lines with the commented-out line ``# <option> …`` of each of ``options``
    made live where it stands, as an operator enables it; an option the file does not
    ship commented out exactly once fails the test."""
    lines = conf.read_text().splitlines()
    for option in options:
        found = [i for i, line in enumerate(lines) if re.match(rf"# {option}( |$)", line)]
        if len(found) != 1:
            pytest.fail(f"{conf.name}: {len(found)} lines '# {option} …', expected one")
        lines[found[0]] = lines[found[0]].removeprefix("# ")
    return lines


def provincial_conf(province: str, into: Path, enable: Collection[str] = ()) -> Path:
    """The shipped provincial config for ``province``: every ``hp`` outside comments
    replaced, the options in ``enable`` enabled."""
    lines = [
        line if line.startswith("#") else re.sub(r"\bhp\b", province, line)
        for line in enabled(PROVINCIAL, enable)
    ]
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"provincial-{province}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def bridge_password(province: str) -> str:
    return f"bridge-{province}-secret"


def central_broker(
    workdir: Path,
    provinces: list[str],
    collectors: dict[str, str],
    *,
    instance: str = "a",
    tls: ServerTls | None = None,
    enable: Collection[str] = (),
) -> Mosquitto:
    """central-a.conf and its ACL; accounts for the provinces' bridges and the collectors;
    the options in ``enable`` enabled (``require_certificate``).

    Instance "b" gets central-a.acl with its collectors named collector-b…, as an
    operator makes central-b.acl from the shipped one.
    """
    users = {f"bridge-{p}": bridge_password(p) for p in provinces} | collectors
    workdir.mkdir(parents=True, exist_ok=True)
    acl, conf = CENTRAL_ACL, CENTRAL
    if instance != "a":
        acl = workdir / f"central-{instance}.acl"
        acl.write_text(CENTRAL_ACL.read_text().replace("collector-a", f"collector-{instance}"))
    if enable:
        conf = workdir / CENTRAL.name
        conf.write_text("\n".join(enabled(CENTRAL, enable)) + "\n")
    try:
        return Mosquitto(workdir, users=users, conf=conf, acl=acl, tls=tls)
    except ServiceError as exc:
        pytest.fail(str(exc))


def provincial_broker(
    workdir: Path,
    province: str,
    *,
    centre_port: int,
    agents: dict[str, str] | None = None,
    tls: ServerTls | None = None,
    bridge_cafile: Path | None = None,
    centre_host: str = "127.0.0.1",
    bridge_certificate: KeyPair | None = None,
    enable: Collection[str] = (),
) -> Mosquitto:
    """provincial-hp.conf made ``province``'s, bridged to ``centre_host``:``centre_port``
    (the central broker's port, or a relay's standing for the backhaul): over TLS checked
    with ``bridge_cafile`` (the shipped line, another path), or plain TCP without it;
    with ``bridge_certificate``, the shipped ``bridge_certfile``/``bridge_keyfile`` lines
    enabled with its files. ``enable``: more options enabled (``require_certificate``)."""
    settings: dict[str, str | None] = {
        "address": f"{centre_host}:{centre_port}",
        "remote_password": bridge_password(province),
        # The shipped line with the test's CA, or none: a plain TCP bridge on loopback.
        "bridge_cafile": None if bridge_cafile is None else str(bridge_cafile),
        # Seconds, not the shipped 2-30 s: a test waits for the bridge's return.
        "restart_timeout": "1 2",
        # Its counts for the centre's collector every second, not every 10 s.
        "sys_interval": "1",
    }
    if bridge_certificate is not None:
        enable = [*enable, "bridge_certfile", "bridge_keyfile"]
        settings["bridge_certfile"] = str(bridge_certificate.cert)
        settings["bridge_keyfile"] = str(bridge_certificate.key)
    try:
        return Mosquitto(
            workdir,
            users=agents or {},
            conf=provincial_conf(province, workdir, enable),
            settings=settings,
            tls=tls,
        )
    except ServiceError as exc:
        pytest.fail(str(exc))


SHIPPED_SHARD = firmware_configs() / "collector-shard.yaml"


class Shard:
    """A collector shard, ``kienco collector run``, from the shipped collector-shard.yaml
    with only its addresses, secrets and paths changed; killed and started again at will."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        provinces: list[str],
        *,
        broker_port: int,
        password: str,
        influx_url: str,
        database: str,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.workdir = workdir
        self.http_port = free_port()
        (workdir / "mqtt.password").write_text(password)
        config = yaml.safe_load(SHIPPED_SHARD.read_text())
        config["provinces"] = provinces
        config["broker"] |= {
            "url": f"mqtt://127.0.0.1:{broker_port}",
            "username": f"collector-{name}",
            "password": {"file": str(workdir / "mqtt.password")},
            "client_id": f"kienco-collector-{name}",
        }
        del config["broker"]["ca_file"]  # the loopback brokers here speak plain MQTT
        del config["influx"]["ca_file"]  # the test's InfluxDB speaks plain http on loopback
        (workdir / "influx.password").write_text("unused")  # the test's InfluxDB has no auth
        config["influx"] |= {
            "url": influx_url,
            "database": database,
            "password": {"file": str(workdir / "influx.password")},
        }
        config["data_dir"] = str(workdir / "data")
        config["inventory"] = None
        config["http"] = {"host": "127.0.0.1", "port": self.http_port, "anonymous_read": True}
        self.config = workdir / f"collector-{name}.yaml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = workdir / "collector.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 60.0) -> None:
        command = [
            sys.executable,
            "-m",
            "kienco.cli",
            "collector",
            "run",
            "--config",
            str(self.config),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"shard {self.name} exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        pytest.fail(
            f"shard {self.name} not healthy in {timeout_s} s: {self.log.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL: nothing flushed, nothing acknowledged that was not durable."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def sites(self) -> set[str]:
        """The sites this shard judges (its readiness API)."""
        body = httpx.get(f"{self.url}/api/v1/readiness", timeout=10).json()
        return {site["site"] for site in body["sites"]}
