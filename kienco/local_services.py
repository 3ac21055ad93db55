"""Mosquitto and InfluxDB started on free loopback ports, for the demo, the tests and benchmarks.

Mosquitto runs from a shipped config (``firmware-configs/mosquitto/kienco.conf`` by
default, or a provincial or central one: its queue limits are what keeps QoS 1
messages from being dropped), with only the listener, file paths and TLS lines
replaced, and any other setting the caller names (a bridge's address, its password).
InfluxDB runs from a generated config with every port on loopback and its files in the
given folder, or from the shipped ``firmware-configs/influxdb/influxdb.conf`` as it is,
with only its folders and ports moved (``INFLUXDB_*`` environment overrides); either
serves HTTPS when given the TLS files (``ServerTls``), as the shipped file's comments say.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from kienco.mosquitto_passwd import hash_password, write_password_file
from plumbing.data import firmware_configs
from plumbing.tls import client_context

SHIPPED_CONF = firmware_configs() / "mosquitto" / "kienco.conf"
SHIPPED_INFLUXDB_CONF = firmware_configs() / "influxdb" / "influxdb.conf"
SHIPPED_INDEX_SETTINGS = ("index-version", "max-series-per-database", "max-values-per-tag")


def shipped_influxdb_data() -> dict[str, str]:
    """The shipped influxdb.conf's index and its limits, as ``Influxd.start(data=...)`` takes
    them: what a benchmark at the national cardinality must run with (the stock limits
    refuse the sites beyond 100 000 values of the ``site`` tag)."""
    data = tomllib.loads(SHIPPED_INFLUXDB_CONF.read_text())["data"]
    return {key: json.dumps(data[key]) for key in SHIPPED_INDEX_SETTINGS}


SHIPPED_ACL = firmware_configs() / "mosquitto" / "kienco.acl"
_REPLACED = (
    "listener",
    "password_file",
    "acl_file",
    "persistence_location",
    "allow_anonymous",
)
# The listener's TLS lines: kept where the shipped file has them (they belong to the
# listener line above them), their files replaced; dropped for a plain listener.
_TLS = ("cafile", "certfile", "keyfile", "require_certificate")


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


@dataclass(frozen=True)
class ServerTls:
    """The TLS files of a broker's listener; ``require_certificate``: clients need one too
    (as they do where the file itself says ``require_certificate true``)."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


class Mosquitto:
    """A Mosquitto that can be stopped and started again on the same port and store.

    ``conf`` is the shipped file it runs from; ``settings`` replace the value of a line
    in place (a bridge's ``address``), or drop it (``None``); ``tls`` serves the
    listener over TLS with those files, in the file's own ``cafile``/``certfile``/
    ``keyfile`` lines (added after the last line where it has none); its
    ``require_certificate`` line stays as it is.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        conf: Path = SHIPPED_CONF,
        acl: Path = SHIPPED_ACL,
        settings: Mapping[str, str | None] | None = None,
        tls: ServerTls | None = None,
    ) -> None:
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
        self.shipped_conf = conf
        self.shipped_acl = acl
        self.settings = dict(settings or {})
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.conf = self._write_config()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def _shipped_lines(self) -> list[str]:
        lines: list[str] = []
        for line in self.shipped_conf.read_text().splitlines():
            key = line.split(" ", 1)[0]
            if key == "listener" and not any(kept.startswith("listener ") for kept in lines):
                # In its place: the listener's own options follow it (before any listener,
                # Mosquitto would open a default one on port 1883 to carry them).
                lines.append(f"listener {self.port} 127.0.0.1")
                continue
            if key in _REPLACED:
                continue
            if key in _TLS:
                if self.tls is not None:
                    lines.append(self._tls_line(key, line))
                continue
            if key in self.settings:
                value = self.settings[key]
                if value is None:
                    continue
                line = f"{key} {value}"
            lines.append(line)
        return lines

    def _tls_line(self, key: str, shipped: str) -> str:
        assert self.tls is not None
        if key == "require_certificate":
            return "require_certificate true" if self.tls.require_certificate else shipped
        return f"{key} {getattr(self.tls, key)}"

    def _write_config(self) -> Path:
        lines = self._shipped_lines()
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        if not any(line.startswith("listener ") for line in lines):
            lines.append(f"listener {self.port} 127.0.0.1")
        lines += [
            f"persistence_location {self.workdir / 'data'}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            # As root Mosquitto drops to user "mosquitto", which cannot read private tmp dirs.
            "user root",
        ]
        if self.tls is not None:
            # What the file lacks, after its last line: Mosquitto applies a listener's
            # options to the last "listener" line above them.
            shipped = {line.split(" ", 1)[0] for line in lines}
            missing = [key for key in _TLS if key not in shipped]
            if not self.tls.require_certificate:
                missing = [key for key in missing if key != "require_certificate"]
            lines += [self._tls_line(key, "") for key in missing]
        if self.users is None:
            # Anonymous: no username to name a session by (Mosquitto would refuse everyone).
            lines = [line for line in lines if not line.startswith("use_username_as_clientid")]
            lines.append("allow_anonymous true")
        else:
            passwd = self.workdir / "passwd"
            # Hashed as mosquitto_passwd does (kienco credentials writes the same format).
            hashes = {user: hash_password(password) for user, password in self.users.items()}
            write_password_file(passwd, hashes, group=None)
            acl = self.workdir / "acl"
            shutil.copy(self.shipped_acl, acl)
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
    """A running ``influxd`` (InfluxDB 1.x) serving the v1 API on loopback; over HTTPS
    when started with ``tls``, then ``verify`` is the client context that trusts it."""

    url: str
    root: Path
    process: subprocess.Popen[bytes]
    verify: ssl.SSLContext | None = None
    tls: ServerTls | None = None

    @classmethod
    def start(
        cls,
        root: Path,
        *,
        timeout_s: float = 30.0,
        data: Mapping[str, str] | None = None,
        conf: Path | None = None,
        tls: ServerTls | None = None,
        ping: bool = True,
    ) -> Influxd:
        """``data``: more ``[data]`` settings, as TOML values (``{"index-version": '"tsi1"'}``).

        ``conf``: run from that file as it is (the shipped ``SHIPPED_INFLUXDB_CONF``), its
        meta, data and WAL folders moved under ``root`` and its HTTP and RPC listeners to
        free loopback ports through influxd's ``INFLUXDB_*`` environment overrides, which
        take precedence over the file; ``data`` is then passed the same way
        (``INFLUXDB_DATA_MAX_VALUES_PER_TAG``). Everything else is the file's.

        ``tls``: serve HTTPS with its certificate and key (``[http] https-enabled``,
        ``https-certificate``, ``https-private-key``); InfluxDB 1.x cannot ask for client
        certificates, so ``require_certificate`` is refused. ``ping=False``: ready once
        the port listens, for a certificate served to be refused (expired, another name).
        """
        binary = find_binary("influxd")
        if binary is None:
            raise ServiceError("InfluxDB is not installed: apt-get install -y influxdb")
        if tls is not None and tls.require_certificate:
            raise ServiceError("InfluxDB 1.x cannot require client certificates")
        https = (
            {
                "https-enabled": "true",
                "https-certificate": str(tls.certfile),
                "https-private-key": str(tls.keyfile),
            }
            if tls is not None
            else {}
        )
        root.mkdir(parents=True, exist_ok=True)
        http_port, rpc_port = free_port(), free_port()
        env = dict(os.environ)
        if conf is None:
            config = root / "influxdb.conf"
            text = INFLUXD_CONF.format(root=root, http_port=http_port, rpc_port=rpc_port)
            if data:
                more = "".join(f"  {key} = {value}\n" for key, value in data.items())
                text = text.replace("\n[monitor]", f"{more}\n[monitor]", 1)
            if https:
                more = "".join(f"  {key} = {_toml_value(value)}\n" for key, value in https.items())
                text = text.replace("\n[ifql]", f"{more}\n[ifql]", 1)
            config.write_text(text)
        else:
            config = conf
            env.update(
                {
                    "INFLUXDB_META_DIR": str(root / "meta"),
                    "INFLUXDB_DATA_DIR": str(root / "data"),
                    "INFLUXDB_DATA_WAL_DIR": str(root / "wal"),
                    "INFLUXDB_HTTP_BIND_ADDRESS": f"127.0.0.1:{http_port}",
                    "INFLUXDB_BIND_ADDRESS": f"127.0.0.1:{rpc_port}",
                }
            )
            for key, value in (data or {}).items():
                env["INFLUXDB_DATA_" + key.upper().replace("-", "_")] = value.strip('"')
            for key, value in https.items():
                env["INFLUXDB_HTTP_" + key.upper().replace("-", "_")] = value
        log = root / "influxd.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [binary, "-config", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        url = f"{'https' if tls else 'http'}://127.0.0.1:{http_port}"
        verify = client_context(tls.cafile, key="influxd") if tls is not None else None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceError(f"influxd exited with {process.returncode}: {log.read_text()}")
            try:
                if not ping:
                    wait_for_tcp(http_port, timeout_s=0.2)
                    return cls(url=url, root=root, process=process, verify=verify, tls=tls)
                pong = httpx.get(f"{url}/ping", timeout=1.0, verify=verify or True)
                if pong.status_code == 204:
                    return cls(url=url, root=root, process=process, verify=verify, tls=tls)
            except (TimeoutError, httpx.TransportError):
                pass
            time.sleep(0.05)
        _stop(process)
        raise ServiceError(f"influxd did not answer /ping within {timeout_s} s: {log.read_text()}")

    def stop(self) -> None:
        _stop(self.process)


def _toml_value(text: str) -> str:
    return (
        text
        if text in ("true", "false")
        else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )


SHIPPED_ALERTMANAGER = firmware_configs() / "alertmanager" / "alertmanager.yml"
GATEWAY_PLACEHOLDER = "http://127.0.0.1:9095"  # the shipped receivers' stand-in for a gateway


def alertmanager_config(
    webhook_url: str,
    *,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
) -> str:
    """The shipped ``alertmanager.yml`` with its receivers pointed at ``webhook_url``.

    Routes, grouping and inhibition stay as shipped; the timings may be shortened (a
    test cannot wait the shipped 30 s for each group).
    """
    import yaml

    data = yaml.safe_load(
        SHIPPED_ALERTMANAGER.read_text().replace(GATEWAY_PLACEHOLDER, webhook_url)
    )
    route = data["route"]
    for key, value in (
        ("group_wait", group_wait),
        ("group_interval", group_interval),
        ("repeat_interval", repeat_interval),
    ):
        if value is not None:
            route[key] = value
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


class Alertmanager:
    """Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) on a loopback port.

    Clustering is off (no gossip port on 0.0.0.0); silences and the notification log live
    in ``workdir``; alerts themselves live in its memory only, so a restart starts empty.
    """

    BINARY = "prometheus-alertmanager"
    INSTALL = "apt-get install -y prometheus-alertmanager"

    def __init__(self, workdir: Path, config_text: str) -> None:
        binary = find_binary(self.BINARY) or find_binary("alertmanager")
        if binary is None:
            raise ServiceError(f"Alertmanager is not installed: {self.INSTALL}")
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(config_text)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        log_path = self.workdir / "alertmanager.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"alertmanager exited: {log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"alertmanager did not get ready: {log_path.read_text()}")

    def stop(self) -> None:
        _stop(self.process)
        self.process = None
