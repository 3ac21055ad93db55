"""pytest plugin: a real InfluxDB 1.x (Debian's ``influxd``) on loopback ports.

``influxdb`` (session) starts one server in a temporary directory and stops it
at the end; ``influx_db`` (function) gives each test its own fresh database.
The helpers talk to ``/query`` with httpx directly, not through
``collector.influx``, so the tests check the collector against an independent
reader.
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

INSTALL_HINT = "apt-get install -y influxdb"
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(root: Path, http_port: int, rpc_port: int) -> str:
    # Everything that would write outside `root`, listen on a public address or
    # log per request is turned off: the tests share 2 cores with others.
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / "meta"}"
  logging-enabled = false

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  wal-fsync-delay = "0s"
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
class InfluxServer:
    """A running ``influxd``: its URL and a few test helpers."""

    url: str
    root: Path
    process: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def query(self, database: str | None, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; return one dict per row, with the series' tags merged in."""
        params = {"q": influxql, "epoch": "ns"}
        if database is not None:
            params["db"] = database
        response = httpx.post(f"{self.url}/query", data=params, timeout=30.0)
        response.raise_for_status()
        rows: list[dict[str, Any]] = []
        for result in response.json().get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL error: {result['error']} in {influxql!r}")
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values, strict=True))
                    row.update(tags)
                    rows.append(row)
        return rows

    def fresh_database(self, prefix: str = "t") -> str:
        """Create a database with a name no other test uses, and return the name."""
        slug = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:40]
        name = f"{slug}_{next(self._names)}"
        self.query(None, f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.query(None, f'DROP DATABASE "{name}"')

    def write(self, database: str, lines: str) -> httpx.Response:
        """POST line protocol as-is (ns precision) and return the raw response."""
        return httpx.post(
            f"{self.url}/write",
            params={"db": database, "precision": "ns"},
            content=lines.encode("utf-8"),
            timeout=30.0,
        )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"influxd exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=1.0).status_code == 204:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"influxd did not answer /ping within {START_TIMEOUT_S} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A real InfluxDB 1.x for the whole session, on free loopback ports."""
    binary = shutil.which("influxd") or (
        "/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None
    )
    if binary is None:
        pytest.fail(f"influxd is not installed; the InfluxDB tests need it: {INSTALL_HINT}")
    root = tmp_path_factory.mktemp("influxdb")
    http_port, rpc_port = _free_port(), _free_port()
    config = root / "influxdb.conf"
    config.write_text(_config(root, http_port, rpc_port))
    log = root / "influxd.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "-config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(url, process, log)
        yield InfluxServer(url=url, root=root, process=process)
    finally:
        _stop(process)


@pytest.fixture
def influx_db(influxdb: InfluxServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = influxdb.fresh_database(request.node.name)
    yield name
    influxdb.drop_database(name)
