"""A bad config stops at start with the key, the bad value and the fix; secrets never print."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import SiteConfig, load_site_config
from collector.config import CollectorConfig, load_collector_config
from plumbing.config_errors import ConfigError, parse_yaml_model

REPO = Path(__file__).resolve().parents[1]
STATION = REPO / "firmware-configs" / "sites" / "station.yaml"


def _station(**changes: object) -> str:
    data = yaml.safe_load(STATION.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(data, allow_unicode=True)


def test_shipped_configs_load() -> None:
    site = load_site_config(STATION)
    assert site.site == "hp-bts-001" and site.name == "Trạm BTS An Dương 1"
    assert site.mqtt_username == "hp/hp-bts-001" and site.broker.port == 8883 and site.broker.tls
    influx = load_collector_config(REPO / "firmware-configs" / "collector.yaml").influx
    assert influx is not None and influx.database == "kienco"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"site": "Hải Phòng 1"}, ["site:", "'Hải Phòng 1'", "lowercase slug"]),
        ({"kind": "tower"}, ["kind:", "'tower'", "station", "meeting_point"]),
        ({"intervall_s": 30}, ["intervall_s:", "remove it, or check its spelling"]),
        ({"broker__url": "http://x"}, ["broker.url", "mqtt://host:port"]),
        ({"interval_s": 0}, ["interval_s:", "larger value"]),
        ({"outbox__max_age_h": 24}, ["outbox.max_age_h", "72"]),
        ({"paths__0__media": "laser"}, ["paths.0.media", "'laser'", "fibre"]),
        ({"devices__0__credentials": "nope"}, ["'nope' is not defined", "snmp_credentials"]),
        ({"name": None}, ["name:", "add this key"]),
        ({"broker__password": {"env": "A", "file": "/b"}}, ["broker.password", "exactly one"]),
    ],
    ids=[
        "site-not-slug",
        "unknown-kind",
        "typo-key",
        "bad-url",
        "zero-interval",
        "outbox-too-short",
        "unknown-media",
        "undefined-credentials",
        "missing-name",
        "two-secret-sources",
    ],
)
def test_bad_site_configs_name_key_value_and_fix(
    changes: dict[str, object], says: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml_model(_station(**changes), SiteConfig, source="site.yaml")
    message = str(caught.value)
    assert message.startswith("site.yaml: invalid configuration")
    for fragment in says:
        assert fragment in message


def test_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(_station(devices__0__profile="no-such-ups"))
    with pytest.raises(ConfigError, match=r"devices\.0\.profile"):
        load_site_config(path)


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_yaml_model("a: [1, 2", CollectorConfig, source="c.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_yaml_model("- 1\n- 2\n", CollectorConfig, source="c.yaml")


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _station(broker__password={"value": "hunter2-secret"})
    config = parse_yaml_model(text, SiteConfig, source="s")
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in str(config.model_dump())
    assert config.broker.password is not None
    assert config.broker.password.reveal() == "hunter2-secret"
    monkeypatch.setenv("KIENCO_SNMP_COMMUNITY", "public-xyz")
    assert "public-xyz" not in repr(parse_yaml_model(_station(), SiteConfig, source="s"))


def test_a_password_in_a_url_stops_at_start_and_is_never_shown() -> None:
    """mqtts://user:password@host was accepted, not used to log in, and the password went
    to the journal with every line that names the broker."""
    url = "mqtts://hp%2Fhp-bts-001:S3cr3tPass@broker.kienco.example:8883"
    with pytest.raises(ConfigError) as caught:
        parse_yaml_model(_station(broker__url=url), SiteConfig, source="site.yaml")
    message = str(caught.value)
    assert "broker.url" in message and "give 'username' and 'password: {file: …}'" in message
    assert "S3cr3tPass" not in message and "<secret>@broker.kienco.example" in message
    shard = yaml.safe_load((REPO / "firmware-configs" / "collector-shard.yaml").read_text())
    shard["influx"]["url"] = "https://collector:S3cr3tPass@influxdb.kienco.example:8086"
    with pytest.raises(ConfigError) as caught:
        parse_yaml_model(yaml.safe_dump(shard), CollectorConfig, source="collector.yaml")
    assert "influx.url" in str(caught.value) and "S3cr3tPass" not in str(caught.value)


def test_every_example_site_config_loads() -> None:
    examples = sorted((REPO / "firmware-configs" / "sites").glob("*.yaml"))
    assert len(examples) >= 3
    for path in examples:
        config = load_site_config(path)
        assert config.site and config.name
