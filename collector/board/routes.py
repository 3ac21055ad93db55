"""The board's routes: pages by role, their live parts, the forms, the downloads, the stream.

    GET  /                                   overview: every province the viewer sees
    GET  /provinces/{p}[?kind=&verdict=]     every site of a province, worst first
    GET  /sites/{site}[?hours=N]             one site: reasons, devices, paths, charts
    GET  /meetings        POST /meetings     planned meetings; plan one
    GET  /meetings/{id}   POST …/rehearse    N of M ready for it, why not; rehearse it
    GET  /compliance[/{p}[?area_level=]]     hardened stations per area
    GET  /compliance/{p}/report.csv|.pdf     the same as the CLI's CSV and PDF
    GET  /risk[/{p}]      POST /risk         risk levels: who set them, when, why
    GET  /login                              the form (POST /login is collector/web/app.py's)
    GET  /live[?province=|site=|meeting=]    server-sent events: which sites changed
    GET  /assets/...                         htmx, the board's CSS and script (vendored)

A page asked with ``HX-Request`` (htmx, after a ``changed`` event or every
``http.board_poll_s``, 30 s) answers only its live part, headed by the collector's own
problems when it has any (collector/board/trust.py). Without JavaScript every page is whole and its
forms are plain forms. ``?lang=en`` switches to English and is remembered in a
cookie. Reads need a viewer (a session from /login, a bearer token, or
anonymous reads if configured): without one, a page sends to the login form, and its
live part (its session ended while the page was open) is a 401 that board.js shows as
signed out, never the login page swapped into the page (htmx follows a redirect).
Changes need a token (collector/web/access.py ``changer``: a session's POST must
come from our own pages) and then the same checks as the API's
(collector/endpoints.py), so the board can do nothing the API would refuse.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from collector import compliance_report
from collector.board import pages, texts, trust
from collector.board.pages import Page
from collector.board.ports import BoardParts
from collector.board.render import Kept, LiveCache, Renderer, squeeze
from collector.board.stream import Wanted, events
from collector.endpoints import Endpoints
from collector.meetings import MeetingRequest
from collector.risk import RiskChange
from collector.web.access import Access, Refused, maybe_reader
from collector.web.redirects import local_path
from collector.web.roles import ANONYMOUS, Principal
from collector.web.workers import Workers
from contract.wire import SLUG_PATTERN
from plumbing.labels import LOCAL_TZ, Lang

__all__ = ["ASSETS", "LANG_COOKIE", "LIVE_PATH", "SIGNED_OUT", "mount_board"]

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = "/assets"
LIVE_PATH = "/live"
LANG_COOKIE = "kienco_lang"
ROWS_SHOWN = 200  # rows of a long list shown at first; ?show=all for every one
_SLUG = re.compile(SLUG_PATTERN)
_POINTS_SPLIT = re.compile(r"[\s,;]+")

router = APIRouter(include_in_schema=False)


def mount_board(app: FastAPI, parts: BoardParts) -> None:
    """Serve the board on ``app`` (collector/web/app.py's), over the collector's ``parts``."""
    app.state.board = parts
    app.state.board_renderer = Renderer()
    app.state.board_cache = LiveCache()
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="assets")


# --- what every page needs ------------------------------------------------------------


def _parts(request: Request) -> BoardParts:
    parts: BoardParts = request.app.state.board
    return parts


def _lang(request: Request) -> tuple[Lang, bool]:
    """(the language, whether to remember it): ?lang=, else the cookie, else Vietnamese."""
    asked = request.query_params.get("lang")
    if asked in texts.LANGS:
        return asked, True
    kept = request.cookies.get(LANG_COOKIE)
    return ("en" if kept == "en" else "vi"), False


def _here(request: Request, **change: str | None) -> str:
    """This page's path and query, with ``change`` applied (None removes a key)."""
    query = dict(request.query_params)
    for key, value in change.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return request.url.path + (f"?{urlencode(query)}" if query else "")


def _partial(request: Request) -> bool:
    """Asked by htmx for the page's live part (not the whole page)?"""
    return request.headers.get("hx-request") == "true"


SIGNED_OUT = "signed out: sign in again / phiên đăng nhập đã hết: đăng nhập lại\n"
"""A live part's whole answer without a viewer: the same for every page, there or not."""


def _to_login(request: Request) -> Response:
    """Nobody signed in: a whole page goes to the login form, to come back here; a live
    part is a 401 (board.js says the page is signed out and greys it). htmx follows a
    redirect without a word: the login page itself would be swapped into the live part,
    a form inside the page under a header that still names who was signed in."""
    if _partial(request):
        return _signed_out()
    return RedirectResponse(_login_here(request), status_code=303, headers=_SIGNED_OUT_HEADERS)


_SIGNED_OUT_HEADERS = {"Cache-Control": "no-store", "Vary": "HX-Request, Cookie"}


def _signed_out() -> Response:
    headers = {**_SIGNED_OUT_HEADERS, "WWW-Authenticate": 'Bearer realm="kienco"'}
    return Response(SIGNED_OUT, 401, headers, media_type="text/plain; charset=utf-8")


def _login_here(request: Request) -> str:
    """The login form, which sends back to this page once signed in."""
    return f"/login?next={quote(_here(request), safe='')}"


MakePage = Callable[[BoardParts, Principal, datetime], Page]


async def _serve(request: Request, make: MakePage, who: Principal | None = None) -> Response:
    """Render ``make``'s page for whoever asks, in a worker thread; only its live part
    for htmx; sent to the login form when nobody is signed in (a live part: a 401). A
    session's cookie is set again with each answer: the session slides, so must it.

    A live part is rendered once per change for everyone who sees the same (page, query,
    role, language): after a change, the 200 pages that ask again are answered from
    :class:`~collector.board.render.LiveCache`, on the event loop, gzipped once.
    """
    if who is None:
        who = await maybe_reader(request)
    if who is None:
        return _to_login(request)
    viewer = who  # (for answer(): mypy cannot follow the narrowing into it)
    lang, remember = _lang(request)
    parts = _parts(request)
    access: Access = request.app.state.access
    renderer: Renderer = request.app.state.board_renderer
    cache: LiveCache = request.app.state.board_cache
    partial = _partial(request)
    takes_gzip = "gzip" in request.headers.get("accept-encoding", "")
    # The collector's own problems head every live part (collector/board/trust.py): the
    # same for every role (a province's viewer sees only its own province late), and part
    # of the key, so one that comes or goes shows at once.
    doubts = trust.doubts(parts.health(), who.province)
    key = (
        request.url.path,
        tuple(sorted((k, v) for k, v in request.query_params.multi_items() if k != "lang")),
        str(who.role),
        lang,
        parts.changes.generation,
        doubts,
    )
    frame = {
        "who": who,
        "here": _here(request),
        "sign_in_here": _login_here(request),
        "switch_lang": _here(request, lang="en" if lang == "vi" else "vi"),
        "show_all": _here(request, show="all"),
        "rows_limit": None if request.query_params.get("show") == "all" else ROWS_SHOWN,
        "assets": ASSETS,
        "poll_ms": round(parts.poll_s * 1000),
    }

    def answer(status: int, body: bytes, gzipped: bytes | None) -> Response:
        response = HTMLResponse(
            gzipped if takes_gzip and gzipped is not None else body, status_code=status
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Vary"] = "HX-Request, Cookie, Accept-Encoding"
        if takes_gzip and gzipped is not None:
            response.headers["Content-Encoding"] = "gzip"
        if remember:
            response.set_cookie(LANG_COOKIE, lang, max_age=400 * 86400, samesite="lax", path="/")
        access.renew_cookie(request, response, viewer)
        return response

    # A form's answer (an error shown on its page) is never one to keep or take.
    keeps = request.method == "GET"
    if keeps and partial and (kept := cache.fresh(key)) is not None:
        return answer(200, kept.live.encode(), kept.gzipped)

    found: list[bytes | None] = [None]  # the answer gzipped, when it is worth it

    def work(_: None) -> tuple[HTTPStatus, bytes]:
        now = parts.clock()
        unkept: list[Page] = []

        def build() -> Kept:
            page = make(parts, who, now)
            if page.live is None or page.status != HTTPStatus.OK:
                unkept.append(page)
                raise _NotLive
            banner = renderer.render("_trust.html", lang, doubts=doubts, now=now)
            live = (banner + renderer.render(page.live, lang, **frame, **page.context)).encode()
            return Kept(time.monotonic(), page, live.decode(), squeeze(live))

        try:
            kept: Kept | None = cache.get(key, build) if keeps else build()
        except _NotLive:
            kept = None
        if partial:
            if kept is None:
                return unkept[0].status, b""
            found[:] = [kept.gzipped]
            return HTTPStatus.OK, kept.live.encode()
        page = kept.page if kept is not None else unkept[0]
        stream = (
            None if page.stream is None else LIVE_PATH + (f"?{page.stream}" if page.stream else "")
        )
        html = renderer.render(
            page.template,
            lang,
            **frame,
            **page.context,
            live=kept.markup if kept is not None else "",
            stream=stream,
            nav=page.nav,
            refresh_s=page.refresh_s,
        ).encode()
        # A meeting of 3 400 points is ~2 MB of HTML, 30 times less gzipped: a
        # provincial office behind a VSAT link feels that.
        found[:] = [squeeze(html) if takes_gzip else None]
        return page.status, html

    workers: Workers = request.app.state.workers
    status, body = await workers.run(work, None)
    if int(status) == 500 and body.startswith(b"{"):  # the worker's own error answer
        body, found[0] = _plain_error(request, lang, json.loads(body).get("error", "")), None
    return answer(int(status), body, found[0])


class _NotLive(Exception):
    """A page with nothing to keep: an error, or no live part."""


def _plain_error(request: Request, lang: Lang, detail: str) -> bytes:
    renderer: Renderer = request.app.state.board_renderer
    html = renderer.render(
        "error.html",
        lang,
        who=None,
        here=_here(request),
        switch_lang=_here(request),
        assets=ASSETS,
        key="internal",
        detail=detail,
        live="",
        stream=None,
        nav="",
        refresh_s=None,
    )
    return html.encode()


# --- pages ----------------------------------------------------------------------------


def _slug(value: str) -> bool:
    return len(value) <= 64 and _SLUG.fullmatch(value) is not None


def _missing(_parts: BoardParts, _who: Principal, _now: datetime) -> Page:
    return pages.error_page(HTTPStatus.NOT_FOUND, "not_found")


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    return await _serve(request, pages.overview_page)


@router.get("/provinces/{province}", response_class=HTMLResponse)
async def province(
    request: Request, province: str, kind: str | None = None, verdict: str | None = None
) -> Response:
    if not _slug(province):
        return await _serve(request, _missing)
    return await _serve(
        request, lambda p, w, now: pages.province_page(p, w, province, kind, verdict, now)
    )


@router.get("/sites/{site}", response_class=HTMLResponse)
async def site(request: Request, site: str, hours: str = "6") -> Response:
    if not _slug(site):
        return await _serve(request, _missing)
    span = max(1, min(72, int(hours))) if hours.isdigit() else 6
    return await _serve(request, lambda p, w, now: pages.site_page(p, w, site, span, now))


@router.get("/meetings", response_class=HTMLResponse)
async def meetings(request: Request) -> Response:
    return await _serve(request, lambda p, w, now: pages.meetings_page(p, w, now))


@router.get("/meetings/{meeting_id}", response_class=HTMLResponse)
async def meeting(request: Request, meeting_id: str, asked: str | None = None) -> Response:
    if not _slug(meeting_id):
        return await _serve(request, _missing)
    n = int(asked) if asked is not None and asked.isdigit() else None
    return await _serve(request, lambda p, w, now: pages.meeting_page(p, w, meeting_id, n, now))


@router.get("/compliance", response_class=HTMLResponse)
async def compliance_index(request: Request) -> Response:
    who = await maybe_reader(request)
    if who is not None and who.province is not None:
        return RedirectResponse(f"/compliance/{who.province}", status_code=303)
    return await _serve(request, lambda p, w, now: pages.compliance_index(p, w), who)


@router.get("/compliance/{province}", response_class=HTMLResponse)
async def compliance(request: Request, province: str, area_level: str | None = None) -> Response:
    if not _slug(province):
        return await _serve(request, _missing)
    return await _serve(
        request, lambda p, w, now: pages.compliance_page(p, w, province, area_level, now)
    )


@router.get("/compliance/{province}/report.{fmt}")
async def compliance_download(
    request: Request, province: str, fmt: str, area_level: str | None = None
) -> Response:
    """The CSV (UTF-8 with a BOM, for Excel) or the PDF the CLI writes."""
    who = await maybe_reader(request)
    if who is None:
        return _to_login(request)
    parts = _parts(request)
    lang, _ = _lang(request)
    if fmt not in ("csv", "pdf") or not _slug(province) or not who.sees(province):
        return await _serve(request, _missing, who)
    if province not in pages.provinces_seen(parts, who):
        return await _serve(request, _missing, who)
    level = area_level if area_level in ("area", "province") else None
    workers: Workers = request.app.state.workers

    def work(_: None) -> tuple[HTTPStatus, bytes]:
        report = parts.desks.compliance(province, level)  # type: ignore[arg-type]
        out = io.BytesIO()
        try:
            if fmt == "csv":
                compliance_report.render_csv(report, out, lang=lang)
            else:
                compliance_report.render_pdf(report, out, lang=lang)
        except compliance_report.FontMissing as exc:
            return HTTPStatus.SERVICE_UNAVAILABLE, str(exc).encode()
        return HTTPStatus.OK, out.getvalue()

    status, body = await workers.run(work, None)
    if status != HTTPStatus.OK:
        return Response(body, status_code=int(status), media_type="text/plain; charset=utf-8")
    stamp = datetime.now(LOCAL_TZ).strftime("%Y%m%d-%H%M")
    name = f"compliance-{province}-{stamp}.{fmt}"
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/pdf"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/risk", response_class=HTMLResponse)
async def risk_index(request: Request) -> Response:
    return await _serve(request, lambda p, w, now: pages.risk_page(p, w, None, now))


@router.get("/risk/{province}", response_class=HTMLResponse)
async def risk(request: Request, province: str) -> Response:
    if not _slug(province):
        return await _serve(request, _missing)
    return await _serve(request, lambda p, w, now: pages.risk_page(p, w, province, now))


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/", failed: str | None = None) -> Response:
    lang, remember = _lang(request)
    renderer: Renderer = request.app.state.board_renderer
    who = await maybe_reader(request)
    target = local_path(next) or "/"
    html = renderer.render(
        "login.html",
        lang,
        who=who,
        here=_here(request),
        switch_lang=_here(request, lang="en" if lang == "vi" else "vi"),
        assets=ASSETS,
        next=target,
        failed=failed is not None,
        live="",
        stream=None,
        nav="",
        refresh_s=None,
    )
    response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
    if remember:
        response.set_cookie(LANG_COOKIE, lang, max_age=400 * 86400, samesite="lax", path="/")
    return response


# --- changes: the API's own checks, then back to the page -----------------------------


async def _changer(request: Request) -> Principal | Refused:
    access: Access = request.app.state.access
    try:
        return await access.changer(request)
    except Refused as refused:
        return refused


async def _refused(request: Request, refused: Refused) -> Response:
    key = "refused" if refused.status_code in (401, 403) else "bad_request"
    status = HTTPStatus(refused.status_code)
    return await _serve(
        request,
        lambda p, w, now: pages.error_page(status, key, str(refused.detail)),
        await maybe_reader(request) or ANONYMOUS,  # to show the refusal, nothing else
    )


async def _decide(
    request: Request, decide: Callable[[Endpoints], tuple[HTTPStatus, bytes]]
) -> tuple[HTTPStatus, Any]:
    """An action decided as the API decides it (collector/endpoints.py): (status, JSON)."""
    endpoints: Endpoints = request.app.state.endpoints
    workers: Workers = request.app.state.workers
    status, body = await workers.run(decide, endpoints)
    return status, json.loads(body)


def _local_start(text: str) -> datetime | None:
    """``YYYY-MM-DDTHH:MM`` (an HTML datetime-local) in Vietnam time, as UTC."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=LOCAL_TZ).astimezone(UTC)


@router.post("/meetings", response_class=HTMLResponse)
async def plan_meeting(
    request: Request,
    title: Annotated[str, Form(max_length=200)] = "",
    starts_at: Annotated[str, Form(max_length=40)] = "",
    duration_h: Annotated[str, Form(max_length=20)] = "",
    province: Annotated[str, Form(max_length=64)] = "",
    points: Annotated[str, Form(max_length=200_000)] = "",
) -> Response:
    who = await _changer(request)
    if isinstance(who, Refused):
        return await _refused(request, who)
    form = {
        "title": title,
        "starts_at": starts_at,
        "duration_h": duration_h,
        "province": province,
        "points": points,
    }
    lang, _ = _lang(request)
    start = _local_start(starts_at)
    try:
        hours = float(duration_h.replace(",", "."))
        request_ = MeetingRequest(
            title=title.strip() or "?",
            starts_at=start,
            duration_s=hours * 3600,
            province=province or None,
            points=tuple(p for p in _POINTS_SPLIT.split(points.strip()) if p),
            created_by=who.name,
        )
    except (ValueError, ValidationError) as exc:
        problem = _problems(exc) if isinstance(exc, ValidationError) else str(exc)
        if start is None:
            problem = texts.text("starts_at", lang) + ": " + starts_at
        return await _serve(
            request,
            lambda p, w, now: pages.meetings_page(
                p, w, now, problem=problem, status=HTTPStatus.BAD_REQUEST, form=form
            ),
            who,
        )
    status, answer = await _decide(request, lambda e: e.plan_meeting(who, request_))
    if status != HTTPStatus.OK:
        return await _serve(
            request,
            lambda p, w, now: pages.meetings_page(
                p, w, now, problem=answer.get("error"), status=status, form=form
            ),
            who,
        )
    return RedirectResponse(f"/meetings/{answer['id']}", status_code=303)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


@router.post("/meetings/{meeting_id}/rehearse", response_class=HTMLResponse)
async def rehearse(request: Request, meeting_id: str) -> Response:
    who = await _changer(request)
    if isinstance(who, Refused):
        return await _refused(request, who)
    if not _slug(meeting_id):
        return await _serve(request, _missing, who)
    status, answer = await _decide(request, lambda e: e.rehearse(who, meeting_id))
    if status != HTTPStatus.OK:
        return await _refused(request, Refused(int(status), answer.get("error", "")))
    return RedirectResponse(
        f"/meetings/{meeting_id}?asked={len(answer['requested'])}", status_code=303
    )


@router.post("/risk", response_class=HTMLResponse)
async def set_risk(
    request: Request,
    province: Annotated[str, Form(max_length=64)] = "",
    level: Annotated[str, Form(max_length=4)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    who = await _changer(request)
    if isinstance(who, Refused):
        return await _refused(request, who)
    try:
        change = RiskChange(
            province=province, level=int(level), reason=reason.strip(), set_by=who.name
        )
    except (ValueError, ValidationError) as exc:
        problem = _problems(exc) if isinstance(exc, ValidationError) else str(exc)
        shown = province if _slug(province) else None
        return await _serve(
            request,
            lambda p, w, now: pages.risk_page(
                p, w, shown, now, problem=problem, status=HTTPStatus.BAD_REQUEST
            ),
            who,
        )
    status, answer = await _decide(request, lambda e: e.set_risk(who, change))
    if status != HTTPStatus.OK:
        return await _refused(request, Refused(int(status), answer.get("error", "")))
    return RedirectResponse(f"/risk/{province}", status_code=303)


# --- the live stream ------------------------------------------------------------------


@router.get(LIVE_PATH)
async def live(
    request: Request,
    province: str | None = None,
    site: str | None = None,
    meeting: str | None = None,
) -> Response:
    who = await maybe_reader(request)
    if who is None:
        return _signed_out()
    parts = _parts(request)
    # A meeting is read from SQLite: off the event loop.
    wanted = await anyio.to_thread.run_sync(_wanted, parts, who, province, site, meeting)
    if wanted is None:
        return Response("no such page", status_code=404, media_type="text/plain")
    header = request.headers.get("last-event-id", "")
    last_seen = int(header) if header.isdigit() else None
    access: Access = request.app.state.access
    return StreamingResponse(
        events(
            parts.changes, wanted, last_seen=last_seen, still_reads=access.still_reads(request, who)
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _wanted(
    parts: BoardParts,
    who: Principal,
    province: str | None,
    site: str | None,
    meeting: str | None,
) -> Wanted | None:
    """What the page's stream tells its viewer of, or None for a page it may not see."""
    if site is not None:
        snapshot = parts.desks.sites.get(site)
        if snapshot is None or not who.sees(snapshot.province):
            return None
        return lambda s, p: s == site and who.sees(p)
    if meeting is not None:
        found = parts.desks.meetings.get(meeting)
        if found is None or not pages.visible_meeting(parts, who, found):
            return None
        points = frozenset(found.points)
        return lambda s, p: s in points and who.sees(p)
    if province is not None:
        if not who.sees(province):
            return None
        return lambda s, p: p == province
    return lambda s, p: who.sees(p)
