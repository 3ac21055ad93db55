"""Changes through the API need the admin token, always — being on the collector's machine is
no credential (a reverse proxy on the same host would make every client an admin).

Real collector, real broker, requests from loopback: refused without the token, accepted
with it, through the API and through the CLI commands that change things.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Meta
from kienco.cli import main as kienco_main
from tests.support.mosquitto import Broker

TOKEN = "t0ken-for-the-tests"
RISK = {"province": "wa", "level": 3, "reason": "áp thấp nhiệt đới", "set_by": "test"}


def start(tmp_path: Path, broker: Broker, **http: object) -> Collector:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"write-auth-{time.time_ns()}",
                "topic_filter": "kienco/v1/wa/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"host": "127.0.0.1", "port": 0, "anonymous_read": True, **http},
        }
    )
    collector = Collector(config)
    collector.start()
    assert collector.wait_connected(10)
    return collector


@pytest.fixture
def guarded(tmp_path: Path, mosquitto: Broker) -> Iterator[Collector]:
    running = start(tmp_path, mosquitto, admin_token={"value": TOKEN})
    # A meeting point, so a meeting can be planned for the province.
    meta = Meta(
        site="wa-dc-1",
        province="wa",
        site_kind="meeting_point",
        name="Điểm cầu thử",
        interval_s=60,
        agent_version="t",
        at=datetime.now(UTC),
    )
    running.handle("kienco/v1/wa/wa-dc-1/meta", meta.model_dump_json().encode(), 0, 0)
    yield running
    running.stop()


def url_of(collector: Collector) -> str:
    assert collector.api is not None
    return collector.api.url


def test_without_a_configured_token_the_api_is_read_only_even_from_loopback(
    tmp_path: Path, mosquitto: Broker
) -> None:
    collector = start(tmp_path, mosquitto)
    try:
        url = url_of(collector)
        refused = httpx.post(f"{url}/api/v1/risk", json=RISK)
        assert refused.status_code == 403
        assert "http.admin_token" in refused.json()["error"]  # says how to fix it
        assert collector.risk.level("wa") == 0
        meeting = {"title": "t", "starts_at": datetime.now(UTC).isoformat(), "duration_s": 3600}
        assert httpx.post(f"{url}/api/v1/meetings", json=meeting).status_code == 403
        assert collector.meetings.all() == []
        # Reading stays open.
        assert httpx.get(f"{url}/api/v1/risk").status_code == 200
    finally:
        collector.stop()


def test_loopback_without_the_token_is_refused_with_it_accepted(guarded: Collector) -> None:
    url = f"{url_of(guarded)}/api/v1/risk"
    missing = httpx.post(url, json=RISK)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrongs = (b"Bearer nope", f"Basic {TOKEN}".encode(), f"Bearer {TOKEN}x".encode())
    for wrong in (*wrongs, "Bearer đúng".encode()):  # not ASCII: refused, no crash
        assert httpx.post(url, json=RISK, headers={b"Authorization": wrong}).status_code == 403
    assert guarded.risk.level("wa") == 0
    ok = httpx.post(url, json=RISK, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert guarded.risk.level("wa") == 3


def test_risk_set_sends_the_token_from_the_environment_or_a_file(
    guarded: Collector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = url_of(guarded)
    command = ["risk", "set", "--province", "wa", "--reason", "bão", "--url", url]
    monkeypatch.delenv("KIENCO_ADMIN_TOKEN", raising=False)
    assert kienco_main([*command, "--level", "4"]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "KIENCO_ADMIN_TOKEN" in err and "--token-file" in err
    assert guarded.risk.level("wa") == 0

    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", "wrong")
    assert kienco_main([*command, "--level", "4"]) == 1
    assert "refused the admin token" in capsys.readouterr().err
    assert guarded.risk.level("wa") == 0

    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", TOKEN)
    assert kienco_main([*command, "--level", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["level"] == 4
    assert guarded.risk.level("wa") == 4

    monkeypatch.delenv("KIENCO_ADMIN_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert kienco_main([*command, "--level", "2", "--token-file", str(token_file)]) == 0
    assert guarded.risk.level("wa") == 2
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    assert kienco_main([*command, "--level", "1", "--token-env", "MY_TOKEN"]) == 0
    assert guarded.risk.level("wa") == 1


def test_meeting_plan_and_rehearse_need_the_token(
    guarded: Collector, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url_of(guarded)
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    plan = ["meeting", "plan", "--at", at, "--duration", "1h", "--province", "wa", "--url", url]
    monkeypatch.delenv("KIENCO_ADMIN_TOKEN", raising=False)
    with pytest.raises(SystemExit) as refused:
        kienco_main(plan)
    assert "401" in str(refused.value) and "KIENCO_ADMIN_TOKEN" in str(refused.value)
    assert guarded.meetings.all() == []

    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", TOKEN)
    assert kienco_main(plan) == 0
    meeting = json.loads(capsys.readouterr().out)["id"]
    assert [m.id for m in guarded.meetings.all()] == [meeting]

    rehearse = ["meeting", "rehearse", meeting, "--wait", "0", "--json", "--url", url]
    monkeypatch.delenv("KIENCO_ADMIN_TOKEN")
    with pytest.raises(SystemExit) as refused:
        kienco_main(rehearse)
    assert "401" in str(refused.value)
    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", TOKEN)
    kienco_main(rehearse)
    assert json.loads(capsys.readouterr().out)["points"][0]["site"] == "wa-dc-1"


def test_help_says_changes_need_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["risk", "set"], ["meeting", "plan"], ["meeting", "rehearse"]):
        with pytest.raises(SystemExit):
            kienco_main([*command, "--help"])
        out = capsys.readouterr().out
        assert "KIENCO_ADMIN_TOKEN" in out and "--token-file" in out, command


@pytest.mark.parametrize(
    ("token", "said"),
    [
        ({"value": "short"}, "5 characters"),
        ({"env": "KIENCO_TEST_UNSET_TOKEN"}, "KIENCO_TEST_UNSET_TOKEN is not set"),
    ],
)
def test_a_weak_or_missing_token_stops_the_collector_with_the_key_and_the_fix(
    tmp_path: Path,
    token: dict[str, str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("KIENCO_TEST_UNSET_TOKEN", raising=False)
    config = tmp_path / "collector.yaml"
    config.write_text(
        json.dumps(
            {
                "broker": {"url": "mqtt://127.0.0.1:1", "username": None},
                "influx": None,
                "data_dir": str(tmp_path / "data"),
                "http": {"port": 0, "admin_token": token},
            }
        )
    )
    assert kienco_main(["collector", "run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "http.admin_token" in err and said in err and "Fix:" in err
