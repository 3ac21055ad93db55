"""Risk levels: set by CLI and API, kept with who/when/why, tighten the verdicts at once."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from collector.config import CollectorConfig
from collector.risk import RiskChange
from collector.service import Collector
from contract.wire import Meta, PowerReading, Report
from kienco.cli import main as kienco_main
from tests.support.mosquitto import Broker
from tests.test_rules_support import two_paths


def start(tmp_path: Path, broker: Broker, **http: object) -> Collector:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"risk-{time.time_ns()}",
                "topic_filter": "kienco/v1/rk/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0, "anonymous_read": True, **http},
        }
    )
    collector = Collector(config)
    collector.start()
    assert collector.wait_connected(10)
    return collector


@pytest.fixture
def collector(
    tmp_path: Path, mosquitto: Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Collector]:
    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", "risk-admin-token")  # what `kienco risk set` sends
    running = start(tmp_path, mosquitto, admin_token={"env": "KIENCO_ADMIN_TOKEN"})
    yield running
    running.stop()


def test_level_4_holds_an_ordinary_station_to_the_hardened_target(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    collector.handle(
        "kienco/v1/rk/rk-bts-1/meta",
        Meta(
            site="rk-bts-1",
            province="rk",
            site_kind="station",
            name="Trạm BTS thử",
            interval_s=60,
            agent_version="t",
            at=now,
        )
        .model_dump_json()
        .encode(),
        0,
        0,
    )
    ups = PowerReading(
        device="ups1",
        mains_present=True,
        on_battery=False,
        load_pct=40.0,
        battery_charge_pct=100.0,
        battery_runtime_s=20 * 3600.0,
    )
    collector.handle(
        "kienco/v1/rk/rk-bts-1/report",
        Report(
            site="rk-bts-1",
            province="rk",
            seq=1,
            taken_at=now,
            interval_s=60,
            power=(ups,),
            links=two_paths(),
        )
        .model_dump_json()
        .encode(),
        0,
        0,
    )
    before = collector.verdicts.get("rk-bts-1")
    assert before is not None and before.verdict == "ready" and before.risk_level == 0

    assert collector.api is not None
    url = collector.api.url
    assert (
        kienco_main(
            [
                "risk",
                "set",
                "--province",
                "rk",
                "--level",
                "4",
                "--reason",
                "Bão số 3 (Yagi) đổ bộ",
                "--by",
                "Sở TTTT",
                "--url",
                url,
            ]
        )
        == 0
    )
    entry = json.loads(capsys.readouterr().out)
    assert entry["level"] == 4 and entry["set_by"] == "Sở TTTT"

    after = collector.verdicts.get("rk-bts-1")
    assert after is not None and after.risk_level == 4
    assert after.verdict != "ready"
    short = [r for r in after.reasons if r.code == "backup_hours_short"]
    assert short and "72" in short[0].text_en

    assert kienco_main(["risk", "show", "--province", "rk", "--url", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["current"]["rk"] == 4
    assert shown["history"][0]["reason"] == "Bão số 3 (Yagi) đổ bộ"
    # Kept across a restart of the store.
    assert collector.risk.level("rk") == 4


def test_with_an_admin_token_a_change_needs_it(tmp_path: Path, mosquitto: Broker) -> None:
    collector = start(tmp_path, mosquitto, admin_token={"value": "s3cret-s3cret-s3cret"})
    try:
        assert collector.api is not None
        url = f"{collector.api.url}/api/v1/risk"
        body = {"province": "rk", "level": 3, "reason": "áp thấp", "set_by": "test"}
        assert httpx.post(url, json=body).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert httpx.post(url, json=body, headers=wrong).status_code == 403
        bad = httpx.post(
            url, json={**body, "level": 9}, headers={"Authorization": "Bearer s3cret-s3cret-s3cret"}
        )
        assert bad.status_code == 400 and "level" in bad.text
        ok = httpx.post(url, json=body, headers={"Authorization": "Bearer s3cret-s3cret-s3cret"})
        assert ok.status_code == 200 and collector.risk.level("rk") == 3
    finally:
        collector.stop()


@pytest.mark.parametrize(
    "reason",
    [
        "Bão số 3\nERROR collector: broker unreachable",  # a forged second log line
        "Bão số 3\r\n\x1b[2J\x1b[31mcleared\x1b[0m",  # a terminal's screen cleared
        "Bão\u2028số 3\u202e",  # a Unicode line break, a bidi override
    ],
)
def test_a_reason_is_logged_as_one_line_of_text(
    collector: Collector, caplog: pytest.LogCaptureFixture, reason: str
) -> None:
    """The reason and who set it are what an admin typed or pasted: the log line that
    records the level stays one line, with no control sequence a terminal acts on."""
    with caplog.at_level(logging.WARNING, logger="kienco.collector"):
        entry = collector.set_risk(
            RiskChange(province="rk", level=3, reason=reason, set_by="Sở\nTTTT")
        )
    assert entry.reason == reason  # kept as given: the history shows what was typed
    [logged] = [r.getMessage() for r in caplog.records if "risk level 3" in r.getMessage()]
    assert logged.isprintable(), repr(logged)
    assert "Bão" in logged and "Sở TTTT" in logged
