"""The shipped ``firmware-configs/influxdb/influxdb.conf`` on a real InfluxDB 1.6.

Debian's ``influxd`` parses it and knows every setting in it (an unknown key is silently
ignored, so a misspelt limit would otherwise pass for set); an influxd run from the very
file (only its folders and ports moved) refuses anonymous requests, takes the collector's
writes with the collector's account, keeps a tsi1 index on disk and holds the national
fleet's 103 400 values of ``site`` in one measurement, the thing the stock limits refuse;
the real collector, logged in with the shipped account, stores a report from the broker,
over http and over HTTPS (the file's https settings on, a throwaway CA, influx.ca_file).

An InfluxDB the collector cannot trust (another CA's certificate, no ca_file and so the
system's CAs, plain http to its HTTPS port, a certificate for another name or expired) gets
nothing: the report waits in the spool, never dead-lettered or dropped, and is stored once
the CA is right; a CA beside an http:// url, or one that cannot be used, stops
``kienco collector run`` at start with the key, the value and the fix.

Measured on InfluxDB 1.6.7: the two limits are enforced by the ``inmem`` index only; with
tsi1 the stock limits take 103 400 sites too. They still matter: a shard keeps the index it
was made with, so a server switched from inmem keeps inmem shards until they age out. So
the limits are proven on an inmem shard, with the shipped values and with the stock ones.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import ssl
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig, InfluxConfig
from collector.influx import InfluxUnavailable, InfluxV1Client
from collector.service import Collector
from contract.wire import Report
from kienco.cli import main as kienco_main
from kienco.local_services import SHIPPED_INFLUXDB_CONF, Influxd, ServerTls, find_binary
from plumbing.data import firmware_configs
from plumbing.mqtt_endpoint import MqttEndpoint
from plumbing.tls import client_context
from tests.support.influx import InfluxServer, shipped_influxdb
from tests.support.mosquitto import Broker
from tests.support.pki import Pki

pytestmark = pytest.mark.influx

NATIONAL_SITES = 103_400  # 100 000 stations + 3 400 meeting points (docs/capacity.md)
STOCK_LIMITS = {"max-series-per-database": "1000000", "max-values-per-tag": "100000"}
# InfluxData's own packages read reporting-disabled; Debian's 1.6 reads reporting-enabled.
NOT_DEBIANS = {"reporting-disabled"}
T0 = 1_764_000_000_000_000_000  # one timestamp for every point: one point per series


def _settings(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            flat.update(_settings(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _merged() -> dict[str, Any]:
    binary = find_binary("influxd")
    assert binary is not None, "apt-get install -y influxdb"
    done = subprocess.run(
        [binary, "config", "-config", str(SHIPPED_INFLUXDB_CONF)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout)


def test_influxd_parses_the_shipped_file_and_knows_every_setting() -> None:
    shipped = _settings(tomllib.loads(SHIPPED_INFLUXDB_CONF.read_text()))
    merged = _settings(_merged())
    differ = {
        key: (value, merged.get(key, "<unknown to influxd>"))
        for key, value in shipped.items()
        if key not in NOT_DEBIANS and merged.get(key) != value
    }
    assert differ == {}
    assert merged["data.index-version"] == "tsi1"
    assert merged["data.max-series-per-database"] == 0
    assert merged["data.max-values-per-tag"] == 0
    assert merged["http.auth-enabled"] is True
    assert merged["http.bind-address"] == "127.0.0.1:8086"
    assert merged["bind-address"].startswith("127.0.0.1:")
    assert merged["data.wal-fsync-delay"] == "0s"  # a 204 means on disk: the collector acks then
    assert merged["continuous_queries.enabled"] is True  # dashboards/influxdb/retention.influxql
    assert {merged["meta.dir"], merged["data.dir"], merged["data.wal-dir"]} == {
        "/var/lib/influxdb/meta",
        "/var/lib/influxdb/data",
        "/var/lib/influxdb/wal",
    }


def _accounts(server: InfluxServer) -> None:
    """What the shipped file's header tells the operator to run."""
    for statement in (
        "CREATE DATABASE kienco",
        "CREATE USER collector WITH PASSWORD 'c'",
        "GRANT ALL ON kienco TO collector",
        "CREATE USER grafana WITH PASSWORD 'g'",
        "GRANT READ ON kienco TO grafana",
    ):
        server.query(None, statement)


def _write_sites(client: InfluxV1Client, sites: int, batch: int = 10_000) -> list[str]:
    """One ``report`` point for each of ``sites`` sites; the refusals InfluxDB gave."""
    refused = []
    for start in range(0, sites, batch):
        lines = "\n".join(
            f"report,province=hp,site=s{i:06d} up=1i {T0}"
            for i in range(start, min(sites, start + batch))
        )
        result = client.write(lines)
        if not result.ok:
            refused.append(str(result.error))
    return refused


def _index_dirs(root: Path, database: str) -> list[Path]:
    """tsi1 keeps each shard's index in ``<shard>/index/``; inmem has no such folder."""
    return sorted((root / "data" / database).glob("*/*/index"))


def test_the_shipped_config_takes_the_national_fleet_with_accounts_and_tsi1(
    tmp_path: Path,
) -> None:
    with shipped_influxdb(tmp_path / "influxdb") as server:
        _accounts(server)
        anonymous = httpx.post(
            f"{server.url}/write", params={"db": "kienco"}, content=f"report up=1i {T0}"
        )
        assert anonymous.status_code == 401, anonymous.text
        with InfluxV1Client(
            server.url, "kienco", username="collector", password="c", timeout_s=60
        ) as collector:
            collector.create_missing_database = False
            assert _write_sites(collector, NATIONAL_SITES) == []
            # The board reads its history with the same account.
            assert collector.query('SELECT count("up") FROM "report"')[0]["count"] == (
                NATIONAL_SITES
            )
        with InfluxV1Client(server.url, "kienco", username="grafana", password="g") as grafana:
            assert (
                grafana.query('SHOW TAG VALUES EXACT CARDINALITY FROM "report" WITH KEY = "site"')[
                    0
                ]["count"]
                == NATIONAL_SITES
            )
            refused = httpx.post(
                f"{server.url}/write",
                params={"db": "kienco"},
                content=f"report up=1i {T0}",
                auth=("grafana", "g"),
            )
            assert refused.status_code == 403, refused.text  # the dashboards only read
        assert _index_dirs(server.root, "kienco"), "no tsi1 index folder in the shard"


@pytest.mark.parametrize(
    ("limits", "refused_sites"),
    [({}, 0), (STOCK_LIMITS, NATIONAL_SITES - 100_000)],
    ids=["shipped-limits", "stock-limits"],
)
def test_the_shipped_limits_hold_the_national_fleet_on_an_inmem_shard(
    tmp_path: Path, limits: dict[str, str], refused_sites: int
) -> None:
    """With the shipped file's limits every site is kept; with the stock ones (the control:
    what this test sees if someone reverts them) the last 3 400 are refused."""
    with shipped_influxdb(
        tmp_path / "influxdb", data={"index-version": "inmem", **limits}
    ) as server:
        _accounts(server)
        with InfluxV1Client(
            server.url, "kienco", username="collector", password="c", timeout_s=60
        ) as collector:
            refusals = _write_sites(collector, NATIONAL_SITES)
            kept = collector.query(
                'SHOW TAG VALUES EXACT CARDINALITY FROM "report" WITH KEY = "site"'
            )
        assert _index_dirs(server.root, "kienco") == []  # inmem, as asked
        assert kept[0]["count"] == NATIONAL_SITES - refused_sites
        if refused_sites:
            assert "max-values-per-tag limit exceeded (100000/100000)" in refusals[0]
        else:
            assert refusals == []


class Tls:
    """A throwaway CA whose certificate InfluxDB serves, in a folder whose name has spaces
    (an operator's path), and another CA that signed nothing of the centre's."""

    def __init__(self, folder: Path) -> None:
        self.right = Pki(folder / "centre pki", "kienco centre CA")
        self.wrong = Pki(folder / "other pki", "someone else CA")
        pair = self.right.server("influxdb")
        self.server = ServerTls(self.right.ca_file, pair.cert, pair.key)


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return Tls(tmp_path / "pki")


def _collector_config(
    tmp_path: Path, mosquitto: Broker, influx: dict[str, Any], client_id: str
) -> CollectorConfig:
    """The shipped collector.yaml's influx section (its account) with ``influx`` over it."""
    shipped = yaml.safe_load((firmware_configs() / "collector.yaml").read_text())["influx"]
    assert shipped["username"] == "collector"
    return CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": client_id,
                "topic_filter": "kienco/v1/ic/#",
            },
            "influx": shipped | {"password": {"value": "c"}, "retry_attempts": 1} | influx,
            "data_dir": str(tmp_path / "collector"),
            "batch": {"max_delay_s": 0.1},
            "http": {"port": 0, "anonymous_read": True},
        }
    )


def _publish_report(mosquitto: Broker, seq: int = 1) -> None:
    report = Report(site="ic-1", province="ic", seq=seq, taken_at=datetime.now(UTC), interval_s=30)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    client.publish("kienco/v1/ic/ic-1/report", report.model_dump_json(), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def _spooled_reports(path: Path) -> int:
    """The ``report`` lines waiting in a collector's spool (read beside it: WAL)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        batches = [lines for (lines,) in db.execute("SELECT lines FROM batch")]
    return sum(line.startswith("report,") for text in batches for line in text.split("\n"))


def _stored(server: InfluxServer, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = server.query("kienco", """SELECT * FROM "report" WHERE "site" = 'ic-1'""")
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kienco.collector"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_collector_with_the_shipped_account_stores_reports(
    tmp_path: Path,
    mosquitto: Broker,
    tls: Tls,
    caplog: pytest.LogCaptureFixture,
    scheme: str,
) -> None:
    """The real collector, logged in as the shipped collector.yaml says (``collector``, not
    an admin: it cannot CREATE DATABASE), stores a report through the broker, over plain
    http and over HTTPS (the shipped file's https settings on, the collector with
    influx.ca_file), and its start does not pass the refused CREATE DATABASE off as
    InfluxDB being down."""
    server_tls = tls.server if scheme == "https" else None
    with shipped_influxdb(tmp_path / "influxdb", tls=server_tls) as server:
        assert server.url.startswith(f"{scheme}://")
        _accounts(server)
        influx: dict[str, Any] = {"url": server.url}
        if server_tls is not None:
            influx["ca_file"] = str(tls.right.ca_file)
        config = _collector_config(tmp_path, mosquitto, influx, f"influxconf-{time.time_ns()}")
        collector = Collector(config)
        with caplog.at_level(logging.INFO, logger="kienco.collector"):
            collector.start(serve_http=False)
        try:
            assert collector.wait_connected(10)
            _publish_report(mosquitto)
            rows = _stored(server, 15)
            assert rows and rows[0]["seq"] == 1
        finally:
            collector.stop()
        said = _said(caplog)
        assert not [m for m in said if "not reachable" in m or "spooling" in m], said


@pytest.mark.parametrize(
    ("mistake", "errors"),
    [
        ("wrong-ca", ("CERTIFICATE_VERIFY_FAILED",)),
        # No ca_file: the system's CAs, which never signed the centre's certificate.
        ("system-cas", ("CERTIFICATE_VERIFY_FAILED",)),
        # influxd answers 400 "Client sent an HTTP request to an HTTPS server", or, on a
        # busy machine, resets the connection before the answer is read.
        ("plain-http", ("InfluxDB serves HTTPS on this port", "Connection reset by peer")),
    ],
    ids=["wrong-ca", "system-cas", "plain-http"],
)
def test_an_influxdb_the_collector_cannot_trust_gets_nothing_and_nothing_is_lost(
    tmp_path: Path,
    mosquitto: Broker,
    tls: Tls,
    caplog: pytest.LogCaptureFixture,
    mistake: str,
    errors: tuple[str, ...],
) -> None:
    """An HTTPS InfluxDB and a collector configured wrong for it: the report is neither
    written over an unverified connection nor dead-lettered nor dropped; it waits in the
    spool, the log says why, and the same collector with the right CA stores it."""
    with shipped_influxdb(tmp_path / "influxdb", tls=tls.server) as server:
        _accounts(server)
        plain = server.url.replace("https://", "http://")
        wrong: dict[str, Any] = {
            "wrong-ca": {"url": server.url, "ca_file": str(tls.wrong.ca_file)},
            "system-cas": {"url": server.url},
            "plain-http": {"url": plain},
        }[mistake]
        client_id = f"influxtls-{time.time_ns()}"
        collector = Collector(_collector_config(tmp_path, mosquitto, wrong, client_id))
        with caplog.at_level(logging.INFO, logger="kienco.collector"):
            collector.start(serve_http=False)
            try:
                assert collector.wait_connected(10)
                _publish_report(mosquitto)
                spooled = tmp_path / "collector" / "spool.sqlite"
                deadline = time.monotonic() + 15
                while not _spooled_reports(spooled) and time.monotonic() < deadline:
                    time.sleep(0.05)
                # The report, once (beside the collector's own health, spooled as well).
                assert _spooled_reports(spooled) == 1
                assert collector.dead_letters.counts() == {}
            finally:
                collector.stop()
        said = _said(caplog)
        assert [m for m in said if "spooling" in m and any(e in m for e in errors)], said
        assert server.query("kienco", 'SELECT * FROM "report"') == []
        right = {"url": server.url, "ca_file": str(tls.right.ca_file)}
        fixed = Collector(_collector_config(tmp_path, mosquitto, right, client_id))
        fixed.start(serve_http=False)
        try:
            rows = _stored(server, 20)
            assert [row["seq"] for row in rows] == [1]
        finally:
            fixed.stop()


@pytest.mark.parametrize(
    ("cert", "error"),
    [
        ("wrong-host", "IP address mismatch"),
        ("expired", "certificate has expired"),
    ],
    ids=["wrong-host", "expired"],
)
def test_the_certificate_must_name_the_host_and_be_in_date(
    tmp_path: Path, tls: Tls, cert: str, error: str
) -> None:
    """Signed by the right CA is not enough: a certificate for another name (here
    influxdb.example, reached as 127.0.0.1) or out of date is refused."""
    if cert == "wrong-host":
        pair = tls.right.server("elsewhere", ("influxdb.example",))
    else:
        pair = tls.right.server("expired", expired=True)
    served = ServerTls(tls.right.ca_file, pair.cert, pair.key)
    server = Influxd.start(tmp_path / "influxdb", tls=served, ping=False)
    try:
        config = InfluxConfig(url=server.url, ca_file=tls.right.ca_file)
        with config.client() as client, pytest.raises(InfluxUnavailable) as refused:
            client.query("SHOW DATABASES")
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        assert error in str(refused.value)
    finally:
        server.stop()


def test_every_client_context_verifies(tls: Tls) -> None:
    """One place makes the TLS contexts of the collector's links, to Mosquitto and to
    InfluxDB: each checks the chain and the name, TLS 1.2 at least; without a CA file
    the system's CAs (never no check)."""
    contexts = [
        InfluxConfig(url="https://influxdb.example:8086").ssl_context(),
        InfluxConfig(url="https://influxdb.example:8086", ca_file=tls.right.ca_file).ssl_context(),
        MqttEndpoint(url="mqtts://broker.example:8883").ssl_context(),
        client_context(tls.right.ca_file, key="k"),
    ]
    for context in contexts:
        assert context is not None
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert InfluxConfig(url="http://127.0.0.1:8086").ssl_context() is None


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("ca-beside-http", ["influx.ca_file", "plain http url http://10.0.0.5:8086", "https://"]),
        ("missing", ["influx.ca_file: cannot use", "no such dir/ca.crt", "No such file"]),
        ("directory", ["influx.ca_file: cannot use", "centre pki: it is a directory"]),
        ("not-pem", ["influx.ca_file: cannot use", "notes.txt", "NO_CERTIFICATE_OR_CRL_FOUND"]),
    ],
    ids=["ca-beside-http", "missing", "directory", "not-pem"],
)
def test_collector_run_stops_at_start_on_an_unusable_influx_ca(
    tmp_path: Path, tls: Tls, capsys: pytest.CaptureFixture[str], case: str, said: list[str]
) -> None:
    """``kienco collector run`` stops before it connects anywhere, naming the key, the value
    and the fix: a CA beside a plain http url (no silent fallback), a CA file that is
    missing, a directory or not PEM."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the CA is on the shared drive\n")
    influx = {
        "ca-beside-http": {"url": "http://10.0.0.5:8086", "ca_file": str(tls.right.ca_file)},
        "missing": {
            "url": "https://10.0.0.5:8086",
            "ca_file": str(tmp_path / "no such dir/ca.crt"),
        },
        "directory": {"url": "https://10.0.0.5:8086", "ca_file": str(tls.right.folder)},
        "not-pem": {"url": "https://10.0.0.5:8086", "ca_file": str(notes)},
    }[case]
    body = {
        "broker": {"url": "mqtt://10.0.0.4:1883", "username": None},
        "influx": influx,
        "data_dir": str(tmp_path / "collector"),
    }
    (config := tmp_path / "collector.yaml").write_text(yaml.safe_dump(body))
    assert kienco_main(["collector", "run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    for part in [*said, "Fix:"]:
        assert part in err, err


def test_collector_run_stops_at_start_on_an_influx_ca_it_may_not_read(
    tmp_path: Path, tls: Tls
) -> None:
    """A CA file this user may not read (installed 0600 for another account): the same stop
    at start, naming the key, the file and the fix. The tests run as root, who reads any
    file; the collector runs here as root without the capabilities that allow it
    (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), as the service's user would."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv is missing: apt-get install util-linux"
    ca = tmp_path / "ca.crt"
    ca.write_bytes(tls.right.ca_file.read_bytes())
    ca.chmod(0o000)
    body = {
        "broker": {"url": "mqtt://10.0.0.4:1883", "username": None},
        "influx": {"url": "https://10.0.0.5:8086", "ca_file": str(ca)},
        "data_dir": str(tmp_path / "collector"),
    }
    (config := tmp_path / "collector.yaml").write_text(yaml.safe_dump(body))
    command = [sys.executable, "-m", "kienco.cli", "collector", "run", "--config", str(config)]
    run = subprocess.run(
        [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    for part in ["influx.ca_file: cannot use", str(ca), "Permission denied", "Fix:"]:
        assert part in run.stderr, run.stderr
