"""The collector's HTTP server: the board's login and its cross-site guard, the security
headers, the bounds (slow headers, connections, body size), and a server that cannot die.

Real collector, real broker, real sockets on loopback.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

import collector.api
from collector.service import Collector
from collector.web.redirects import MAX_NEXT, local_path
from tests.support.board import Board, board_config, start_board, wait_until
from tests.support.mosquitto import Broker

RISK = {"province": "hp", "level": 3, "reason": "bão", "set_by": "test"}


@pytest.fixture
def board(tmp_path: Path, mosquitto: Broker) -> Iterator[Board]:
    running = start_board(tmp_path, mosquitto, max_connections=6)
    yield running
    running.collector.stop()


def login(board: Board, who: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{board.url}/login",
        data={"token": board.tokens[who]},
        headers={"Origin": board.url, **headers},
    )


def session(answer: httpx.Response) -> dict[str, str]:
    return {"kienco_session": answer.cookies["kienco_session"]}


# --- the board's session ----------------------------------------------------------------


def test_login_sets_an_http_only_strict_cookie_that_reads_as_its_role(board: Board) -> None:
    answer = login(board, "hp")
    assert answer.status_code == 200 and answer.json()["role"] == "province:hp"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http on loopback: a Secure cookie would never return
    who = httpx.get(f"{board.url}/api/v1/whoami", cookies=session(answer))
    assert who.json() == {
        "name": "hp-token",
        "role": "province:hp",
        "province": "hp",
        "via": "session",
        "admin": False,
    }
    seen = httpx.get(f"{board.url}/api/v1/readiness", cookies=session(answer))
    assert {s["province"] for s in seen.json()["sites"]} == {"hp"}
    # The session id is random and kept only hashed: the token itself is not the cookie.
    assert board.tokens["hp"] not in answer.headers["set-cookie"]


def test_behind_a_tls_proxy_on_this_machine_the_cookie_is_secure(board: Board) -> None:
    proxied = {"X-Forwarded-Proto": "https", "Origin": "https" + board.url[4:]}
    answer = login(board, "noc", **proxied)
    assert answer.status_code == 200
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_wrong_token_or_another_site_s_login_form_opens_no_session(board: Board) -> None:
    origin = {"Origin": board.url}
    wrong = httpx.post(f"{board.url}/login", data={"token": "x" * 40}, headers=origin)
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
    forced = login(board, "admin", Origin="http://evil.example")  # login CSRF
    assert forced.status_code == 403 and "set-cookie" not in forced.headers


# ``next`` as an attacker writes it: none may leave this server (an open redirect).
NOT_LOCAL = [
    "//evil.example/x",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\\evil.example",  # a backslash is a slash to browsers
    "/\t/evil.example",  # browsers drop tabs and newlines from URLs
    "/\r\n/evil.example",
    "/x\r\nSet-Cookie: a=b",  # header injection
    "/" + "a" * MAX_NEXT,  # longer than the form field takes
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", ["/", "/provinces/hp", "/provinces/hp?kind=station&lang=en"])
def test_local_path_keeps_a_path_of_this_server(target: str) -> None:
    assert local_path(target) == target


@pytest.mark.parametrize("target", NOT_LOCAL)
def test_local_path_refuses_anything_that_leaves_this_server(target: str) -> None:
    assert local_path(target) is None


def test_next_redirects_only_within_this_server(board: Board) -> None:
    def post(target: str) -> httpx.Response:
        return httpx.post(
            f"{board.url}/login",
            data={"token": board.tokens["noc"], "next": target},
            headers={"Origin": board.url},
        )

    answer = post("/province/hp")
    assert answer.status_code == 303 and answer.headers["location"] == "/province/hp"
    for target in NOT_LOCAL[:-1]:  # (an empty one is no next at all)
        answer = post(target)
        assert "location" not in answer.headers, target
        if len(target) <= MAX_NEXT:  # else the form refuses it (400) before any login
            assert answer.status_code == 200, target
        # The form carries only a local next, so its submit cannot leave either.
        form = httpx.get(f"{board.url}/login", params={"next": target})
        assert form.status_code == 200
        assert re.findall(r'name="next" value="([^"]*)"', form.text) == ["/"], target


def test_a_change_with_the_cookie_must_come_from_the_board_s_own_pages(board: Board) -> None:
    cookies = session(login(board, "admin"))
    url = f"{board.url}/api/v1/risk"
    cross = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {},  # neither Origin nor Referer: cannot tell, so no
        {"Referer": "http://evil.example/page"},
        {"Origin": board.url, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in cross:
        refused = httpx.post(url, json=RISK, cookies=cookies, headers=headers)
        assert refused.status_code == 403, headers
        assert "Origin" in refused.json()["error"]
    assert board.collector.risk.level("hp") == 0
    for headers in ({"Origin": board.url}, {"Referer": f"{board.url}/risk"}):
        assert httpx.post(url, json=RISK, cookies=cookies, headers=headers).status_code == 200
    assert board.collector.risk.level("hp") == 3
    # A bearer token is no cookie a browser sends by itself: no such check.
    bearer = httpx.post(url, json={**RISK, "level": 1}, headers=board.bearer("admin"))
    assert bearer.status_code == 200


def test_logout_ends_the_session_and_a_restart_keeps_it(
    board: Board, tmp_path: Path, mosquitto: Broker
) -> None:
    kept = session(login(board, "noc"))
    ended = session(login(board, "noc"))
    out = httpx.post(f"{board.url}/logout", cookies=ended, headers={"Origin": board.url})
    assert out.status_code == 204 and 'kienco_session=""' in out.headers["set-cookie"]
    assert httpx.get(f"{board.url}/api/v1/whoami", cookies=ended).status_code == 401
    board.collector.stop()
    # The same data dir and tokens, a new process's worth of collector: still logged in.
    config = board_config(tmp_path, mosquitto, board.tokens)
    again = Collector(config)
    again.start()
    try:
        assert again.api is not None
        who = httpx.get(f"{again.api.url}/api/v1/whoami", cookies=kept)
        assert who.status_code == 200 and who.json()["name"] == "noc-token"
        assert httpx.get(f"{again.api.url}/api/v1/whoami", cookies=ended).status_code == 401
    finally:
        again.stop()
    # The token taken out of the config: its sessions end with it.
    without = {k: v for k, v in board.tokens.items() if k != "noc"}
    third = Collector(board_config(tmp_path, mosquitto, without))
    third.start()
    try:
        assert third.api is not None
        assert httpx.get(f"{third.api.url}/api/v1/whoami", cookies=kept).status_code == 401
    finally:
        third.stop()
    board.collector = start_board(tmp_path / "again", mosquitto).collector  # for the fixture


# --- headers on every answer ------------------------------------------------------------


def test_every_answer_carries_the_security_headers(board: Board) -> None:
    answers = [
        httpx.get(f"{board.url}/api/v1/readiness", headers=board.bearer("noc")),
        httpx.get(f"{board.url}/api/v1/readiness"),  # 401
        httpx.get(f"{board.url}/api/v1/sites/nowhere", headers=board.bearer("noc")),  # 404
        httpx.get(f"{board.url}/no/such/page"),
        httpx.post(f"{board.url}/api/v1/risk", json={"x": 1}, headers=board.bearer("admin")),
        httpx.get(f"{board.url}/api/v1/throughput?bytes=100"),
        httpx.get(f"{board.url}/metrics"),
        httpx.get(f"{board.url}/healthz"),
        httpx.get(f"{board.url}/api/v1/openapi.json"),
        login(board, "noc"),
    ]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, answer.url
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-frame-options"] == "DENY"
    assert answers[3].status_code == 404 and answers[3].json()["error"].startswith("no such path")
    assert answers[4].status_code == 400 and answers[4].json()["error"] == "invalid request"


# --- bounds -----------------------------------------------------------------------------


def _connect(board: Board) -> socket.socket:
    assert board.collector.api is not None
    return socket.create_connection(("127.0.0.1", board.collector.api.port), timeout=5)


def test_a_connection_that_never_finishes_its_headers_is_closed(
    board: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector.api, "HEADERS_TIMEOUT_S", 0.5)
    with _connect(board) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5
    with _connect(board) as idle:  # nothing at all
        assert idle.recv(1024) == b""


def test_beyond_max_connections_a_request_is_answered_503(board: Board) -> None:
    held = [_connect(board) for _ in range(6)]
    try:
        time.sleep(0.2)
        busy = httpx.get(f"{board.url}/healthz", timeout=5)
        assert busy.status_code == 503
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: httpx.get(f"{board.url}/healthz").status_code == 200, what="room again")


def test_a_request_body_over_a_mebibyte_is_refused(board: Board) -> None:
    big = b"x" * (2 << 20)
    sized = httpx.post(f"{board.url}/api/v1/risk", content=big, headers=board.bearer("admin"))
    assert sized.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536

    admin = board.bearer("admin")
    streamed = httpx.post(f"{board.url}/api/v1/risk", content=chunks(), headers=admin)
    assert streamed.status_code == 413


def test_the_throughput_routes_need_no_token_and_keep_their_caps(board: Board) -> None:
    down = httpx.get(f"{board.url}/api/v1/throughput?bytes=300000")
    assert down.status_code == 200 and len(down.content) == 300_000
    assert down.headers["content-type"] == "application/octet-stream"
    assert httpx.get(f"{board.url}/api/v1/throughput?bytes=0").status_code == 400

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b"z" * 1000
            await asyncio.sleep(0.05)

    async def upload() -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(
                f"{board.url}/api/v1/throughput", params={"max_s": "0.2"}, content=trickle()
            )

    got = asyncio.run(upload()).json()
    assert 0 < got["bytes"] < 12_000 and 0.2 <= got["seconds"] < 0.5


# --- a server that cannot die -----------------------------------------------------------


def test_the_http_server_is_started_again_if_it_stops_and_healthz_says_so(board: Board) -> None:
    api = board.collector.api
    assert api is not None
    assert httpx.get(f"{board.url}/healthz").json()["http"]["serving"] is True
    assert api._server is not None
    api._server.should_exit = True  # as if uvicorn had ended on its own
    wait_until(lambda: api.state()["restarts"] == 1 and api.state()["serving"], what="restart")
    health = httpx.get(f"{board.url}/healthz").json()
    assert health["http"]["restarts"] == 1 and health["threads"]["api"]["errors"] == 1
    assert "stopped while the collector runs" in health["threads"]["api"]["last_error"]
    assert httpx.get(f"{board.url}/api/v1/whoami", headers=board.bearer("noc")).status_code == 200
