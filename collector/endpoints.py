"""What each API route answers, for whom (collector/web/api_routes.py serves them).

Every answer is decided here for a :class:`~collector.web.roles.Principal`: a
province's token sees its own province only (lists are filtered, another
province's site or meeting is 404 as if it did not exist, an action on it is
403), and only an admin sets risk levels or replays dead letters. Answers are
JSON bytes, built from the cached encodings where there are some.

Framework-free: the parts of the collector it uses come in as narrow
interfaces (collector/web/ports.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus

from pydantic import BaseModel, TypeAdapter

from collector.api_json import api_json
from collector.meetings import Meeting, MeetingRequest, points_for
from collector.replay import ReplayRequest
from collector.risk import RiskChange
from collector.web.ports import AreaLevel, Desks
from collector.web.roles import Principal
from collector.whatif_route import WHATIF_JSON, BadQuery, parse_query
from contract.wire import utc_now
from rules.compliance import ComplianceReport

__all__ = [
    "READINESS_FILTERS",
    "Endpoints",
    "Reply",
    "json_reply",
    "readiness_reply",
]

log = logging.getLogger("kienco.collector.api")

REPORT_JSON: TypeAdapter[ComplianceReport] = TypeAdapter(ComplianceReport)
READINESS_FILTERS = ("province", "kind", "verdict")
READINESS_CACHE_S = 1.0
"""A readiness list may be up to 1 s old: 10 000 sites are 7 MB of JSON to assemble,
and a board polling it every few seconds must not take the collector's time from
the reports."""

Reply = tuple[HTTPStatus, bytes]


def json_reply(status: HTTPStatus, payload: object) -> Reply:
    return status, api_json(payload)


def error(status: HTTPStatus, message: str) -> Reply:
    return json_reply(status, {"error": message})


def readiness_reply(selected: list[object], encoded: bytes, generated_at: datetime) -> Reply:
    counts: dict[str, int] = {}
    for status in selected:
        verdict = str(getattr(status, "verdict", ""))
        counts[verdict] = counts.get(verdict, 0) + 1
    head = api_json({"generated_at": generated_at, "count": len(selected), "counts": counts})
    return HTTPStatus.OK, head[:-1] + b',"sites":' + encoded + b"}"


def _plain(model: BaseModel) -> object:
    return json.loads(model.model_dump_json())


def _other_province(who: Principal, province: str) -> Reply:
    return error(
        HTTPStatus.FORBIDDEN,
        f"role {who.role} sees province {who.province} only, not {province} / "
        f"vai trò {who.role} chỉ xem được tỉnh {who.province}, không xem được {province}",
    )


def _admins_only(who: Principal, what: str) -> Reply:
    return error(
        HTTPStatus.FORBIDDEN,
        f"{what} needs a token of role admin; this one ({who.name}) is {who.role} / "
        f"việc này cần mã có vai trò admin",
    )


class Endpoints:
    """The answers of /api/v1, over the collector's parts (``desks``)."""

    def __init__(self, desks: Desks, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.desks = desks
        self.clock = clock  # the collector's: its verdicts' time, so a test's too
        self._cache: dict[tuple[tuple[str, str], ...], tuple[float, Reply]] = {}
        self._cache_lock = threading.Lock()

    # --- sites -----------------------------------------------------------------------

    def readiness(self, who: Principal, query: dict[str, str]) -> Reply:
        unknown = sorted(set(query) - set(READINESS_FILTERS))
        if unknown:
            return error(
                HTTPStatus.BAD_REQUEST, f"unknown filter {unknown}; use {list(READINESS_FILTERS)}"
            )
        if who.province is not None:
            asked = query.get("province")
            if asked is not None and asked != who.province:
                return _other_province(who, asked)
            query = {**query, "province": who.province}
        return self._readiness(query)

    def _readiness(self, query: dict[str, str]) -> Reply:
        key = tuple(sorted(query.items()))
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < READINESS_CACHE_S:
                return cached[1]
        statuses = self.desks.statuses
        selected = statuses.select(**query)
        reply = readiness_reply(list(selected), statuses.select_json(selected), self.clock())
        with self._cache_lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (now, reply)
        return reply

    def site(self, who: Principal, site: str) -> Reply:
        status = self.desks.statuses.json_of(site)
        snapshot = self.desks.sites.get(site)
        # Another province's site answers as one that does not exist: no oracle.
        if status is None or snapshot is None or not who.sees(snapshot.province):
            return error(HTTPStatus.NOT_FOUND, f"no site {site!r}")
        meta = snapshot.meta.model_dump_json().encode() if snapshot.meta else b"null"
        return HTTPStatus.OK, b'{"status":' + status + b',"meta":' + meta + b"}"

    # --- risk levels -----------------------------------------------------------------

    def risk(self, who: Principal, province: str | None) -> Reply:
        if who.province is not None:
            if province is not None and province != who.province:
                return _other_province(who, province)
            province = who.province
        current = self.desks.risk.current()
        if province is not None and who.province is not None:
            current = {p: level for p, level in current.items() if p == province}
        history = [_plain(e) for e in self.desks.risk.history(province)]
        return json_reply(HTTPStatus.OK, {"current": current, "history": history})

    def set_risk(self, who: Principal, change: RiskChange) -> Reply:
        if not who.is_admin:
            return _admins_only(who, "setting a risk level")
        entry = self.desks.set_risk(change)
        log.info("risk level of %s set through the API with token %s", change.province, who.name)
        return json_reply(HTTPStatus.OK, _plain(entry))

    # --- meetings --------------------------------------------------------------------

    def _provinces_of(self, meeting: Meeting) -> set[str | None]:
        """Whose a meeting is: its province, and each known point's."""
        provinces: set[str | None] = set()
        for site in meeting.points:
            snapshot = self.desks.sites.get(site)
            provinces.add(snapshot.province if snapshot is not None else meeting.province)
        if meeting.province is not None or not provinces:
            provinces.add(meeting.province)
        return provinces

    def _visible(self, who: Principal, meeting: Meeting) -> bool:
        return who.province is None or who.sees_all(self._provinces_of(meeting))

    def meetings(self, who: Principal) -> Reply:
        shown = [m for m in self.desks.meetings.all() if self._visible(who, m)]
        return json_reply(HTTPStatus.OK, [_plain(m) for m in shown])

    def meeting(self, who: Principal, meeting_id: str) -> Reply:
        meeting = self.desks.meetings.get(meeting_id)
        if meeting is None or not self._visible(who, meeting):
            return error(HTTPStatus.NOT_FOUND, f"no meeting {meeting_id!r}")
        return HTTPStatus.OK, self.desks.judge_meeting(meeting).to_json()

    def plan_meeting(self, who: Principal, request: MeetingRequest) -> Reply:
        if not who.is_admin:
            # A province plans its own meetings: of its province, with its own points.
            if who.province is None:
                return _admins_only(who, "planning a meeting")
            if request.province is None and not request.points:
                request = request.model_copy(update={"province": who.province})
            if request.province not in (None, who.province):
                return _other_province(who, request.province)
        points = points_for(request, self.desks.sites)
        if not points:
            return error(
                HTTPStatus.BAD_REQUEST,
                "no points: name them, or give a province with meeting points",
            )
        if not who.is_admin:
            for site in points:
                snapshot = self.desks.sites.get(site)
                if snapshot is None or snapshot.province != who.province:
                    # An unknown point or another province's: either way not this one's to ask.
                    return error(
                        HTTPStatus.FORBIDDEN,
                        f"point {site!r} is not a site of province {who.province} / "
                        f"điểm {site!r} không thuộc tỉnh {who.province}",
                    )
        meeting = self.desks.plan_meeting(request, points)
        log.info("meeting %s planned through the API with token %s", meeting.id, who.name)
        return json_reply(HTTPStatus.OK, _plain(meeting))

    def rehearse(self, who: Principal, meeting_id: str) -> Reply:
        meeting = self.desks.meetings.get(meeting_id)
        if meeting is None or not self._visible(who, meeting):
            return error(HTTPStatus.NOT_FOUND, f"no meeting {meeting_id!r}")
        if not who.is_admin and who.province is None:  # a province's own: seen above
            return _admins_only(who, "asking for a rehearsal")
        asked_at = self.clock()
        asked = self.desks.request_rehearsal(meeting)
        return json_reply(HTTPStatus.OK, {"requested": asked, "requested_at": asked_at})

    # --- compliance ------------------------------------------------------------------

    def compliance(self, who: Principal, province: str, area_level: AreaLevel | None) -> Reply:
        if not who.sees(province):
            return _other_province(who, province)
        report = self.desks.compliance(province, area_level)
        return HTTPStatus.OK, REPORT_JSON.dump_json(report)

    # --- what if -----------------------------------------------------------------------

    def whatif(self, who: Principal, query: dict[str, str]) -> Reply:
        try:
            asked = parse_query(query)
        except BadQuery as exc:
            return error(HTTPStatus.BAD_REQUEST, str(exc))
        if not who.sees(asked.province):
            return _other_province(who, asked.province)
        known = {s.province for s in self.desks.sites.all() if who.sees(s.province)}
        if asked.province not in known:
            listed = ", ".join(sorted(known))
            return error(
                HTTPStatus.NOT_FOUND,
                f"no site in province {asked.province!r}; the collector knows: {listed}",
            )
        return HTTPStatus.OK, WHATIF_JSON.dump_json(self.desks.whatif(asked))

    # --- dead letters ----------------------------------------------------------------

    def dead_letters(
        self, who: Principal, *, reason: str | None, everything: bool, limit: int
    ) -> Reply:
        if not who.reads_dead_letters:
            return _no_dead_letters(who)
        store = self.desks.dead_letters
        entries = store.select(
            reason=reason, kept_only=not everything, limit=limit, newest_first=True
        )
        return json_reply(
            HTTPStatus.OK,
            {"counts": store.counts(kept_only=True), "entries": [e.summary() for e in entries]},
        )

    def dead_letter(self, who: Principal, number: int) -> Reply:
        if not who.reads_dead_letters:
            return _no_dead_letters(who)
        entry = self.desks.dead_letters.get(number)
        if entry is None:
            return error(HTTPStatus.NOT_FOUND, f"no dead letter {number}")
        return json_reply(HTTPStatus.OK, entry.full())

    def replay(self, who: Principal, request: ReplayRequest) -> Reply:
        if not who.is_admin:
            return _admins_only(who, "replaying dead letters")
        log.info("dead letters replayed through the API with token %s", who.name)
        return json_reply(HTTPStatus.OK, self.desks.replay(request).as_json())


def _no_dead_letters(who: Principal) -> Reply:
    # Raw messages: from any province, some whose province cannot even be told.
    return error(
        HTTPStatus.FORBIDDEN,
        f"dead letters are for the noc, the ministry and admins; role {who.role} cannot read "
        "them / thư lỗi chỉ dành cho noc, bộ và admin",
    )
