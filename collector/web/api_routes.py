"""The /api/v1 routes: parse, check who asks, and let collector/endpoints.py answer.

Each answer is worked out in a worker thread (a bounded pool: the event loop
never waits on SQLite or a 7 MB join) as a step of the collector's ``api`` loop
(collector/supervision.py): an error is logged once per kind, counted, and
answered 500 with ``{"error": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from collector.endpoints import Endpoints, Reply, json_reply
from collector.meetings import Meeting, MeetingRequest
from collector.replay import ReplayRequest
from collector.risk import RiskChange, RiskEntry
from collector.web.access import changer, reader
from collector.web.models import (
    DeadLetterFull,
    DeadLetterList,
    ErrorAnswer,
    MeetingJudged,
    Readiness,
    RehearsalAsked,
    ReplayAnswer,
    RiskView,
    SiteView,
    WhoAmI,
)
from collector.web.roles import Principal
from collector.web.workers import Workers
from contract.wire import SLUG_PATTERN
from rules.compliance import ComplianceReport
from rules.whatif import WhatIf

__all__ = ["router"]

SlugPath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
SlugQuery = Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)]
Reader = Annotated[Principal, Depends(reader)]
Changer = Annotated[Principal, Depends(changer)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer} for code in (400, 401, 403, 404, 500, 503)
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)


async def _answer(request: Request, decide: Callable[[Endpoints], Reply]) -> Response:
    endpoints: Endpoints = request.app.state.endpoints
    workers: Workers = request.app.state.workers
    return _reply(await workers.run(decide, endpoints))


@router.get("/readiness", responses={200: {"model": Readiness}})
async def readiness(
    request: Request,
    who: Reader,
    province: SlugQuery = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    verdict: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Every site's verdict (a province's token: its own sites only), worst first counted."""
    query = dict(request.query_params)
    return await _answer(request, lambda e: e.readiness(who, query))


@router.get("/sites/{site}", responses={200: {"model": SiteView}})
async def site(request: Request, who: Reader, site: SlugPath) -> Response:
    """One site: its verdict and what it says of itself. Another province's: 404."""
    return await _answer(request, lambda e: e.site(who, site))


@router.get("/risk", responses={200: {"model": RiskView}})
async def risk(request: Request, who: Reader, province: SlugQuery = None) -> Response:
    """Current risk levels and their history (who set each, when, why)."""
    return await _answer(request, lambda e: e.risk(who, province))


@router.post("/risk", responses={200: {"model": RiskEntry}})
async def set_risk(request: Request, who: Changer, change: RiskChange) -> Response:
    """Set a province's level (admin); its sites are judged again at once."""
    return await _answer(request, lambda e: e.set_risk(who, change))


@router.get("/meetings", responses={200: {"model": list[Meeting]}})
async def meetings(request: Request, who: Reader) -> Response:
    """Planned meetings, newest first (a province's token: its own)."""
    return await _answer(request, lambda e: e.meetings(who))


@router.post("/meetings", responses={200: {"model": Meeting}})
async def plan_meeting(request: Request, who: Changer, meeting: MeetingRequest) -> Response:
    """Plan a meeting (admin, or a province for its own points)."""
    return await _answer(request, lambda e: e.plan_meeting(who, meeting))


@router.get("/meetings/{meeting_id}", responses={200: {"model": MeetingJudged}})
async def meeting(request: Request, who: Reader, meeting_id: SlugPath) -> Response:
    """N of M points ready for this meeting, and why each other one is not."""
    return await _answer(request, lambda e: e.meeting(who, meeting_id))


@router.post("/meetings/{meeting_id}/rehearse", responses={200: {"model": RehearsalAsked}})
async def rehearse(request: Request, who: Changer, meeting_id: SlugPath) -> Response:
    """Ask every point of the meeting to run its pre-meeting check now."""
    return await _answer(request, lambda e: e.rehearse(who, meeting_id))


@router.get("/compliance", responses={200: {"model": ComplianceReport}})
async def compliance(
    request: Request,
    who: Reader,
    province: SlugQuery = None,
    area_level: Literal["area", "province"] | None = None,
) -> Response:
    """Hardened stations per area of a province: compliant, not (and why), missing."""
    if province is None:
        return _reply(
            json_reply(
                HTTPStatus.BAD_REQUEST,
                {"error": "give province=<code> (and optionally area_level=area|province)"},
            )
        )
    return await _answer(request, lambda e: e.compliance(who, province, area_level))


@router.get("/whatif/grid-off", responses={200: {"model": WhatIf}})
async def whatif_grid_off(
    request: Request,
    who: Reader,
    province: Annotated[str | None, Query(max_length=64, description="e.g. hp")] = None,
    at: Annotated[
        str | None, Query(max_length=64, description="ISO 8601 with offset; default now")
    ] = None,
    hours: Annotated[str | None, Query(max_length=32, description="horizon, default 12")] = None,
    meeting_s: Annotated[
        str | None, Query(max_length=32, description="default: the policy's meeting")
    ] = None,
) -> Response:
    """If mains fail across a province: which sites go dark by when, which meeting points
    hold, which areas lose all their hardened stations."""
    query = dict(request.query_params)
    return await _answer(request, lambda e: e.whatif(who, query))


@router.get("/deadletter", responses={200: {"model": DeadLetterList}})
async def dead_letters(
    request: Request,
    who: Reader,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    all: Annotated[str | None, Query(description="1 or true: replayed ones too")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    """Rejected messages kept, newest first (noc, ministry, admin)."""
    everything = all in ("1", "true")
    return await _answer(
        request, lambda e: e.dead_letters(who, reason=reason, everything=everything, limit=limit)
    )


@router.get("/deadletter/{number}", responses={200: {"model": DeadLetterFull}})
async def dead_letter(
    request: Request, who: Reader, number: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    """One kept message, with its payload."""
    return await _answer(request, lambda e: e.dead_letter(who, number))


@router.post("/deadletter/replay", responses={200: {"model": ReplayAnswer}})
async def replay(request: Request, who: Changer, body: ReplayRequest) -> Response:
    """Drive kept messages through the decode path again, after a fix (admin)."""
    return await _answer(request, lambda e: e.replay(who, body))


@router.get("/whoami", response_model=WhoAmI)
async def whoami(who: Reader) -> dict[str, object]:
    """Who this token or session is, and what it may see."""
    return who.as_json()


def _reply(reply: Reply) -> Response:
    return Response(reply[1], status_code=int(reply[0]), media_type="application/json")
