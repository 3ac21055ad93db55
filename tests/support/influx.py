"""pytest plugin: a real InfluxDB 1.x (Debian's ``influxd``) on loopback ports.

``influxdb`` (session) starts one server (``kienco.local_services.Influxd``:
generated config, every port on loopback, files in a temporary folder, logs
at error level in a file) and stops it at the end; ``influx_db`` (function)
gives each test its own fresh database. A missing ``influxd`` fails the tests,
never skips them. ``shipped_influxdb`` runs one from the shipped
``firmware-configs/influxdb/influxdb.conf`` instead (auth on: it makes the admin; with
``tls`` over HTTPS, the server's ``verify`` then the context that trusts its CA).
The helpers talk to ``/query`` with httpx directly, not through ``collector.influx``,
so the collector is checked by an independent reader.
"""

from __future__ import annotations

import itertools
import re
import ssl
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kienco.local_services import (
    SHIPPED_INFLUXDB_CONF,
    Influxd,
    ServerTls,
    ServiceError,
    find_binary,
)

INSTALL_HINT = "apt-get install -y influxdb"


@dataclass
class InfluxServer:
    """A running ``influxd``: its URL and a few test helpers."""

    url: str
    root: Path
    process: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=itertools.count)
    auth: tuple[str, str] | None = None  # user and password, where auth is on
    verify: ssl.SSLContext | None = None  # over HTTPS: the context that trusts its CA

    @property
    def _verify(self) -> ssl.SSLContext | bool:
        return True if self.verify is None else self.verify

    def query(self, database: str | None, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; return one dict per row, with the series' tags merged in."""
        params = {"q": influxql, "epoch": "ns"}
        if database is not None:
            params["db"] = database
        response = httpx.post(
            f"{self.url}/query", data=params, auth=self.auth, timeout=30.0, verify=self._verify
        )
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

    @contextmanager
    def seeded(self, prefix: str, *batches: str) -> Iterator[str]:
        """A fresh database holding ``batches`` of line protocol (each written whole, or
        the test fails with InfluxDB's answer), dropped afterwards; its name."""
        name = self.fresh_database(prefix)
        try:
            for lines in batches:
                answer = self.write(name, lines)
                assert answer.status_code == 204, answer.text
            yield name
        finally:
            self.drop_database(name)

    def write(self, database: str, lines: str) -> httpx.Response:
        """POST line protocol as-is (ns precision) and return the raw response."""
        return httpx.post(
            f"{self.url}/write",
            params={"db": database, "precision": "ns"},
            content=lines.encode("utf-8"),
            auth=self.auth,
            timeout=30.0,
            verify=self._verify,
        )


def _start(
    root: Path,
    *,
    conf: Path | None = None,
    data: Mapping[str, str] | None = None,
    tls: ServerTls | None = None,
) -> Influxd:
    if find_binary("influxd") is None:
        pytest.fail(f"influxd is not installed; the InfluxDB tests need it: {INSTALL_HINT}")
    try:
        return Influxd.start(root, conf=conf, data=data, tls=tls)
    except ServiceError as error:
        pytest.fail(str(error))


@contextmanager
def shipped_influxdb(
    root: Path,
    *,
    data: Mapping[str, str] | None = None,
    admin: tuple[str, str] = ("admin", "a"),
    tls: ServerTls | None = None,
) -> Iterator[InfluxServer]:
    """An ``influxd`` from the shipped ``influxdb.conf`` as it is (only its folders under
    ``root`` and its ports moved; ``data`` overrides ``[data]`` settings the same way;
    ``tls`` turns HTTPS on as the file's comments say), with the first user, ``admin``,
    made as an operator makes it; the server's helpers log in as that admin."""
    server = _start(root, conf=SHIPPED_INFLUXDB_CONF, data=data, tls=tls)
    try:
        made = httpx.post(
            f"{server.url}/query",
            data={"q": f"CREATE USER {admin[0]} WITH PASSWORD '{admin[1]}' WITH ALL PRIVILEGES"},
            timeout=30.0,
            verify=server.verify or True,
        )
        assert made.status_code == 200 and "error" not in made.text, made.text
        yield InfluxServer(
            url=server.url,
            root=server.root,
            process=server.process,
            auth=admin,
            verify=server.verify,
        )
    finally:
        server.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A real InfluxDB 1.x for the whole session, on free loopback ports."""
    server = _start(tmp_path_factory.mktemp("influxdb"))
    try:
        yield InfluxServer(url=server.url, root=server.root, process=server.process)
    finally:
        server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = influxdb.fresh_database(request.node.name)
    yield name
    influxdb.drop_database(name)
