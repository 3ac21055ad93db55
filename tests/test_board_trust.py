"""The board says when its verdicts cannot be believed: the collector's own problems as a
banner in every live part, and the browser's lost contact (its text, from the catalogue).

The banner per problem kind in both languages, none when healthy, nothing from outside
unescaped (a loop named like markup, quotes, line breaks), and never the broker's error
text (collector/board/trust.py). Over HTTP on a real collector with a broker of its own:
every page with a live part shows the blind-collector banner while the broker is down
(the whole page and the part htmx fetches), and not once it is back; the collector tells
every open stream when its health changes. The browser's side is
tests/test_board_browser.py.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.backlog import Late
from collector.board import trust
from collector.board.live import Changes
from collector.board.render import Renderer
from collector.board.stream import events
from collector.board.texts import LANGS
from collector.connection_log import Failing
from collector.health import Health, Problem, assess
from collector.supervision import LoopHealth
from plumbing.labels import Lang
from tests.support.board import Board, start_board, wait_until
from tests.support.board_fleet import a_province
from tests.support.mosquitto import Broker

NOW = datetime(2026, 9, 7, 20, 30, tzinfo=UTC)  # 03:30 on the 8th in Vietnam
SINCE = datetime(2026, 9, 7, 20, 12, 41, tzinfo=UTC)  # 03:12 in Vietnam
EVIL = "<img src=x onerror=alert(1)>\"'\nnext"


def calm(**given: Any) -> Health:
    """:func:`assess` of a collector connected, without InfluxDB, no loop: what ``given``
    changes is all that is wrong."""
    values: dict[str, Any] = {
        "broker_connected": True,
        "broker_failure": None,
        "influx_configured": False,
        "influx_down": False,
        "spooled_batches": 0,
        "loops": [],
        "now": NOW.timestamp(),
    }
    return assess(**(values | given))


def banner(problems: list[Problem], lang: Lang, now: datetime = NOW) -> str:
    return Renderer().render("_trust.html", lang, doubts=trust.doubts(problems), now=now)


def lines(page: str) -> list[str]:
    """The banner's sentences, as a person reads them."""
    found = re.findall(r'<p class="doubt" data-code="[^"]*">(.*?)</p>', page, re.S)
    return [html.unescape(line) for line in found]


KINDS: list[tuple[Problem, str, str]] = [
    (
        Problem("broker_disconnected", "", "", SINCE),
        "Collector mất kết nối tới broker MQTT từ 03:12 — không báo cáo nào tới được: các "
        "trạng thái dưới đây là của trước lúc đó, và mỗi điểm sẽ hiện «không có báo cáo» khi "
        "quá hạn của nó",
        "The collector has been disconnected from its MQTT broker since 03:12 — no report "
        "reaches it: the states below are as of then, and each site will read «no report» once "
        "its stale window passes",
    ),
    (
        Problem("influx_unreachable", "", "", SINCE),
        "InfluxDB không nhận ghi từ 03:12 — biểu đồ và lịch sử dừng ở lúc đó",
        "InfluxDB has not taken writes since 03:12 — charts and history stop there",
    ),
    (
        Problem("thread_dead", "", "", SINCE, "mqtt"),
        "Luồng mqtt của collector đã dừng (nhịp cuối lúc 03:12) — không báo cáo nào được đọc",
        "The collector's mqtt thread has died (its last heartbeat at 03:12) — no report is read",
    ),
    (
        Problem("thread_silent", "", "", SINCE, "staleness"),
        "Luồng staleness của collector bị treo từ 03:12 — điểm ngừng báo cáo không bị đánh dấu",
        "The collector's staleness thread has been stuck since 03:12 — sites that stop reporting "
        "are not marked silent",
    ),
    (
        Problem("thread_busy", "", "", SINCE, "writer"),
        "Luồng writer của collector bị treo từ 03:12 — báo cáo không được lưu",
        "The collector's writer thread has been stuck since 03:12 — reports are not stored",
    ),
    (
        Problem("reports_late", "", "", SINCE, None, ("hp", "qn")),
        "Báo cáo của hp, qn tới chậm từ 03:12 — collector đang đọc tồn đọng",
        "Reports from hp, qn have arrived late since 03:12 — the collector is working off a "
        "backlog",
    ),
    (
        Problem("stopping", "", "", SINCE),
        "Collector đang dừng từ 03:12 — các trạng thái dưới đây đứng yên cho tới khi nó chạy lại",
        "The collector has been stopping since 03:12 — the states below are frozen until it "
        "runs again",
    ),
    (
        Problem("thread_dead", "", "", SINCE, "state-saver"),
        "Luồng state-saver của collector đã dừng (nhịp cuối lúc 03:12) — các trạng thái dưới đây "
        "có thể không còn đúng",
        "The collector's state-saver thread has died (its last heartbeat at 03:12) — the states "
        "below may not be current",
    ),
]


@pytest.mark.parametrize(("problem", "vi", "en"), KINDS, ids=[k[0].code for k in KINDS])
def test_each_problem_says_what_since_when_and_what_it_means_in_both_languages(
    problem: Problem, vi: str, en: str
) -> None:
    for lang, expected in zip(LANGS, (vi, en), strict=True):
        shown = banner([problem], lang)
        assert 'id="trust"' in shown
        (line,) = lines(shown)
        assert line.startswith(expected), (lang, line)
        assert '<a href="/healthz">/healthz</a>' in shown


def test_a_healthy_collector_shows_no_banner() -> None:
    for lang in LANGS:
        assert banner([], lang).strip() == ""


def test_the_verdicts_doubts_come_first_and_a_day_old_start_shows_its_day() -> None:
    influx = Problem("influx_unreachable", "", "", SINCE - timedelta(days=1))
    broker = Problem("broker_disconnected", "", "", SINCE)
    shown = banner([influx, broker], "en")
    assert 'class="trust severe"' in shown  # the verdicts are in doubt, not only the charts
    first, second = lines(shown)
    assert first.startswith("The collector has been disconnected") and "since 03:12 " in first
    assert second.startswith("InfluxDB has not taken writes since 07/09 03:12 —"), second
    alone = banner([influx], "en")
    assert 'class="trust"' in alone  # charts only: a milder colour


def test_a_province_s_viewer_is_told_of_its_own_province_read_late_only() -> None:
    late = Problem("reports_late", "", "", SINCE, None, ("hn", "hp"))
    broker = Problem("broker_disconnected", "", "", SINCE)
    assert [d.provinces for d in trust.doubts([late])] == [("hn", "hp")]  # the NOC: all
    assert [d.provinces for d in trust.doubts([late], "hp")] == [("hp",)]
    assert [d.code for d in trust.doubts([late, broker], "qn")] == ["broker_disconnected"]
    (line,) = lines(
        Renderer().render("_trust.html", "en", doubts=trust.doubts([late], "hp"), now=NOW)
    )
    assert line.startswith("Reports from hp have arrived late") and "hn" not in line


def test_nothing_from_outside_reaches_the_banner_unescaped() -> None:
    """A loop's name and a code are the collector's own words, but the banner escapes them
    anyway: markup, quotes and line breaks as text, on one line."""
    odd = [
        Problem("thread_dead", "", "", SINCE, EVIL),
        Problem(EVIL, "", "", None),  # a code the board has no words for
    ]
    for lang in LANGS:
        shown = banner(odd, lang)
        assert "<img" not in shown and "\"'" not in shown, shown
        assert "&lt;img src=x onerror=alert(1)&gt;&#34;&#39; next" in shown  # one line
        for line in re.findall(r'<p class="doubt".*?</p>', shown, re.S):
            assert "\n" not in line
    assert "The collector reports a problem (&lt;img" in banner(odd, "en")


def test_the_brokers_error_text_never_reaches_the_board() -> None:
    """/healthz says why the broker refused (text from OpenSSL, the OS, the peer); the board
    shows what it means, for every role alike, and leaves the cause and fix to /healthz."""
    failing = Failing(
        cause="cannot connect: [SSL] <b>CN=core-gw.internal</b> password=hunter2",
        fix="check broker.ca_file names the CA",
        attempts=3,
        since=SINCE.timestamp(),
    )
    health = calm(broker_connected=False, broker_failure=failing)
    assert health.body["broker_failure"]["cause"] == failing.cause  # there, for operators
    for lang in LANGS:
        shown = banner(list(health.problems), lang)
        assert "03:12" in shown
        for secret in ("core-gw", "hunter2", "SSL", "ca_file", "CN="):
            assert secret not in shown, (secret, shown)


def test_each_problem_knows_since_when() -> None:
    now = NOW.timestamp()
    lost = (SINCE - timedelta(minutes=5)).timestamp()
    failing = Failing(cause="x", fix=None, attempts=0, since=SINCE.timestamp())
    loops = [
        LoopHealth("mqtt", False, False, 60.0, 0.0, 0, None),
        LoopHealth("staleness", True, True, 120.0, 0.0, 0, None, periodic=True),
        LoopHealth("writer", True, True, 1.0, 300.0, 0, None),
        LoopHealth("api", True, False, 1.0, 0.0, 0, None),
    ]
    health = assess(
        broker_connected=False,
        broker_failure=None,
        broker_lost_at=lost,
        influx_configured=True,
        influx_down=True,
        influx_down_since=SINCE.timestamp(),
        spooled_batches=2,
        loops=loops,
        now=now,
    )
    since = {(p.code, p.thread): p.since for p in health.problems}
    assert since == {
        ("broker_disconnected", None): datetime.fromtimestamp(lost, UTC),
        ("influx_unreachable", None): SINCE,
        ("thread_dead", "mqtt"): NOW - timedelta(seconds=60),
        ("thread_silent", "staleness"): NOW - timedelta(seconds=120),
        ("thread_busy", "writer"): NOW - timedelta(seconds=300),
    }
    assert health.body["problems"][0]["since"] == datetime.fromtimestamp(lost, UTC)
    stopping = calm(stopping_since=SINCE.timestamp())
    assert [(p.code, p.since) for p in stopping.problems] == [("stopping", SINCE)]
    late = calm(late={"hn": Late(300.0, now - 60), "hp": Late(754.0, SINCE.timestamp())})
    [problem] = late.problems
    assert (problem.code, problem.since, problem.provinces) == ("reports_late", SINCE, ("hn", "hp"))
    assert problem.text_en.startswith("reports arrive late: hn, hp read 13 min behind")
    assert late.body["reports_late"]["hp"] == {"behind_s": 754.0, "since": SINCE}
    assert late.body["problems"][0]["provinces"] == ["hn", "hp"]
    assert not stopping.ok and stopping.body["ok"] is False
    assert health.body["problems"][2]["thread"] == "mqtt"
    # A run of failed attempts says when it began: that is when the broker was lost.
    again = assess(
        broker_connected=False,
        broker_failure=failing,
        broker_lost_at=lost,
        influx_configured=False,
        influx_down=False,
        spooled_batches=0,
        loops=[],
        now=now,
    )
    assert again.problems[0].since == SINCE


async def test_a_change_of_the_collectors_health_tells_every_stream_to_fetch_its_part() -> None:
    changes = Changes()
    stream = events(changes, lambda site, province: False, last_seen=None)  # shows no site
    await anext(stream)
    changes.site("qn-bts-1", "qn")  # nothing it shows: no event
    changes.everything()
    async with asyncio.timeout(5):
        told = (await anext(stream)).decode()
    assert json.loads(told.split("data: ")[1]) == {"all": True}
    changes.close()


# --- over HTTP, on a real collector with a broker of its own ------------------------------


@pytest.fixture
def board(tmp_path: Path, fresh_broker: Broker) -> Iterator[Board]:
    running = start_board(tmp_path, fresh_broker)
    a_province(running.collector, "hp")
    yield running
    running.collector.stop()


def live_pages(board: Board, admin: httpx.Client) -> list[str]:
    start = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    planned = admin.post(
        "/meetings",
        data={"title": "Họp", "starts_at": start, "duration_h": "1", "province": "hp"},
    )
    assert planned.status_code == 303, planned.text
    return [
        "/",
        "/provinces/hp",
        "/sites/hp-bts-kien-an",
        planned.headers["location"],
        "/compliance/hp",
        "/risk",
        "/risk/hp",
    ]


def test_every_live_page_shows_the_blind_collector_while_its_broker_is_down(
    board: Board, fresh_broker: Broker
) -> None:
    admin = httpx.Client(base_url=board.url, headers={"Origin": board.url}, timeout=15)
    login = admin.post("/login", data={"token": board.tokens["admin"], "next": "/"})
    assert login.status_code == 303, login.text
    hp = httpx.Client(base_url=board.url, headers=board.bearer("hp"), timeout=15)
    pages = live_pages(board, admin)
    for path in pages:
        page = hp.get(path, params={"lang": "vi"})
        assert page.status_code == 200, path
        assert 'id="trust"' not in page.text, path  # healthy: no banner
        assert 'id="lost"' in page.text and "Mất kết nối tới kienco từ {at}" in page.text, path
        english = hp.get(path, params={"lang": "en"}).text
        assert "Lost contact with kienco since {at} — this page may be out of date" in english

    fresh_broker.stop()
    try:
        wait_until(lambda: not board.collector.health().ok, what="the collector blind")
        for path in pages:
            for who in (hp, admin):
                page = who.get(path, params={"lang": "vi"})
                assert page.status_code == 200, path
                assert "Collector mất kết nối tới broker MQTT từ " in page.text, path
                part = who.get(path, headers={"HX-Request": "true"}).text
                assert part.lstrip().startswith('<div id="trust"'), (path, part[:200])
            english = hp.get(path, params={"lang": "en"}, headers={"HX-Request": "true"}).text
            assert "disconnected from its MQTT broker since " in english, path
            assert "each site will read «no report» once its stale window passes" in english
        # The start as the board shows times: Vietnam time, the same minute /healthz says.
        since = board.collector.health().problems[0].since
        assert since is not None
        shown = (since + timedelta(hours=7)).strftime("%H:%M")
        assert f"broker MQTT từ {shown} —" in hp.get("/", params={"lang": "vi"}).text
    finally:
        fresh_broker.start()
    assert board.collector.wait_connected(15)
    for path in pages:
        assert 'id="trust"' not in hp.get(path, headers={"HX-Request": "true"}).text, path
