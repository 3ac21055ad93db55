"""A board page whose session ends: it says so, and never shows the login form inside itself.

A wall screen's session ends (signed out in another tab, unused past
``http.session_hours``, its token taken out of the config at a restart) while its
page is open. htmx follows a redirect without telling anyone: answered with the 303
to the login form that a whole page gets, the live part would become a login page
nested in the page (its header, its form) while the page's own header still says who
is signed in. So, for a request without a viewer:

- the live part (``HX-Request``) of every page is a 401, the same few bytes whatever
  the page (nothing of it, not even whether it exists); board.js then shows the
  signed-out banner in both languages, with a link to the login form that comes back
  to this page, and greys the live part as on lost contact;
- a whole page is still the 303 to the login form, ``next`` being the page;
- the stream (``/live``) refuses, and one open when its session ends is ended at its
  next event or keep-alive, having told nothing more;
- a bearer token or anonymous reads are no session: their pages go on.

And a session in use does not end: each answer sets its cookie again (the session
slides; a cookie set once at login was dropped by the browser ``session_hours`` after
it, however busy the screen).

Real collector, real broker, and Debian's Chromium for what the page shows.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from collector.service import Collector
from tests.support.board import Board, board_config, start_board
from tests.support.board_fleet import a_province
from tests.support.browser import chromium, open_page, screenshot_path, sign_in
from tests.support.mosquitto import Broker
from tests.support.waiting import async_wait

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory, mosquitto: Broker) -> Iterator[Board]:
    running = start_board(tmp_path_factory.mktemp("signed-out"), mosquitto)
    a_province(running.collector, "hp")
    a_province(running.collector, "qn")
    yield running
    running.collector.stop()


@pytest.fixture(scope="module")
def meeting(board: Board) -> str:
    answer = httpx.post(
        f"{board.url}/api/v1/meetings",
        json={
            "title": "Họp hp",
            "starts_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            "duration_s": 3600,
            "province": "hp",
        },
        headers=board.bearer("admin"),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def live_routes(meeting: str) -> list[str]:
    """Every page with a live part, and ones that do not exist or are another's."""
    return [
        "/",
        "/provinces/hp",
        "/provinces/hp?kind=station&verdict=not_ready&lang=en",
        "/provinces/zz",
        "/sites/hp-bts-kien-an",
        "/sites/zz-none",
        f"/meetings/{meeting}",
        "/meetings/m-none",
        "/compliance",
        "/compliance/hp",
        "/compliance/hp/report.csv",
        "/risk",
        "/risk/hp",
    ]


def client(board: Board, **cookies: str) -> httpx.Client:
    return httpx.Client(base_url=board.url, cookies=cookies, timeout=15)


def signed_in(board: Board, who: str = "hp") -> httpx.Client:
    browser = httpx.Client(base_url=board.url, headers={"Origin": board.url}, timeout=15)
    answer = browser.post("/login", data={"token": board.tokens[who], "next": "/"})
    assert answer.status_code == 303
    return browser


def ended_session(board: Board) -> dict[str, str]:
    """The cookie of a session signed out since (a browser that kept it: another tab)."""
    browser = signed_in(board)
    cookie = browser.cookies["kienco_session"]
    assert browser.post("/logout").status_code == 204
    return {"kienco_session": cookie}


def signed_out_ways(board: Board) -> dict[str, dict[str, str]]:
    return {
        "no cookie": {},
        "a session signed out": ended_session(board),
        "a cookie never issued": {"kienco_session": "x" * 43},
    }


def assert_signed_out_part(answer: httpx.Response, route: str) -> str:
    """The checks every signed-out live part passes; its body, for comparing."""
    assert answer.status_code == 401, (route, answer.status_code)
    assert "location" not in answer.headers and "hx-redirect" not in answer.headers, route
    assert answer.headers["content-type"].startswith("text/plain"), route
    assert answer.headers["cache-control"] == "no-store", route
    assert "HX-Request" in answer.headers["vary"], route
    assert "set-cookie" not in answer.headers, route
    # A few words, nothing of the page: no markup, no province, no site.
    assert len(answer.content) < 200 and not re.search(r"<|hp|qn|kien", answer.text), route
    return answer.text


def test_a_live_part_asked_without_a_viewer_is_a_401_never_the_login_page(
    board: Board, meeting: str
) -> None:
    bodies = set()
    for how, cookies in signed_out_ways(board).items():
        browser = client(board, **cookies)
        for route in live_routes(meeting):
            bodies.add(assert_signed_out_part(browser.get(route, headers=HX), f"{how}: {route}"))
        stream = browser.get("/live?province=hp")
        assert stream.status_code == 401, how
        assert not stream.headers["content-type"].startswith("text/event-stream")
    # The same for every page, there or not, another's or not: no page can be told apart.
    assert len(bodies) == 1, bodies


def test_a_whole_page_without_a_viewer_still_goes_to_the_login_form(
    board: Board, meeting: str
) -> None:
    for how, cookies in signed_out_ways(board).items():
        browser = client(board, **cookies)
        for route in live_routes(meeting):
            answer = browser.get(route)
            assert answer.status_code == 303, (how, route)
            assert answer.headers["location"] == f"/login?next={quote(route, safe='')}"


@pytest.mark.parametrize(("lang", "order"), [("vi", ["vi", "en"]), ("en", ["en", "vi"])])
def test_every_live_page_carries_the_signed_out_banner_hidden_its_language_first(
    board: Board, meeting: str, lang: str, order: list[str]
) -> None:
    browser = signed_in(board, "noc")
    pages = ["/", "/provinces/hp?kind=station", "/sites/hp-bts-kien-an", f"/meetings/{meeting}"]
    for route in [*pages, "/compliance/hp", "/risk/hp"]:
        here = route + ("&" if "?" in route else "?") + f"lang={lang}"
        html = browser.get(here).text
        found = re.search(r'<p id="signed-out" [^>]*hidden>(.*?)</p>', html, re.S)
        if 'data-stream="' not in html:
            assert found is None, route  # no live part, nothing to be signed out of
            continue
        assert found is not None, route
        banner = found.group(1)
        assert re.findall(r'<span lang="(\w+)">', banner) == order, route
        assert re.findall(r'href="([^"]*)"', banner) == [f"/login?next={quote(here, safe='')}"] * 2
        assert "Phiên đăng nhập đã hết" in banner and "Your session has ended" in banner
    assert sum('id="signed-out"' in browser.get(p).text for p in pages) == len(pages)


def test_each_answer_to_a_session_renews_its_cookie_bearers_get_none(board: Board) -> None:
    browser = signed_in(board, "hp")
    lifetime = round(board.collector.config.http.session_hours * 3600)
    for headers in ({}, HX):
        answer = browser.get("/provinces/hp", headers=headers)
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"].lower()
        assert cookie.startswith("kienco_session=" + browser.cookies["kienco_session"].lower())
        assert f"max-age={lifetime}" in cookie and "httponly" in cookie
        assert "samesite=strict" in cookie
    bearer = httpx.get(f"{board.url}/provinces/hp", headers={**HX, **board.bearer("hp")})
    assert "set-cookie" not in bearer.headers


def test_bearer_tokens_are_no_session_and_their_parts_go_on(board: Board, meeting: str) -> None:
    for route in live_routes(meeting):
        answer = httpx.get(f"{board.url}{route}", headers={**HX, **board.bearer("noc")})
        assert answer.status_code != 401, route
    part = httpx.get(f"{board.url}/provinces/hp", headers={**HX, **board.bearer("hp")})
    assert part.status_code == 200 and 'id="site-hp-bts-kien-an"' in part.text
    assert "<html" not in part.text


def test_with_anonymous_reads_a_session_that_ends_reads_on_as_anonymous(
    tmp_path: Path, mosquitto: Broker
) -> None:
    anonymous = start_board(tmp_path, mosquitto, anonymous_read=True)
    try:
        a_province(anonymous.collector, "hp")
        for cookies in ({}, ended_session(anonymous)):
            part = client(anonymous, **cookies).get("/provinces/hp", headers=HX)
            assert part.status_code == 200 and 'id="site-hp-bts-kien-an"' in part.text
    finally:
        anonymous.collector.stop()


def test_a_token_taken_out_of_the_config_at_a_restart_ends_its_sessions_parts(
    tmp_path: Path, mosquitto: Broker
) -> None:
    first = start_board(tmp_path, mosquitto)
    cookie = signed_in(first, "hp").cookies["kienco_session"]
    first.collector.stop()
    without = {k: v for k, v in first.tokens.items() if k != "hp"}
    again = Collector(board_config(tmp_path, mosquitto, without))
    again.start()
    try:
        assert again.api is not None
        answer = httpx.get(
            f"{again.api.url}/provinces/hp", headers=HX, cookies={"kienco_session": cookie}
        )
        assert_signed_out_part(answer, "a token removed")
    finally:
        again.stop()


async def test_an_open_stream_ends_when_its_session_does_and_tells_nothing_more(
    board: Board,
) -> None:
    browser = signed_in(board, "noc")
    told: list[str] = []

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=board.url, cookies=browser.cookies) as reader,
            reader.stream("GET", "/live?province=hp", timeout=30) as answer,
        ):
            async for chunk in answer.aiter_text():
                told.append(chunk)

    reading = asyncio.create_task(read())
    await async_wait(lambda: "kienco board" in "".join(told), 10, "the stream open")
    assert browser.post("/logout").status_code == 204
    # A change of a site the stream names: it ends instead of telling it.
    board.collector.changes.site("hp-bts-kien-an", "hp")
    await asyncio.wait_for(reading, 10)
    assert "event: changed" not in "".join(told), told


# --- in the browser -----------------------------------------------------------------------

SIGNED_OUT_VI = re.compile(
    r"^Phiên đăng nhập đã hết, trang dừng cập nhật từ \d\d:\d\d:\d\d — đăng nhập lại$"
)
SIGNED_OUT_EN = re.compile(
    r"^Your session has ended, this page stopped updating at \d\d:\d\d:\d\d — sign in again$"
)


async def signed_out_shown(page: Any, url: str, then: str) -> None:
    """The banner in both languages with its link back here; the part greyed, not replaced."""
    banner, part = page.locator("#signed-out"), page.locator("#live")
    # Never the login page inside the page: one header, no form in the part.
    assert await page.locator("#live form, #live header, #live h1, #login").count() == 0
    assert await page.locator("header").count() == 1
    lines = await banner.locator("[lang]").all_inner_texts()
    assert len(lines) == 2, lines
    assert SIGNED_OUT_VI.match(lines[0].strip()), lines
    assert SIGNED_OUT_EN.match(lines[1].strip()), lines
    links = await banner.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert links == [f"{url}/login?next={quote(then, safe='')}"] * 2, links
    assert "stale" in (await part.get_attribute("class") or "")
    assert await page.locator("#site-hp-bts-kien-an").count() == 1  # the last it got
    assert await page.locator("#lost").is_hidden()  # in contact: the collector answered
    assert page.url == f"{url}{then}"  # no navigation: a half-typed form would be lost
    # The header no longer claims a session.
    assert await page.locator("header .who [data-session]").count() >= 1
    for shown in await page.locator("header .who [data-session]").all():
        assert await shown.is_hidden()


async def test_an_open_page_signed_out_in_another_tab_says_so_and_greys_what_it_shows(
    tmp_path: Path, mosquitto: Broker
) -> None:
    board = start_board(tmp_path, mosquitto, board_poll_s=2)
    try:
        a_province(board.collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            streams: list[float] = []
            page.on(
                "request", lambda r: streams.append(time.monotonic()) if "/live" in r.url else None
            )
            await sign_in(page, board.url, board.tokens["noc"], then="/provinces/hp")
            banner = page.locator("#signed-out")
            assert await banner.is_hidden()

            other = await browser.new_page()
            await other.goto(f"{board.url}/")
            await other.click("form[data-logout] button")
            await other.wait_for_url(f"{board.url}/login")
            await other.close()
            out_at = time.monotonic()
            # A poll and a fetch; the login form in the part would be what came instead.
            came = page.locator("#signed-out:not([hidden]), #live form").first
            await came.wait_for(state="visible", timeout=2_000 + 3_000)
            print(f"signed-out banner {time.monotonic() - out_at:.2f} s after the sign-out")
            await signed_out_shown(page, board.url, "/provinces/hp")
            await page.screenshot(path=screenshot_path("province-signed-out"), full_page=True)

            # It stays so (every poll is refused again), and the stream is not asked again
            # and again: the page knows it is signed out.
            shown_at = time.monotonic()
            await asyncio.sleep(6)
            await signed_out_shown(page, board.url, "/provinces/hp")
            asked = [t for t in streams if t > shown_at]
            assert len(asked) <= 1, f"the stream asked {len(asked)} times in 6 s"
            assert not problems.exceptions and not problems.dialogs, problems

            # Its link: the login form as a whole page, then back here, live again.
            await banner.locator("a").first.click()
            await page.wait_for_url(f"{board.url}/login?next=%2Fprovinces%2Fhp")
            await page.fill("input[name=token]", board.tokens["noc"])
            await page.click("#login button[type=submit]")
            await page.wait_for_url(f"{board.url}/provinces/hp")
            assert await page.locator("#signed-out").is_hidden()
            assert "stale" not in (await page.locator("#live").get_attribute("class") or "")
    finally:
        board.collector.stop()


async def test_a_page_signed_in_again_in_another_tab_comes_back_by_itself(
    tmp_path: Path, mosquitto: Broker
) -> None:
    board = start_board(tmp_path, mosquitto, board_poll_s=2)
    try:
        a_province(board.collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, _ = await open_page(browser)
            await sign_in(page, board.url, board.tokens["noc"], then="/provinces/hp")
            await page.evaluate("window.__same_page = true")
            streams: list[Any] = []
            other = await browser.new_page()
            await other.goto(f"{board.url}/")
            await other.click("form[data-logout] button")
            await other.wait_for_url(f"{board.url}/login")
            await page.locator("#signed-out").wait_for(state="visible", timeout=5_000)
            page.on("response", lambda r: streams.append(r) if "/live" in r.url else None)
            await sign_in(other, board.url, board.tokens["noc"], then="/")
            await page.locator("#signed-out").wait_for(state="hidden", timeout=2_000 + 3_000)
            assert "stale" not in (await page.locator("#live").get_attribute("class") or "")
            for shown in await page.locator("header .who [data-session]").all():
                assert await shown.is_visible()
            assert await page.evaluate("window.__same_page === true")  # never reloaded
            # Its stream is asked again, and answered (not refused).
            await async_wait(lambda: streams, 10, "the stream opened again")
            assert streams[0].status == 200
    finally:
        board.collector.stop()


async def test_a_session_that_runs_out_unused_says_so_without_waiting_for_a_poll(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """A wall screen whose poll is an hour away and whose session lasts 2 s: the stream
    ends at its next keep-alive (15 s) and the fetch made then is refused. Before, such
    a page showed nothing: frozen, and looking fine."""
    board = start_board(tmp_path, mosquitto, board_poll_s=3600, session_hours=2 / 3600)
    try:
        a_province(board.collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            await sign_in(page, board.url, board.tokens["noc"], then="/provinces/hp")
            started = time.monotonic()
            await page.locator("#signed-out").wait_for(state="visible", timeout=20_000)
            print(f"signed-out banner {time.monotonic() - started:.2f} s after the page opened")
            await signed_out_shown(page, board.url, "/provinces/hp")
            assert not problems.exceptions and not problems.dialogs, problems
    finally:
        board.collector.stop()


async def test_a_wall_screen_in_use_stays_signed_in_past_its_session_hours(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Each use renews a session (sessions.py), and its cookie with it: a screen that
    polls is never signed out by its browser dropping a cookie set once, at login."""
    board = start_board(tmp_path, mosquitto, board_poll_s=1, session_hours=3 / 3600)
    try:
        a_province(board.collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            await sign_in(page, board.url, board.tokens["noc"], then="/provinces/hp")
            await asyncio.sleep(8)  # over twice the session's life, polled every second
            assert await page.locator("#signed-out").is_hidden()
            assert await page.locator("#live form").count() == 0
            assert await page.locator("#site-hp-bts-kien-an").count() == 1
            assert any(c["name"] == "kienco_session" for c in await browser.cookies())
            assert not problems, problems
    finally:
        board.collector.stop()


async def test_with_anonymous_reads_an_open_page_never_says_signed_out(
    tmp_path: Path, mosquitto: Broker
) -> None:
    board = start_board(tmp_path, mosquitto, board_poll_s=1, anonymous_read=True)
    try:
        a_province(board.collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            await page.goto(f"{board.url}/provinces/hp")
            await asyncio.sleep(3)
            assert await page.locator("#signed-out").is_hidden()
            assert "stale" not in (await page.locator("#live").get_attribute("class") or "")
            assert not problems, problems
    finally:
        board.collector.stop()
