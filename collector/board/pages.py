"""Each page of the board for one viewer: what it shows, and what it may not.

A page maker reads the collector's parts (collector/board/ports.py) for a
:class:`~collector.web.roles.Principal` and returns a :class:`Page`: templates and
their context. Whatever the viewer may not see is left out here, before any
template sees it: another province's site, meeting, compliance or risk page is a
404, the same as one that does not exist (no oracle). Runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from collector.board import views
from collector.board.history import site_charts
from collector.board.ports import BoardParts
from collector.meetings import Meeting
from collector.web.roles import Principal
from contract.wire import Status
from plumbing.labels import LOCAL_TZ

__all__ = [
    "KINDS",
    "VERDICTS",
    "Page",
    "compliance_index",
    "compliance_page",
    "error_page",
    "meeting_page",
    "meetings_page",
    "overview_page",
    "province_page",
    "provinces_seen",
    "risk_page",
    "site_page",
    "visible_meeting",
]

KINDS = ("meeting_point", "station", "power_room")
VERDICTS = ("not_ready", "unknown", "degraded", "ready")


@dataclass
class Page:
    """A page: ``template`` extends base.html; ``live`` is its part fetched again on a
    change (None: the page has none), ``stream`` the query of its /live stream."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    live: str | None = None
    stream: str | None = None
    status: HTTPStatus = HTTPStatus.OK
    nav: str = ""
    refresh_s: int | None = 60  # without JavaScript, a wall screen reloads this often


def error_page(status: HTTPStatus, key: str, detail: str | None = None) -> Page:
    return Page("error.html", {"key": key, "detail": detail}, status=status)


def not_found() -> Page:
    return error_page(HTTPStatus.NOT_FOUND, "not_found")


def _visible(statuses: Iterable[Status], who: Principal) -> list[Status]:
    return [s for s in statuses if who.sees(s.province)]


def provinces_seen(parts: BoardParts, who: Principal) -> list[str]:
    """The provinces this viewer may see that the collector knows (sites, risk levels)."""
    if who.province is not None:
        return [who.province]
    known = {s.province for s in parts.desks.statuses.select()}
    known |= set(parts.desks.risk.current())
    return sorted(known)


def visible_meeting(parts: BoardParts, who: Principal, meeting: Meeting) -> bool:
    """A province sees a meeting only when it and all its points are its own."""
    if who.province is None:
        return True
    provinces: set[str | None] = {meeting.province} if meeting.province is not None else set()
    for site in meeting.points:
        snapshot = parts.desks.sites.get(site)
        provinces.add(snapshot.province if snapshot is not None else meeting.province)
    return bool(provinces) and who.sees_all(provinces)


# --- pages ----------------------------------------------------------------------------


def overview_page(parts: BoardParts, who: Principal, now: datetime) -> Page:
    statuses = parts.desks.statuses.select(province=who.province)
    risk = {p: level for p, level in parts.desks.risk.current().items() if who.sees(p)}
    lines = views.overview(_visible(statuses, who), risk, now)
    for province, level in risk.items():  # a province with a level and no site yet
        if not any(line.province == province for line in lines):
            lines.append(views.ProvinceLine(province=province, risk_level=level))
    return Page(
        "overview.html",
        {"lines": lines, "now": now},
        live="_overview.html",
        stream="",
        nav="overview",
    )


def province_page(
    parts: BoardParts,
    who: Principal,
    province: str,
    kind: str | None,
    verdict: str | None,
    now: datetime,
) -> Page:
    if not who.sees(province):
        return not_found()
    statuses = parts.desks.statuses.select(province=province)
    if not statuses and province not in parts.desks.risk.current():
        return not_found()
    kind = kind if kind in KINDS else None
    verdict = verdict if verdict in VERDICTS else None
    selected = [
        s
        for s in statuses
        if (kind is None or s.site_kind == kind) and (verdict is None or s.verdict == verdict)
    ]
    context = {
        "province": province,
        "lines": views.province_lines(selected, parts.desks.sites.get),
        "counts": views.verdict_counts(selected),
        "total": len(statuses),
        "kind": kind,
        "verdict": verdict,
        "kinds": KINDS,
        "verdicts": VERDICTS,
        "risk_level": parts.desks.risk.current().get(province, 0),
        "now": now,
    }
    return Page(
        "province.html",
        context,
        live="_province.html",
        stream=f"province={province}",
        nav="overview",
    )


def site_page(parts: BoardParts, who: Principal, site: str, hours: int, now: datetime) -> Page:
    status = parts.desks.statuses.get(site)
    snapshot = parts.desks.sites.get(site)
    if status is None or snapshot is None or not who.sees(snapshot.province):
        return not_found()
    charts, charts_error = None, None
    if parts.history is None:
        charts_error = "history_off"
    else:
        try:
            charts = site_charts(parts.history, site, hours, now)
        except Exception:  # InfluxDB down or slow: the page without its charts
            charts_error = "history_down"
    context = {
        "view": views.site_view(status, snapshot),
        "charts": charts,
        "charts_error": charts_error,
        "hours": hours,
        "now": now,
    }
    return Page("site.html", context, live="_site.html", stream=f"site={site}", nav="overview")


def meetings_page(
    parts: BoardParts,
    who: Principal,
    now: datetime,
    *,
    problem: str | None = None,
    status: HTTPStatus = HTTPStatus.OK,
    form: dict[str, str] | None = None,
) -> Page:
    meetings = [m for m in parts.desks.meetings.all() if visible_meeting(parts, who, m)]
    context = {
        "meetings": meetings,
        "can_plan": who.is_admin or who.province is not None,
        "provinces": provinces_seen(parts, who),
        "problem": problem,
        "form": form or {},
        "default_start": _default_start(now),
        "now": now,
    }
    return Page("meetings.html", context, status=status, nav="meetings", refresh_s=None)


def _default_start(now: datetime) -> str:
    """Two hours from now, on the quarter hour, in Vietnam time (an HTML datetime-local)."""
    at = (now + timedelta(hours=2)).astimezone(LOCAL_TZ)
    at = at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)
    return at.strftime("%Y-%m-%dT%H:%M")


def meeting_page(
    parts: BoardParts, who: Principal, meeting_id: str, asked: int | None, now: datetime
) -> Page:
    meeting = parts.desks.meetings.get(meeting_id)
    if meeting is None or not visible_meeting(parts, who, meeting):
        return not_found()
    judged = parts.desks.judge_meeting(meeting)
    view = views.meeting_view(judged, parts.rehearsals(meeting.points))
    context = {
        "view": view,
        "meeting": meeting,
        "can_rehearse": who.is_admin or who.province is not None,
        "asked": asked,
        "now": now,
    }
    return Page(
        "meeting.html",
        context,
        live="_meeting.html",
        stream=f"meeting={meeting_id}",
        nav="meetings",
    )


def compliance_index(parts: BoardParts, who: Principal) -> Page:
    context = {"provinces": provinces_seen(parts, who)}
    return Page("compliance_index.html", context, nav="compliance")


def compliance_page(
    parts: BoardParts, who: Principal, province: str, area_level: str | None, now: datetime
) -> Page:
    if not who.sees(province) or province not in provinces_seen(parts, who):
        return not_found()
    level = area_level if area_level in ("area", "province") else None
    report = parts.desks.compliance(province, level)  # type: ignore[arg-type]
    context = {"report": report, "province": province, "area_level": level, "now": now}
    return Page(
        "compliance.html",
        context,
        live="_compliance.html",
        stream=f"province={province}",
        nav="compliance",
    )


def risk_page(
    parts: BoardParts,
    who: Principal,
    province: str | None,
    now: datetime,
    *,
    problem: str | None = None,
    status: HTTPStatus = HTTPStatus.OK,
) -> Page:
    provinces = provinces_seen(parts, who)
    if province is not None and (not who.sees(province) or province not in provinces):
        return not_found()
    shown = [province] if province is not None else provinces
    current = parts.desks.risk.current()
    history = [
        entry
        for entry in parts.desks.risk.history(province or who.province, limit=50)
        if who.sees(entry.province)
    ]
    context = {
        "province": province,
        "levels": [(p, current.get(p, 0)) for p in shown],
        "history": history,
        "is_admin": who.is_admin,
        "provinces": provinces,
        "problem": problem,
        "now": now,
    }
    stream = f"province={province}" if province is not None else ""
    return Page(
        "risk.html",
        context,
        live="_risk.html",
        stream=stream,
        status=status,
        nav="risk",
        refresh_s=None if who.is_admin else 60,
    )
