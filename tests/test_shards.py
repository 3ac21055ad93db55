"""Collector shards by province: ``provinces: [..]`` subscribes to ``kienco/v1/{p}/#`` for
each, judges only those provinces' sites (of the inventory too), and a bad list stops at
start with the key, the value and the fix."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from collector.config import CollectorConfig, load_collector_config
from collector.inventory import load_inventory
from collector.service import Collector
from contract.topics import topic
from contract.wire import Meta, Report
from plumbing.config_errors import ConfigError, parse_yaml_model
from tests.support.mosquitto import Broker
from tests.support.subscriber import Subscriber

REPO = Path(__file__).resolve().parents[1]
SHARD = REPO / "firmware-configs" / "collector-shard.yaml"
INVENTORY = """\
site,kind,name,province,area,hardened
sha-bts-1,station,Trạm A,sha,a1,false
shb-bts-1,station,Trạm B,shb,b1,false
shc-bts-1,station,Trạm C,shc,c1,false
"""


def test_the_shipped_shard_config_loads() -> None:
    config = load_collector_config(SHARD)
    assert config.provinces == ("hp", "qn")
    assert config.topic_filters == ("kienco/v1/hp/#", "kienco/v1/qn/#")
    assert config.broker.tls and config.broker.client_id == "kienco-collector-a1"


def test_topic_filter_still_works_alone() -> None:
    config = CollectorConfig.model_validate({"broker": {"topic_filter": "kienco/v1/hp/#"}})
    assert config.provinces is None and config.topic_filters == ("kienco/v1/hp/#",)
    assert CollectorConfig().topic_filters == ("kienco/v1/+/+/#",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("provinces: []", ["provinces:", "at least 1", "got []"]),
        ("provinces: [Hải Phòng]", ["provinces.0:", "'Hải Phòng'", "lowercase slug"]),
        ("provinces: ['hp/#']", ["provinces.0:", "'hp/#'", "lowercase slug"]),
        ("provinces: [hp, qn, hp]", ["provinces: hp listed twice", "list each province once"]),
        (
            "provinces: [hp]\nbroker: {topic_filter: 'kienco/v1/qn/#'}",
            ["provinces (['hp'])", "broker.topic_filter ('kienco/v1/qn/#')", "remove broker"],
        ),
        ("provinces: hp", ["provinces:", "'hp'"]),
    ],
    ids=["empty", "not-a-slug", "wildcard", "twice", "with-topic-filter", "not-a-list"],
)
def test_bad_provinces_name_key_value_and_fix(text: str, says: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml_model(text, CollectorConfig, source="collector.yaml")
    message = str(caught.value)
    for words in says:
        assert words in message, message


def test_inventory_only_keeps_the_shards_provinces(tmp_path: Path) -> None:
    (tmp_path / "fleet.csv").write_text(INVENTORY)
    inventory = load_inventory(tmp_path / "fleet.csv").only(["sha", "shb"])
    assert [s.site for s in inventory] == ["sha-bts-1", "shb-bts-1"]
    assert "shc-bts-1" not in inventory and set(inventory.by_province) == {"sha", "shb"}


def _messages(province: str, site: str) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    meta = Meta(
        site=site,
        province=province,
        site_kind="station",
        name="Trạm",
        interval_s=30,
        agent_version="test",
        at=now,
    )
    report = Report(site=site, province=province, seq=1, taken_at=now, interval_s=30)
    return [
        (topic(province, site, "meta"), meta.model_dump_json().encode()),
        (topic(province, site, "report"), report.model_dump_json().encode()),
    ]


def test_a_shard_receives_and_judges_only_its_provinces(tmp_path: Path, mosquitto: Broker) -> None:
    (tmp_path / "fleet.csv").write_text(INVENTORY)
    config = parse_yaml_model(
        yaml.safe_dump(
            {
                "provinces": ["sha", "shb"],
                "broker": {"url": mosquitto.url, "username": None, "client_id": "shard-ab"},
                "influx": None,
                "inventory": str(tmp_path / "fleet.csv"),
                "data_dir": str(tmp_path / "data"),
            }
        ),
        CollectorConfig,
        source="shard.yaml",
    )
    statuses = Subscriber(mosquitto.port, "kienco/v1/+/+/status", client_id="shard-statuses")
    shard = Collector(config)
    shard.start(serve_http=False)
    try:
        assert shard.wait_connected(10)
        publisher = Subscriber(mosquitto.port, "kienco/v1/none/#", client_id="shard-pub")
        sent = [
            publisher.client.publish(name, payload, qos=1)
            for province in ("sha", "shb", "shc")  # the unlisted site -2 is known from its messages
            for name, payload in _messages(province, f"{province}-bts-2")
        ]
        for info in sent:
            info.wait_for_publish(10)
        publisher.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(shard.states) < 4:  # 2 listed + 2 heard
            time.sleep(0.05)
        time.sleep(0.5)  # anything of shc would have arrived by now
        judged = sorted(s.site for s in shard.states.all())
        assert judged == ["sha-bts-1", "sha-bts-2", "shb-bts-1", "shb-bts-2"]
        accepted = shard.metrics.accepted
        assert accepted.labels("report")._value.get() == 2  # of sha and shb, never shc
        assert accepted.labels("meta")._value.get() == 2
        ours = statuses.wait_for(4, lambda t: t.split("/")[2] in ("sha", "shb", "shc"), 10)
        published = {t.split("/")[3] for t, _ in ours}
        assert published == {"sha-bts-1", "sha-bts-2", "shb-bts-1", "shb-bts-2"}
    finally:
        shard.stop()
        statuses.close()
