"""Every time the collector's HTTP API writes has one form: UTC, ISO 8601, ``Z``.

A real collector (real broker) with sites in a province in a storm, a risk level, a
meeting planned in Vietnam time, a what-if asked in Vietnam time and a dead letter;
then every JSON answer of /api/v1 and /healthz (once while the broker connection
fails) is walked, and each string that is a time must be written
``2026-12-07T07:00:00Z`` (or with its fraction of a second), never ``+00:00`` nor
``+07:00``. The OpenAPI document says date-time for each of them.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Report, Status, utc_text
from kienco.readiness_view import verdict_line
from tests.support.board import Board, start_board, wait_until
from tests.support.board_fleet import a_province
from tests.support.mosquitto import Broker

LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
THE_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")
VIETNAM = timezone(timedelta(hours=7))


def times_in(answer: object, where: str = "") -> Iterator[tuple[str, str]]:
    """(where in the answer, the text) of every string in it that reads as a time."""
    if isinstance(answer, dict):
        for key, value in answer.items():
            yield from times_in(value, f"{where}.{key}")
    elif isinstance(answer, list):
        for n, value in enumerate(answer):
            yield from times_in(value, f"{where}[{n}]")
    elif isinstance(answer, str) and LOOKS_LIKE_A_TIME.match(answer):
        yield where, answer


def keys_of(found: list[tuple[str, str]]) -> set[str]:
    return {re.sub(r"\[\d+\]", "", where).rsplit(".", 1)[-1] for where, _ in found}


@pytest.fixture
def board(tmp_path: Path, mosquitto: Broker) -> Iterator[Board]:
    running = start_board(tmp_path, mosquitto)
    a_province(running.collector, "hp")
    yield running
    running.collector.stop()


def test_utc_text_is_what_pydantic_writes_for_a_utc_time() -> None:
    at = datetime(2026, 12, 7, 14, 0, tzinfo=VIETNAM)
    assert utc_text(at) == "2026-12-07T07:00:00Z"
    assert utc_text(at.replace(microsecond=250_000)) == "2026-12-07T07:00:00.250000Z"
    with pytest.raises(ValueError, match="no time zone"):
        utc_text(datetime(2026, 12, 7, 7, 0))  # naive: which 07:00?


def test_the_cli_json_line_of_a_verdict_writes_its_time_the_same_way() -> None:
    status = Status(
        site="hp-bts-1",
        province="hp",
        site_kind="station",
        verdict="ready",
        station_state="up_commercial",
        evaluated_at=datetime(2026, 12, 7, 7, 0, 0, 250_000, tzinfo=UTC),
    )
    line = json.loads(json.dumps(verdict_line(status, "en")))
    assert (
        line["evaluated_at"]
        == "2026-12-07T07:00:00.250000Z"
        == json.loads(status.model_dump_json())["evaluated_at"]
    )


def test_every_time_the_api_writes_is_utc_with_a_z(board: Board) -> None:
    admin = board.bearer("admin")
    url = board.url
    in_vietnam = (datetime.now(VIETNAM) + timedelta(hours=3)).replace(microsecond=0)
    risk = httpx.post(
        f"{url}/api/v1/risk",
        json={"province": "hp", "level": 3, "reason": "bão", "set_by": "t"},
        headers=admin,
    )
    assert risk.status_code == 200, risk.text
    planned = httpx.post(
        f"{url}/api/v1/meetings",
        json={
            "title": "Họp",
            "starts_at": in_vietnam.isoformat(),
            "duration_s": 3600,
            "province": "hp",
        },
        headers=admin,
    )
    assert planned.status_code == 200, planned.text
    meeting = planned.json()["id"]
    # A good report an older collector refused: replayed now, so it has a replayed_at.
    report = Report(
        site="hp-bts-1", province="hp", seq=9, taken_at=datetime.now(UTC), interval_s=60
    )
    board.collector.dead_letters.put(
        received_at=datetime.now(UTC),
        topic="kienco/v1/hp/hp-bts-1/report",
        reason="schema",
        detail="refused by an older version",
        payload=report.model_dump_json().encode(),
    )
    replayed = httpx.post(f"{url}/api/v1/deadletter/replay", json={}, headers=admin)
    assert replayed.status_code == 200 and replayed.json()["replayed"] == 1, replayed.text
    paths = [
        "/api/v1/readiness",
        "/api/v1/readiness?province=hp",
        "/api/v1/sites/hp-bts-kien-an",
        "/api/v1/risk",
        "/api/v1/meetings",
        f"/api/v1/meetings/{meeting}",
        "/api/v1/compliance?province=hp",
        f"/api/v1/whatif/grid-off?province=hp&at={in_vietnam.isoformat()}".replace("+", "%2B"),
        "/api/v1/deadletter?all=true",
        "/api/v1/deadletter/1",
        "/healthz",
    ]
    found: list[tuple[str, str]] = []
    for path in paths:
        answer = httpx.get(f"{url}{path}", headers=admin, timeout=10)
        assert answer.status_code == 200, (path, answer.text)
        found += [(f"{path} {where}", text) for where, text in times_in(answer.json())]
    for answer in (risk, planned, replayed):
        found += [(f"{answer.request.url.path} {w}", t) for w, t in times_in(answer.json())]
    # Each kind of time the API has is among those walked: a test that found none
    # would pass whatever the form.
    assert {
        "generated_at", "evaluated_at", "last_report_at", "at", "starts_at", "created_at",
        "set_at", "dark_at", "received_at", "replayed_at",
    } <= keys_of(found), keys_of(found)  # fmt: skip
    wrong = [f"{where}: {text}" for where, text in found if not THE_FORM.match(text)]
    assert not wrong, "\n".join(wrong)


def test_healthz_writes_the_broker_failure_since_utc_with_a_z(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": f"mqtt://127.0.0.1:{port}",
                "username": None,
                "client_id": f"times-{time.time_ns()}",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0},
        }
    )
    collector = Collector(config)
    collector.start()
    try:
        assert collector.api is not None
        healthz = f"{collector.api.url}/healthz"
        failure = wait_until(
            lambda: httpx.get(healthz, timeout=5).json()["broker_failure"], what="broker_failure"
        )
        assert THE_FORM.match(failure["since"]), failure
        problems = httpx.get(healthz, timeout=5).json()["problems"]
        assert problems and all(THE_FORM.match(p["since"]) for p in problems), problems
        assert abs(datetime.fromisoformat(failure["since"]) - datetime.now(UTC)) < timedelta(
            minutes=1
        )
    finally:
        collector.stop()


def test_the_openapi_document_says_date_time_for_each_time(board: Board) -> None:
    document = httpx.get(f"{board.url}/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]

    def format_of(model: str, field: str) -> str | None:
        shape: dict[str, Any] = schemas[model]["properties"][field]
        kinds = shape.get("anyOf", [shape])
        return next((k.get("format") for k in kinds if k.get("type") == "string"), None)

    for model, field in [
        ("Readiness", "generated_at"),
        ("MeetingJudged", "evaluated_at"),
        ("DeadLetterSummary", "received_at"),
        ("DeadLetterSummary", "replayed_at"),
        ("Status", "evaluated_at"),
        ("Meeting", "starts_at"),
        ("RiskEntry", "set_at"),
    ]:
        assert format_of(model, field) == "date-time", (model, field, schemas[model])
