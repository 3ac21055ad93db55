"""The shapes of the API's answers, for its OpenAPI document (GET /api/v1/openapi.json).

Most answers are assembled from cached JSON (collector/endpoints.py) rather than
through these models: 10 000 statuses re-validated per request would cost what
the cache saves. The models say what that JSON is, and the schema test checks
the answers against them.
"""

from __future__ import annotations

from pydantic import BaseModel

from collector.meetings import Meeting
from collector.risk import RiskEntry
from contract.wire import Meta, Status, UtcTime

__all__ = [
    "DeadLetterFull",
    "DeadLetterList",
    "DeadLetterSummary",
    "ErrorAnswer",
    "MeetingJudged",
    "Readiness",
    "RehearsalAsked",
    "RehearsalSeen",
    "ReplayAnswer",
    "RiskView",
    "SiteView",
    "WhoAmI",
]


class ErrorAnswer(BaseModel):
    error: str
    problems: list[str] | None = None


class Readiness(BaseModel):
    generated_at: UtcTime
    count: int
    counts: dict[str, int]
    sites: list[Status]


class SiteView(BaseModel):
    status: Status
    meta: Meta | None


class RiskView(BaseModel):
    current: dict[str, int]
    history: list[RiskEntry]


class RehearsalSeen(BaseModel):
    at: UtcTime
    passed: bool
    problems: list[str]


class MeetingJudged(BaseModel):
    meeting: Meeting
    evaluated_at: UtcTime
    ready: int
    total: int
    counts: dict[str, int]
    # each point's latest rehearsal (whichever meeting it was for); a point never
    # rehearsed is not listed
    rehearsals: dict[str, RehearsalSeen]
    points: list[Status]


class RehearsalAsked(BaseModel):
    requested: list[str]
    # the collector's time of the request: a point has answered once its rehearsal in
    # GET /meetings/{id} is at least this recent
    requested_at: UtcTime


class DeadLetterSummary(BaseModel):
    id: int
    received_at: UtcTime
    kind: str
    topic: str
    reason: str
    detail: str
    payload_bytes: int
    replays: int
    replayed_at: UtcTime | None


class DeadLetterFull(DeadLetterSummary):
    payload: str
    payload_encoding: str


class DeadLetterList(BaseModel):
    counts: dict[str, int]
    entries: list[DeadLetterSummary]


class ReplayAnswer(BaseModel):
    replayed: int
    replayed_ids: list[int]
    still_refused: list[dict[str, object]]


class WhoAmI(BaseModel):
    name: str
    role: str
    province: str | None
    via: str
    admin: bool
