"""The board's pages over HTTP, on a real collector: roles, forms without JavaScript, the stream.

A real collector (real broker) with a token per role and sites in two provinces
(tests/support/board.py). A ``province:hp`` viewer sees no ``qn`` site on any page
nor in the live stream, and its changes to qn are refused; a change sent with the
session cookie from another site is refused; every form works as a plain form; a
site named like markup is shown as its characters; security headers on every page.
The browser itself is tests/test_board_browser.py.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from collector.board import routes
from collector.board.render import environment
from collector.board.routes import STATIC
from contract.wire import Report
from tests.support.board import Board, start_board, wait_until
from tests.support.board_fleet import a_province, on_battery, tell
from tests.support.mosquitto import Broker

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory, mosquitto: Broker) -> Iterator[Board]:
    running = start_board(tmp_path_factory.mktemp("board"), mosquitto)
    a_province(running.collector, "hp")
    a_province(running.collector, "qn")
    tell(running.collector, "qn-bts-evil", "qn", "station", EVIL, power=on_battery(600))
    yield running
    running.collector.stop()


def signed_in(board: Board, who: str) -> httpx.Client:
    """A browser without JavaScript: the login form, then the session cookie."""
    client = httpx.Client(base_url=board.url, headers={"Origin": board.url}, timeout=15)
    answer = client.post("/login", data={"token": board.tokens[who], "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    return client


@pytest.fixture(scope="module")
def meetings(board: Board) -> dict[str, str]:
    """A meeting per province, planned by the admin through the board's form."""
    admin = signed_in(board, "admin")
    made = {}
    for province in ("hp", "qn"):
        answer = admin.post(
            "/meetings",
            data={
                "title": f"Họp {province}",
                "starts_at": (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
                "duration_h": "2",
                "province": province,
                "points": "",
            },
        )
        assert answer.status_code == 303, answer.text
        made[province] = answer.headers["location"].rsplit("/", 1)[1]
    return made


def pages_of(province: str, meetings: dict[str, str]) -> list[str]:
    return [
        f"/provinces/{province}",
        f"/provinces/{province}?kind=station&verdict=not_ready",
        f"/sites/{province}-bts-kien-an",
        f"/meetings/{meetings[province]}",
        f"/compliance/{province}",
        f"/compliance/{province}/report.csv",
        f"/risk/{province}",
    ]


def test_a_province_sees_nothing_of_another_on_any_page(
    board: Board, meetings: dict[str, str]
) -> None:
    hp = signed_in(board, "hp")
    for path in ["/", "/meetings", "/compliance/hp", "/risk", *pages_of("hp", meetings)]:
        answer = hp.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        assert "qn-" not in answer.text and "qn<" not in answer.text, path
        assert not re.search(r"\bqn\b", answer.text), path
    assert hp.get("/compliance").headers["location"] == "/compliance/hp"
    nowhere = hp.get("/sites/zz-none")
    for path in pages_of("qn", meetings):
        answer = hp.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        # As if it did not exist: the page of a site that does not, but for its own links.
        assert _unlinked(answer.text) == _unlinked(nowhere.text), path
    # The same pages for the noc: everything there, and the hp ones still fine.
    noc = signed_in(board, "noc")
    overview = noc.get("/").text
    assert 'id="province-hp"' in overview and 'id="province-qn"' in overview
    for path in pages_of("qn", meetings):
        assert noc.get(path).status_code == 200, path


def _unlinked(html: str) -> str:
    return re.sub(r'(href|action)="[^"]*"', "", html)


def test_its_changes_to_another_province_are_refused(
    board: Board, meetings: dict[str, str]
) -> None:
    hp = signed_in(board, "hp")
    start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    plan = {"title": "x", "starts_at": start, "duration_h": "1"}
    for form in (
        {**plan, "province": "qn", "points": ""},
        {**plan, "province": "hp", "points": "qn-dc-tp"},  # another province's point
    ):
        answer = hp.post("/meetings", data=form)
        assert answer.status_code == 403, answer.text
        assert "qn-" not in answer.text.replace("qn-dc-tp", "")  # it only names what it sent
    assert hp.post(f"/meetings/{meetings['qn']}/rehearse").status_code == 404
    refused = hp.post("/risk", data={"province": "qn", "level": "4", "reason": "bão"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    # Its own: planned, rehearsed, as a plain form does (303 and a page).
    own = hp.post("/meetings", data={**plan, "province": "hp", "points": "hp-dc-tp"})
    assert own.status_code == 303, own.text
    page = hp.get(own.headers["location"])
    assert "0/1" in page.text and "hp-dc-tp" in page.text
    asked = hp.post(f"{own.headers['location']}/rehearse")
    assert asked.status_code == 303 and asked.headers["location"].endswith("?asked=1")
    # The noc reads all and changes nothing; the admin sets a level with a reason.
    noc = signed_in(board, "noc")
    assert (
        noc.post("/risk", data={"province": "hp", "level": "3", "reason": "x"}).status_code == 403
    )
    admin = signed_in(board, "admin")
    set_level = admin.post("/risk", data={"province": "hp", "level": "3", "reason": "Bão số 3"})
    assert set_level.status_code == 303 and set_level.headers["location"] == "/risk/hp"
    shown = admin.get("/risk/hp").text
    assert 'data-level="3"' in shown and "Bão số 3" in shown and "admin-token" in shown


def test_a_change_with_the_cookie_from_another_site_is_refused(board: Board) -> None:
    admin = signed_in(board, "admin")
    form = {"province": "hp", "level": "2", "reason": "x"}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}):
        answer = admin.post("/risk", data=form, headers=headers)
        assert answer.status_code == 403, headers
    no_origin = httpx.Client(base_url=board.url, cookies=admin.cookies, timeout=15)
    assert no_origin.post("/risk", data=form).status_code == 403  # neither Origin nor Referer


def test_nobody_signed_in_is_sent_to_the_login_form(board: Board) -> None:
    anonymous = httpx.Client(base_url=board.url, timeout=15)
    for path in ("/", "/provinces/hp", "/sites/hp-dc-tp", "/meetings", "/risk"):
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")
    assert anonymous.get("/live").status_code == 401
    login = anonymous.get("/login?next=/provinces/hp")
    assert 'name="next" value="/provinces/hp"' in login.text
    assert anonymous.get("/login?next=//evil.example").text.count('value="/"') == 1
    # A wrong token on the form: back to the form, which says so, and no session.
    origin = {"Origin": board.url}
    wrong = anonymous.post("/login", data={"token": "x" * 40, "next": "/risk"}, headers=origin)
    assert wrong.status_code == 303 and "set-cookie" not in wrong.headers
    again = anonymous.get(wrong.headers["location"])
    assert "Mã truy cập không đúng" in again.text and 'name="next" value="/risk"' in again.text


def test_a_site_named_like_markup_is_shown_as_its_characters(board: Board) -> None:
    noc = signed_in(board, "noc")
    for path in ("/provinces/qn", "/sites/qn-bts-evil", "/compliance/qn"):
        html = noc.get(path).text
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
        assert "<img" not in html, path


def test_every_page_carries_the_security_headers_and_no_inline_script(
    board: Board, meetings: dict[str, str]
) -> None:
    noc = signed_in(board, "noc")
    for path in ["/", "/meetings", "/risk", "/login", *pages_of("hp", meetings)[:-2]]:
        answer = noc.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        # Scripts are files; no style or event-handler attribute the CSP would refuse.
        assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text), path
        assert not re.search(r"\s(style|on[a-z]+)=", answer.text), path


def test_the_pages_speak_vietnamese_first_and_english_on_asking(board: Board) -> None:
    noc = signed_in(board, "noc")
    vi = noc.get("/provinces/hp").text
    assert (
        '<html lang="vi">' in vi and "chưa sẵn sàng" in vi and "Giờ hiển thị là giờ Việt Nam" in vi
    )
    en = noc.get("/provinces/hp?lang=en")
    assert '<html lang="en">' in en.text and "not ready" in en.text
    assert noc.cookies.get("kienco_lang") == "en"
    again = noc.get("/provinces/hp").text  # remembered
    assert '<html lang="en">' in again and "mains lost" in again
    noc.get("/?lang=vi")


def test_the_live_part_alone_for_htmx(board: Board) -> None:
    noc = signed_in(board, "noc")
    part = noc.get("/provinces/hp", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert "<html" not in part.text and 'id="site-hp-bts-kien-an"' in part.text
    assert "HX-Request" in part.headers["vary"]
    assert part.headers["cache-control"] == "no-store"


class Stream:
    """A /live stream read in a thread, as the browser's EventSource would."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.text = ""
        self.opened = threading.Event()
        self._client = client
        self._thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self._thread.start()
        assert self.opened.wait(10)

    def _read(self, path: str) -> None:
        try:
            with self._client.stream("GET", path, timeout=httpx.Timeout(5, read=30)) as answer:
                if answer.headers["content-type"].startswith("text/event-stream"):
                    self.opened.set()
                for chunk in answer.iter_text():
                    self.text += chunk
        except (httpx.HTTPError, RuntimeError):  # closed by the test
            pass

    def close(self) -> None:
        self._client.close()


def _report(board: Board, site: str, province: str, seq: int) -> None:
    report = Report(
        site=site, province=province, seq=seq, taken_at=datetime.now(UTC), interval_s=600
    )
    board.collector.handle(
        f"kienco/v1/{province}/{site}/report", report.model_dump_json().encode(), 0, 0
    )


def test_the_stream_tells_a_province_only_of_its_own_sites(board: Board) -> None:
    hp_all = Stream(signed_in(board, "hp"), "/live")
    hp_province = Stream(signed_in(board, "hp"), "/live?province=hp")
    noc = Stream(signed_in(board, "noc"), "/live")
    noc_site = Stream(signed_in(board, "noc"), "/live?site=qn-dc-1")
    try:
        assert signed_in(board, "hp").get("/live?province=qn").status_code == 404
        assert signed_in(board, "hp").get("/live?site=qn-dc-1").status_code == 404
        # Sites that had only a meta (unknown) report now: their verdicts change.
        _report(board, "qn-dc-1", "qn", 1)
        _report(board, "hp-dc-1", "hp", 1)
        wait_until(lambda: "hp-dc-1" in noc.text and "qn-dc-1" in noc.text, 10, "noc told")
        wait_until(lambda: "hp-dc-1" in hp_all.text, 10, "hp told")
        wait_until(lambda: "qn-dc-1" in noc_site.text, 10, "the site's page told")
        time.sleep(0.3)  # anything else would have arrived by now
        for stream in (hp_all, hp_province):
            assert "qn" not in stream.text, stream.text
        assert "hp-dc-1" in hp_province.text
        assert "hp-dc-1" not in noc_site.text
        assert "event: changed" in noc.text and "retry: " in noc.text
    finally:
        for stream in (hp_all, hp_province, noc, noc_site):
            stream.close()


def test_a_stream_that_reconnects_is_told_what_it_missed(board: Board) -> None:
    noc = signed_in(board, "noc")
    first = Stream(noc, "/live?province=hp")
    try:
        wait_until(lambda: "kienco board" in first.text, 5, "the stream opened")
        generation = board.collector.changes.generation
    finally:
        first.close()
    _report(board, "hp-dc-2", "hp", 1)  # while the page is reconnecting
    again = signed_in(board, "noc")
    again.headers["Last-Event-ID"] = str(generation)
    second = Stream(again, "/live?province=hp")
    try:
        wait_until(lambda: "hp-dc-2" in second.text, 5, "what it missed")
    finally:
        second.close()


def test_the_compliance_downloads_are_the_reports_csv_and_pdf(board: Board) -> None:
    noc = signed_in(board, "noc")
    csv = noc.get("/compliance/hp/report.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Vietnamese
    assert "attachment" in csv.headers["content-disposition"]
    pdf = noc.get("/compliance/hp/report.pdf?lang=en")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert signed_in(board, "hp").get("/compliance/qn/report.pdf").status_code == 404


def test_the_vendored_htmx_is_the_one_recorded() -> None:
    recorded = (STATIC / "VENDORED.md").read_text(encoding="utf-8")
    digest = hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in recorded
    assert 'version:"2.0.11"' in (STATIC / "htmx.min.js").read_text(encoding="utf-8")
    assert "| 2.0.11 |" in recorded
    assert (STATIC / "htmx.LICENSE").read_text(encoding="utf-8").startswith("Zero-Clause BSD")


def test_every_template_autoescapes() -> None:
    env = environment()
    assert env.autoescape is True
    templates = sorted(Path(STATIC.parent / "templates").glob("*.html"))
    assert templates
    for template in templates:
        source = template.read_text(encoding="utf-8")
        assert "|safe" not in source and "autoescape false" not in source, template.name


def test_a_long_list_shows_its_worst_rows_and_a_link_to_every_one(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "ROWS_SHOWN", 2)
    noc = signed_in(board, "noc")
    first = noc.get("/provinces/hp").text
    rows = re.findall(r'<tr id="site-([a-z0-9-]+)" data-verdict="([a-z_]+)"', first)
    assert len(rows) == 2 and all(verdict == "not_ready" for _, verdict in rows)
    assert 'href="/provinces/hp?show=all"' in first
    every = noc.get("/provinces/hp?show=all").text
    assert every.count('<tr id="site-') > 2 and "show=all" in every.split('id="live"')[1][:300]
