"""The shipped ``firmware-configs/influxdb/influxdb.conf`` on a real InfluxDB 1.6.

Debian's ``influxd`` parses it and knows every setting in it (an unknown key is silently
ignored, so a misspelt limit would otherwise pass for set); an influxd run from the very
file (only its folders and ports moved) refuses anonymous requests, takes the collector's
writes with the collector's account, keeps a tsi1 index on disk and holds the national
fleet's 103 400 values of ``site`` in one measurement, the thing the stock limits refuse;
the real collector, logged in with the shipped account, stores a report from the broker.

Measured on InfluxDB 1.6.7: the two limits are enforced by the ``inmem`` index only; with
tsi1 the stock limits take 103 400 sites too. They still matter: a shard keeps the index it
was made with, so a server switched from inmem keeps inmem shards until they age out. So
the limits are proven on an inmem shard, with the shipped values and with the stock ones.
"""

from __future__ import annotations

import logging
import subprocess
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

from collector.config import CollectorConfig
from collector.influx import InfluxV1Client
from collector.service import Collector
from contract.wire import Report
from kienco.local_services import SHIPPED_INFLUXDB_CONF, find_binary
from plumbing.data import firmware_configs
from tests.support.influx import InfluxServer, shipped_influxdb
from tests.support.mosquitto import Broker

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


def test_a_collector_with_the_shipped_account_stores_reports(
    tmp_path: Path, mosquitto: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """The real collector, logged in as the shipped collector.yaml says (``collector``, not
    an admin: it cannot CREATE DATABASE), stores a report through the broker, and its start
    does not pass the refused CREATE DATABASE off as InfluxDB being down."""
    shipped = yaml.safe_load((firmware_configs() / "collector.yaml").read_text())["influx"]
    assert shipped["username"] == "collector"
    with shipped_influxdb(tmp_path / "influxdb") as server:
        _accounts(server)
        config = CollectorConfig.model_validate(
            {
                "broker": {
                    "url": mosquitto.url,
                    "username": None,
                    "client_id": f"influxconf-{time.time_ns()}",
                    "topic_filter": "kienco/v1/ic/#",
                },
                "influx": shipped | {"url": server.url, "password": {"value": "c"}},
                "data_dir": str(tmp_path / "collector"),
                "batch": {"max_delay_s": 0.1},
                "http": {"port": 0, "anonymous_read": True},
            }
        )
        collector = Collector(config)
        with caplog.at_level(logging.INFO, logger="kienco.collector"):
            collector.start(serve_http=False)
        try:
            assert collector.wait_connected(10)
            report = Report(
                site="ic-1", province="ic", seq=1, taken_at=datetime.now(UTC), interval_s=30
            )
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
            )
            client.connect("127.0.0.1", mosquitto.port)
            client.loop_start()
            client.publish(
                "kienco/v1/ic/ic-1/report", report.model_dump_json(), qos=1
            ).wait_for_publish(5)
            client.disconnect()
            client.loop_stop()
            deadline = time.monotonic() + 15
            rows: list[dict[str, Any]] = []
            while not rows and time.monotonic() < deadline:
                rows = server.query("kienco", """SELECT * FROM "report" WHERE "site" = 'ic-1'""")
                time.sleep(0.1)
            assert rows and rows[0]["seq"] == 1
        finally:
            collector.stop()
        said = [r.getMessage() for r in caplog.records if r.name == "kienco.collector"]
        assert not [m for m in said if "not reachable" in m], said
