"""Access by role on every API route: each role × each route allowed, refused or filtered.

A real collector (real broker) with a token per role, meeting points and stations
in two provinces (hp, qn), a meeting in each, and a dead letter. A ``province:hp``
token must see no ``qn`` site on any route, and its changes to qn are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from kienco.cli import main as kienco_main
from tests.support.board import ROLES, SITES, Board, start_board
from tests.support.mosquitto import Broker

READERS = ("noc", "ministry", "admin")  # read everything
EVERYONE = (*ROLES, "anonymous")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory, mosquitto: Broker) -> Iterator[Board]:
    running = start_board(tmp_path_factory.mktemp("roles"), mosquitto)
    yield running
    running.collector.stop()


@pytest.fixture(scope="module")
def meetings(board: Board) -> dict[str, str]:
    """A meeting per province, planned by the admin: province -> meeting id."""
    made = {}
    for province in SITES:
        answer = httpx.post(
            f"{board.url}/api/v1/meetings",
            json={
                "title": f"Họp {province}",
                "starts_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
                "duration_s": 3600,
                "province": province,
            },
            headers=board.bearer("admin"),
        )
        assert answer.status_code == 200, answer.text
        made[province] = answer.json()["id"]
    return made


def get(board: Board, who: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{board.url}{path}", params=params, headers=board.bearer(who), timeout=10)


def post(board: Board, who: str, path: str, body: object = None) -> httpx.Response:
    return httpx.post(f"{board.url}{path}", json=body, headers=board.bearer(who), timeout=10)


def provinces_in(answer: httpx.Response) -> set[str]:
    return {site["province"] for site in answer.json()["sites"]}


# --- reads ------------------------------------------------------------------------------


def test_every_read_needs_a_token_when_anonymous_reads_are_off(
    board: Board, meetings: dict[str, str]
) -> None:
    paths = [
        "/api/v1/readiness",
        "/api/v1/sites/hp-dc-1",
        "/api/v1/risk",
        "/api/v1/meetings",
        f"/api/v1/meetings/{meetings['hp']}",
        "/api/v1/compliance?province=hp",
        "/api/v1/deadletter",
        "/api/v1/deadletter/1",
        "/api/v1/whoami",
    ]
    for path in paths:
        answer = httpx.get(f"{board.url}{path}")
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "anonymous_read" in answer.json()["error"]  # says why, and the switch
    # What never needs a token: the agents' test, probes, Prometheus, the schema.
    assert httpx.get(f"{board.url}/api/v1/throughput?bytes=10").status_code == 200
    assert httpx.get(f"{board.url}/healthz").status_code == 200
    assert httpx.get(f"{board.url}/metrics").status_code == 200
    assert httpx.get(f"{board.url}/api/v1/openapi.json").status_code == 200


def test_an_unknown_or_malformed_token_is_refused(board: Board) -> None:
    for header in ("Bearer nope-nope-nope-nope", f"Basic {board.tokens['noc']}", "Bearer"):
        answer = httpx.get(f"{board.url}/api/v1/readiness", headers={"Authorization": header})
        assert answer.status_code == 403, header


@pytest.mark.parametrize("who", ROLES)
def test_whoami_names_the_token_and_its_role(board: Board, who: str) -> None:
    answer = get(board, who, "/api/v1/whoami")
    assert answer.status_code == 200
    assert answer.json()["role"] == ROLES[who] and answer.json()["name"] == f"{who}-token"


@pytest.mark.parametrize("who", ROLES)
def test_readiness_is_filtered_to_the_province_of_a_province_token(board: Board, who: str) -> None:
    answer = get(board, who, "/api/v1/readiness")
    assert answer.status_code == 200
    expected = {ROLES[who].split(":")[1]} if ":" in ROLES[who] else set(SITES)
    assert provinces_in(answer) == expected
    assert answer.json()["count"] == sum(len(SITES[p]) for p in expected)
    # Asking for another province by name: refused, not silently empty.
    other = get(board, who, "/api/v1/readiness", province="qn")
    if who == "hp":
        assert other.status_code == 403 and "hp" in other.json()["error"]
    else:
        assert other.status_code == 200 and provinces_in(other) == {"qn"}


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("site", ["hp-dc-1", "qn-dc-1"])
def test_a_site_of_another_province_does_not_exist_for_a_province_token(
    board: Board, who: str, site: str
) -> None:
    answer = get(board, who, f"/api/v1/sites/{site}")
    province = site.split("-")[0]
    allowed = ":" not in ROLES[who] or ROLES[who] == f"province:{province}"
    if allowed:
        assert answer.status_code == 200 and answer.json()["status"]["site"] == site
    else:
        assert answer.status_code == 404
        assert answer.json() == get(board, who, "/api/v1/sites/nowhere-1").json() | {
            "error": f"no site {site!r}"
        }  # the same answer as a site that does not exist


@pytest.mark.parametrize("who", ROLES)
def test_meetings_are_filtered_and_another_province_s_is_404(
    board: Board, meetings: dict[str, str], who: str
) -> None:
    listed = get(board, who, "/api/v1/meetings")
    assert listed.status_code == 200
    shown = {m["id"] for m in listed.json()}
    for province, meeting in meetings.items():
        visible = ":" not in ROLES[who] or ROLES[who] == f"province:{province}"
        assert (meeting in shown) is visible
        one = get(board, who, f"/api/v1/meetings/{meeting}")
        if visible:
            assert one.status_code == 200
            assert {p["province"] for p in one.json()["points"]} == {province}
        else:
            assert one.status_code == 404


@pytest.mark.parametrize("who", ROLES)
def test_risk_levels_and_compliance_by_role(board: Board, who: str) -> None:
    risk = get(board, who, "/api/v1/risk")
    assert risk.status_code == 200
    other = get(board, who, "/api/v1/risk", province="qn")
    mine = get(board, who, "/api/v1/compliance", province="hp")
    theirs = get(board, who, "/api/v1/compliance", province="qn")
    assert (mine.status_code == 200 and mine.json()["province"] == "hp") or who == "qn"
    if who == "hp":
        assert other.status_code == 403 and theirs.status_code == 403
        assert all(e["province"] == "hp" for e in risk.json()["history"])
        assert set(risk.json()["current"]) <= {"hp"}
    elif who == "qn":
        assert mine.status_code == 403 and theirs.status_code == 200
    else:
        assert other.status_code == 200 and theirs.status_code == 200


@pytest.mark.parametrize("who", ROLES)
def test_the_what_if_of_a_province_is_for_those_who_read_it(board: Board, who: str) -> None:
    for province in SITES:
        answer = get(board, who, "/api/v1/whatif/grid-off", province=province)
        visible = ":" not in ROLES[who] or ROLES[who] == f"province:{province}"
        if visible:
            assert answer.status_code == 200
            assert {s["site"] for s in answer.json()["sites"]} == set(SITES[province])
        else:
            assert answer.status_code == 403
    nowhere = get(board, who, "/api/v1/whatif/grid-off", province="zz")
    if ":" in ROLES[who]:
        assert nowhere.status_code == 403  # not its province, whether it exists or not
    else:
        assert nowhere.status_code == 404
        assert nowhere.json()["error"].endswith("the collector knows: hp, qn")


@pytest.mark.parametrize("who", ROLES)
def test_dead_letters_are_for_the_noc_the_ministry_and_admins(board: Board, who: str) -> None:
    listing = get(board, who, "/api/v1/deadletter")
    one = get(board, who, "/api/v1/deadletter/1")
    if who in READERS:
        assert listing.status_code == 200 and listing.json()["entries"]
        assert one.status_code == 200 and one.json()["topic"] == "kienco/v1/qn/qn-dc-1/report"
    else:
        assert listing.status_code == 403 and one.status_code == 403


def test_a_province_token_sees_no_site_of_another_province_on_any_route(
    board: Board, meetings: dict[str, str]
) -> None:
    paths = [
        "/api/v1/readiness",
        "/api/v1/readiness?kind=station",
        "/api/v1/readiness?verdict=unknown",
        "/api/v1/risk",
        "/api/v1/meetings",
        *(f"/api/v1/meetings/{m}" for m in meetings.values()),
        *(f"/api/v1/sites/{s}" for sites in SITES.values() for s in sites),
        "/api/v1/compliance?province=hp",
        "/api/v1/compliance?province=qn",
        "/api/v1/whatif/grid-off?province=hp",
        "/api/v1/whatif/grid-off?province=qn",
        "/api/v1/deadletter",
        "/api/v1/deadletter/1",
        "/api/v1/whoami",
    ]
    for path in paths:
        answer = httpx.get(f"{board.url}{path}", headers=board.bearer("hp"))
        text = answer.text
        named = [qn for qn in (*SITES["qn"], meetings["qn"]) if qn in path]
        if named:  # asked for by name: answered as something that does not exist
            assert answer.status_code == 404, path
            assert answer.json() == {
                "error": f"no {'meeting' if 'meet' in path else 'site'} {named[0]!r}"
            }
            continue
        assert not any(site in text for site in SITES["qn"]), (path, text[:300])
        assert '"qn"' not in text and meetings["qn"] not in text, (path, text[:300])


# --- changes ----------------------------------------------------------------------------


RISK = {"level": 2, "reason": "áp thấp", "set_by": "test"}


@pytest.mark.parametrize("who", EVERYONE)
def test_only_an_admin_sets_a_risk_level(board: Board, who: str) -> None:
    answer = post(board, who, "/api/v1/risk", {"province": "hp", **RISK})
    if who == "admin":
        assert answer.status_code == 200
        assert board.collector.risk.level("hp") == 2
    else:
        assert answer.status_code == (401 if who == "anonymous" else 403)
        if who != "anonymous":
            assert "admin" in answer.json()["error"]


@pytest.mark.parametrize("who", EVERYONE)
def test_a_province_plans_its_own_meetings_and_nobody_else_s(board: Board, who: str) -> None:
    def plan(**fields: object) -> httpx.Response:
        at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        body = {"title": "t", "starts_at": at, "duration_s": 60, **fields}
        return post(board, who, "/api/v1/meetings", body)

    before = len(board.collector.meetings.all())
    own = plan(province="hp")
    theirs = plan(province="qn")
    their_points = plan(points=["qn-dc-1"])
    mixed = plan(points=["hp-dc-1", "qn-dc-1"])
    if who == "admin":
        assert [a.status_code for a in (own, theirs, their_points, mixed)] == [200] * 4
    elif who == "hp":
        assert own.status_code == 200 and set(own.json()["points"]) == {"hp-dc-1", "hp-dc-2"}
        assert [a.status_code for a in (theirs, their_points, mixed)] == [403] * 3
        # A province's token with neither province nor points: its own province.
        assert set(plan().json()["points"]) == {"hp-dc-1", "hp-dc-2"}
    elif who == "qn":
        assert theirs.status_code == 200 and their_points.status_code == 200
        assert own.status_code == 403 and mixed.status_code == 403
    else:
        expected = 401 if who == "anonymous" else 403
        assert {a.status_code for a in (own, theirs, their_points, mixed)} == {expected}
        assert len(board.collector.meetings.all()) == before


@pytest.mark.parametrize("who", EVERYONE)
def test_rehearsals_by_role(board: Board, meetings: dict[str, str], who: str) -> None:
    hp, qn = (post(board, who, f"/api/v1/meetings/{meetings[p]}/rehearse") for p in ("hp", "qn"))
    if who == "admin":
        assert hp.status_code == 200 and qn.status_code == 200
    elif who == "hp":
        assert hp.status_code == 200 and sorted(hp.json()["requested"]) == ["hp-dc-1", "hp-dc-2"]
        assert qn.status_code == 404  # not its to see, so not its to ask
    elif who == "qn":
        assert qn.status_code == 200 and hp.status_code == 404
    else:
        assert {hp.status_code, qn.status_code} == {401 if who == "anonymous" else 403}


@pytest.mark.parametrize("who", EVERYONE)
def test_only_an_admin_replays_dead_letters(board: Board, who: str) -> None:
    answer = post(board, who, "/api/v1/deadletter/replay", {"id": 1})
    if who == "admin":
        assert answer.status_code == 200
        assert answer.json()["still_refused"][0]["id"] == 1  # still not JSON
    else:
        assert answer.status_code == (401 if who == "anonymous" else 403)


# --- the CLI with a role token ----------------------------------------------------------


def test_the_cli_reads_with_a_role_token_and_says_why_when_refused(
    board: Board, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KIENCO_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("KIENCO_TOKEN", raising=False)
    ask = ["readiness", "--province", "hp", "--kind", "all", "--json", "--url", board.url]
    assert kienco_main(ask) == 1
    err = capsys.readouterr().err
    assert "401" in err and "KIENCO_TOKEN" in err
    monkeypatch.setenv("KIENCO_TOKEN", board.tokens["hp"])
    assert kienco_main(ask) == 3  # not all ready (never heard): but read
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["province"] for line in lines} == {"hp"}
    assert kienco_main([*ask[:2], "qn", *ask[3:]]) == 1
    assert "403" in capsys.readouterr().err


def test_a_config_with_an_unknown_role_or_two_hashes_is_refused_with_the_fix() -> None:
    from pydantic import ValidationError

    from collector.config import HttpListen

    with pytest.raises(ValidationError, match="province:<code>"):
        HttpListen.model_validate({"tokens": [{"name": "x", "role": "boss", "sha256": "0" * 64}]})
    with pytest.raises(ValidationError, match="exactly one of sha256 or pbkdf2"):
        HttpListen.model_validate({"tokens": [{"name": "x", "role": "noc"}]})
    with pytest.raises(ValidationError, match="given twice"):
        entry = {"name": "x", "role": "noc", "sha256": "0" * 64}
        HttpListen.model_validate({"tokens": [entry, entry]})


def test_kienco_token_new_and_hash_print_entries_the_collector_takes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from collector.config import HttpListen

    assert kienco_main(["token", "new", "--name", "ops", "--role", "noc", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["token"] not in json.dumps(made["entry"])  # only its hash is kept
    chosen = "một mã do người chọn, đủ dài"
    monkeypatch.setattr("sys.stdin", io.StringIO(chosen + "\n"))
    assert kienco_main(["token", "hash", "--name", "hp-it", "--role", "province:hp"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("- ") and chosen not in line
    book = HttpListen.model_validate({"tokens": [made["entry"], json.loads(line[2:])]}).token_book()
    ops, hp = book.principal(made["token"]), book.principal(chosen)
    assert ops is not None and str(ops.role) == "noc" and ops.name == "ops"
    assert hp is not None and hp.province == "hp"
    assert book.principal(made["token"] + "x") is None
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert kienco_main(["token", "hash", "--name", "x", "--role", "noc"]) == 2
    with pytest.raises(SystemExit):
        kienco_main(["token", "new", "--name", "x", "--role", "province:HP!"])
