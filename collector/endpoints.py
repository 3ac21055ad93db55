"""What each API route answers (collector/api.py serves them; this module decides them)."""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from pydantic import BaseModel, TypeAdapter

from collector.api import READINESS_FILTERS, Reply, json_reply, readiness_reply
from collector.meetings import MeetingRequest, meeting_status, points_for
from collector.replay import ReplayRequest
from collector.risk import RiskChange
from collector.whatif_route import whatif_reply
from rules.compliance import ComplianceReport, build_report

REPORT_JSON: TypeAdapter[ComplianceReport] = TypeAdapter(ComplianceReport)

if TYPE_CHECKING:
    from collector.service import Collector


READINESS_CACHE_S = 1.0
"""A readiness list may be up to 1 s old: 10 000 sites are 7 MB of JSON to assemble,
and a board polling it every few seconds must not take the collector's time from
the reports."""


class Endpoints:
    """The API backend over a running collector."""

    def __init__(self, collector: Collector) -> None:
        self.c = collector
        self._cache: dict[tuple[tuple[str, str], ...], tuple[float, Reply]] = {}
        self._cache_lock = threading.Lock()

    def _readiness(self, query: dict[str, str]) -> Reply:
        key = tuple(sorted(query.items()))
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < READINESS_CACHE_S:
                return cached[1]
        selected = self.c.verdicts.select(**query)
        reply = readiness_reply(selected, self.c.verdicts.select_json(selected))
        with self._cache_lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (now, reply)
        return reply

    def api_get(self, parts: list[str], query: dict[str, str]) -> Reply:
        c = self.c
        match parts:
            case ["readiness"]:
                unknown = sorted(set(query) - set(READINESS_FILTERS))
                if unknown:
                    return json_reply(
                        HTTPStatus.BAD_REQUEST,
                        {"error": f"unknown filter {unknown}; use {list(READINESS_FILTERS)}"},
                    )
                return self._readiness(query)
            case ["sites", site]:
                status = c.verdicts.json_of(site)
                snapshot = c.states.get(site)
                if status is None or snapshot is None:
                    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no site {site!r}"})
                meta = snapshot.meta.model_dump_json().encode() if snapshot.meta else b"null"
                return HTTPStatus.OK, b'{"status":' + status + b',"meta":' + meta + b"}"
            case ["risk"]:
                history = [_plain(e) for e in c.risk.history(query.get("province"))]
                return json_reply(HTTPStatus.OK, {"current": c.risk.current(), "history": history})
            case ["meetings"]:
                return json_reply(HTTPStatus.OK, [_plain(m) for m in c.meetings.all()])
            case ["compliance"]:
                return self._compliance(query)
            case ["whatif", "grid-off"]:
                return whatif_reply(c, query)
            case ["deadletter"]:
                return self._dead_letters(query)
            case ["deadletter", number] if number.isdigit():
                entry = c.dead_letters.get(int(number))
                if entry is None:
                    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no dead letter {number}"})
                return json_reply(HTTPStatus.OK, entry.full())
            case ["meetings", meeting_id]:
                meeting = c.meetings.get(meeting_id)
                if meeting is None:
                    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no meeting {meeting_id!r}"})
                judged = meeting_status(
                    meeting, c.states, c.meetings, c.policy, c.clock(), risk_level=c.risk_of
                )
                return HTTPStatus.OK, judged.to_json()
        return json_reply(
            HTTPStatus.NOT_FOUND, {"error": f"no such path: /api/v1/{'/'.join(parts)}"}
        )

    def _dead_letters(self, query: dict[str, str]) -> Reply:
        limit = query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            return json_reply(HTTPStatus.BAD_REQUEST, {"error": "limit: a number, 1 to 10000"})
        store = self.c.dead_letters
        entries = store.select(
            reason=query.get("reason"),
            kept_only=query.get("all") not in ("1", "true"),
            limit=int(limit),
            newest_first=True,
        )
        return json_reply(
            HTTPStatus.OK,
            {"counts": store.counts(kept_only=True), "entries": [e.summary() for e in entries]},
        )

    def _compliance(self, query: dict[str, str]) -> Reply:
        c = self.c
        province = query.get("province")
        level = query.get("area_level")
        if province is None or level not in (None, "area", "province"):
            return json_reply(
                HTTPStatus.BAD_REQUEST,
                {"error": "give province=<code> (and optionally area_level=area|province)"},
            )
        report = build_report(
            {s.site: s for s in c.states.all()},
            c.inventory,
            c.policy,
            c.clock(),
            province=province,
            area_level=level,  # type: ignore[arg-type]
            policy_source=str(c.config.policy or "rules/default-policy.yaml"),
        )
        return HTTPStatus.OK, REPORT_JSON.dump_json(report)

    def api_post(self, parts: list[str], body: BaseModel | None) -> Reply:
        c = self.c
        match parts, body:
            case ["risk"], RiskChange():
                return json_reply(HTTPStatus.OK, _plain(c.set_risk(body)))
            case ["meetings"], MeetingRequest():
                points = points_for(body, c.states)
                if not points:
                    return json_reply(
                        HTTPStatus.BAD_REQUEST,
                        {"error": "no points: name them, or give a province with meeting points"},
                    )
                return json_reply(HTTPStatus.OK, _plain(c.plan_meeting(body, points)))
            case ["deadletter", "replay"], ReplayRequest():
                return json_reply(HTTPStatus.OK, c.replayer.replay(body).as_json())
            case ["meetings", meeting_id, "rehearse"], None:
                meeting = c.meetings.get(meeting_id)
                if meeting is None:
                    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no meeting {meeting_id!r}"})
                return json_reply(HTTPStatus.OK, {"requested": c.request_rehearsal(meeting)})
        return json_reply(
            HTTPStatus.NOT_FOUND, {"error": f"no such path: /api/v1/{'/'.join(parts)}"}
        )


def _no_such(parts: list[str]) -> Reply:
    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: /api/v1/{'/'.join(parts)}"})


def _plain(model: BaseModel) -> object:
    return json.loads(model.model_dump_json())
