"""The API against its own OpenAPI document: schemathesis generates requests from it.

A real collector (real broker) with sites in two provinces; every operation of
/api/v1/openapi.json is called with a bounded number of generated examples, as an
admin (who reaches every route) and as a province (who is refused or filtered).
No answer may be a 500, and every 200 must match the schema the document gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.board import Board, start_board
from tests.support.mosquitto import Broker

EXAMPLES = 15  # per operation and role: bounded, so the suite stays minutes long


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory, mosquitto: Broker) -> Iterator[Board]:
    running = start_board(tmp_path_factory.mktemp("schema"), mosquitto)
    yield running
    running.collector.stop()


def _operations(board: Board) -> list[Any]:
    document = httpx.get(f"{board.url}/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    return [op for op in operations if op.path != "/api/v1/throughput"]  # streamed bytes


def test_the_document_names_every_route_and_its_models(board: Board) -> None:
    document = httpx.get(f"{board.url}/api/v1/openapi.json").json()
    paths = set(document["paths"])
    assert {
        "/api/v1/readiness",
        "/api/v1/sites/{site}",
        "/api/v1/risk",
        "/api/v1/meetings",
        "/api/v1/meetings/{meeting_id}",
        "/api/v1/meetings/{meeting_id}/rehearse",
        "/api/v1/compliance",
        "/api/v1/deadletter",
        "/api/v1/deadletter/{number}",
        "/api/v1/deadletter/replay",
        "/api/v1/whoami",
        "/login",
        "/logout",
        "/healthz",
    } <= paths
    models = set(document["components"]["schemas"])
    assert {"Status", "RiskChange", "MeetingRequest", "Readiness", "ErrorAnswer"} <= models
    schemes = document["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


def _exercise(operation: Any, url: str, headers: dict[str, str]) -> list[str]:
    """Call one operation with generated cases; what failed, as text (one run names all)."""
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=30)
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except Exception as exc:  # schemathesis's failure group: its text names the case
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:1500])
            raise

    try:
        check()
    except Exception as exc:  # hypothesis shrank it: its first failure's text, or this
        return failures[:1] or [f"{operation.method.upper()} {operation.path}: {exc}"[:1500]]
    return []


@pytest.mark.parametrize("who", ["admin", "hp"])
def test_no_generated_request_gets_a_500(board: Board, who: str) -> None:
    failures = [
        failure
        for operation in _operations(board)
        for failure in _exercise(operation, board.url, board.bearer(who))
    ]
    assert not failures, "\n".join(failures[:10])
