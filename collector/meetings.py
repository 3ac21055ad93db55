"""Planned meetings: which points must hold, for how long, and whether each will.

A meeting is declared with its start, duration and points (by default every
meeting point the collector knows in the province). Its status judges each
point for *this* meeting (power until it ends, rules/meeting.py) and with its
latest rehearsal (rules/rehearsal.py). Meetings and rehearsals are kept in SQLite.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.api_json import api_json
from collector.state import SiteStates
from contract.wire import HumanName, Slug, Status, UtcTime
from plumbing.durable import DurableStore
from rules import Policy, SiteSnapshot, evaluate, to_status
from rules.meeting import FAULT_CODES
from rules.rehearsal import Rehearsal, for_meeting

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meeting (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rehearsal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting TEXT NOT NULL,
    site TEXT NOT NULL,
    at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    problems TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rehearsal_site ON rehearsal (site, id);
"""


class MeetingRequest(BaseModel):
    """What ``kienco meeting plan`` (or ``POST /api/v1/meetings``) asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: HumanName
    starts_at: UtcTime
    duration_s: Annotated[float, Field(gt=0, le=7 * 86_400)]
    province: Slug | None = None
    points: tuple[Slug, ...] = Field(
        default=(), description="empty: every meeting point known in the province"
    )
    created_by: HumanName = "kienco"

    @field_validator("starts_at")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        # History stores it as int64 nanoseconds (years 1678-2262): a typo like 0119
        # must be a 400 naming the field, not a failure to store.
        if not 2000 <= value.year <= 2200:
            raise ValueError(f"a meeting starts between 2000 and 2200, not in {value.year}")
        return value


class Meeting(MeetingRequest):
    id: Slug
    created_at: UtcTime


@dataclass(frozen=True, slots=True)
class MeetingStatus:
    meeting: Meeting
    points: tuple[Status, ...]
    evaluated_at: datetime
    # each point's latest rehearsal, whichever meeting it was for: when, passed, problems
    rehearsals: Mapping[str, Rehearsal] = field(default_factory=dict)

    @property
    def ready(self) -> int:
        return sum(1 for p in self.points if p.verdict == "ready")

    def to_json(self) -> bytes:
        counts: dict[str, int] = {}
        for point in self.points:
            counts[point.verdict] = counts.get(point.verdict, 0) + 1
        head = {
            "meeting": json.loads(self.meeting.model_dump_json()),
            "evaluated_at": self.evaluated_at,
            "ready": self.ready,
            "total": len(self.points),
            "counts": counts,
            "rehearsals": {
                site: {"at": r.at, "passed": r.passed, "problems": list(r.problems)}
                for site, r in sorted(self.rehearsals.items())
            },
        }
        body = b",".join(p.model_dump_json(exclude_none=True).encode() for p in self.points)
        return api_json(head)[:-1] + b',"points":[' + body + b"]}"


class MeetingStore(DurableStore):
    SCHEMA = _SCHEMA

    def create(self, request: MeetingRequest, points: Iterable[str], now: datetime) -> Meeting:
        meeting = Meeting(
            **{**request.model_dump(), "points": tuple(points)},
            id=f"m-{now:%Y%m%d}-{secrets.token_hex(3)}",
            created_at=now,
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO meeting VALUES (?, ?)", (meeting.id, meeting.model_dump_json())
            )
        return meeting

    def get(self, meeting_id: str) -> Meeting | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM meeting WHERE id = ?", (meeting_id,)
            ).fetchone()
        return Meeting.model_validate_json(row[0]) if row else None

    def all(self) -> list[Meeting]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM meeting ORDER BY rowid DESC").fetchall()
        return [Meeting.model_validate_json(r[0]) for r in rows]

    def record(self, meeting_id: str, rehearsal: Rehearsal) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO rehearsal (meeting, site, at, passed, problems) VALUES (?,?,?,?,?)",
                (
                    meeting_id,
                    rehearsal.site,
                    rehearsal.at.isoformat(),
                    int(rehearsal.passed),
                    json.dumps(rehearsal.problems, ensure_ascii=False),
                ),
            )

    def latest_rehearsals(self, sites: Iterable[str]) -> dict[str, Rehearsal]:
        """Each site's newest rehearsal, whichever meeting it was for."""
        wanted = list(sites)
        found: dict[str, Rehearsal] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self._db.execute(
                    "SELECT site, at, passed, problems FROM rehearsal WHERE id IN "
                    "(SELECT MAX(id) FROM rehearsal WHERE site IN "
                    f"({','.join('?' * len(chunk))}) GROUP BY site)",
                    chunk,
                ).fetchall()
                for site, at, passed, problems in rows:
                    found[site] = Rehearsal(
                        site, datetime.fromisoformat(at), bool(passed), tuple(json.loads(problems))
                    )
        return found


class KnownSites(Protocol):
    def all(self) -> list[SiteSnapshot]: ...


def points_for(request: MeetingRequest, states: KnownSites) -> list[str]:
    """The meeting's points: as given, else every meeting point known in its province."""
    if request.points:
        return list(request.points)
    return sorted(
        s.site
        for s in states.all()
        if s.site_kind == "meeting_point"
        and (request.province is None or s.province == request.province)
    )


UNKNOWN_PROVINCE = "unknown"
"""The province of a point never heard of, in a meeting that names none: a slug (a
status's province is one), and no province's code."""


def never_heard(site: str, meeting: Meeting) -> SiteSnapshot:
    """A point the collector has never heard of (not installed yet, or forgotten across a
    restart): judged as such (``no_report_yet``, unknown), never a page that fails."""
    return SiteSnapshot(site=site, province=meeting.province or UNKNOWN_PROVINCE)


def meeting_status(
    meeting: Meeting,
    states: SiteStates,
    store: MeetingStore,
    policy: Policy,
    now: datetime,
    *,
    risk_level: Callable[[str], int],
) -> MeetingStatus:
    """Every point judged for this meeting (its start and duration), with its latest rehearsal."""
    rehearsals = store.latest_rehearsals(meeting.points)
    max_age = policy.meeting.rehearsal_max_age_s
    statuses = []
    for site in meeting.points:
        snapshot = states.get(site) or never_heard(site, meeting)
        evaluation = evaluate(
            snapshot,
            policy,
            now,
            risk_level=risk_level(snapshot.province),
            meeting_duration_s=meeting.duration_s,
            # a point already on generator or battery must last from now to the end
            meeting_starts_at=meeting.starts_at,
        )
        judged = for_meeting(
            evaluation,
            rehearsals.get(site),
            now=now,
            starts_at=meeting.starts_at,
            max_age_s=max_age,
        )
        statuses.append(to_status(judged, snapshot))
    order = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}
    statuses.sort(key=lambda s: (order[s.verdict], s.site))
    return MeetingStatus(meeting, tuple(statuses), now, rehearsals)


# What a rehearsal (a test call) checks: the paths, their quality, the room's devices.
_REHEARSED_RULES = frozenset({"freshness", "multipath", "link_quality"})
_ROOM_CODES = frozenset(FAULT_CODES.values()) | {
    "room_unknown",
    "room_error",
    "room_devices_unknown",
}


def rehearsal_from(status: Status, now: datetime, *, lang: str = "vi") -> Rehearsal:
    """A point's rehearsal result, from its judgement right after the check ran."""
    problems = tuple(
        (r.text_vi if lang == "vi" else r.text_en)
        for r in status.reasons
        if r.severity != "info" and (r.rule in _REHEARSED_RULES or r.code in _ROOM_CODES)
    )
    return Rehearsal(status.site, now, not problems, problems)
