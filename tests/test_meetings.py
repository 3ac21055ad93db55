"""Planned meetings through the real broker, collector, CLI and API: N of M ready, the power
that will not last the meeting, rehearsals asked over MQTT, recorded, and no longer counted
when too old."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Command, Event, Meta, PowerReading, Report, utc_text
from kienco.cli import main as kienco_main
from kienco.commands.meeting import parse_duration, parse_start
from rules.texts import format_value
from tests.support.mosquitto import Broker
from tests.support.subscriber import Subscriber
from tests.test_rules_support import genset, room, two_paths, ups


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def t0() -> datetime:
    """Now, when the test starts: the collector's clock stands here. Not when the file is
    imported: a real agent stamps its messages with the real time, and the collector
    refuses those more than 5 min ahead of its clock (a suite that reached the test 407 s
    after import failed)."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clock(t0: datetime) -> Clock:
    return Clock(t0)


ADMIN_TOKEN = "meetings-admin-token"


@pytest.fixture
def collector(
    tmp_path: Path, mosquitto: Broker, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Collector]:
    # Planning and rehearsing are changes: the CLI sends the token from the environment.
    monkeypatch.setenv("KIENCO_ADMIN_TOKEN", ADMIN_TOKEN)
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": "meetings-test",
                "topic_filter": "kienco/v1/mt/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {
                "port": 0,
                "admin_token": {"env": "KIENCO_ADMIN_TOKEN"},
                "anonymous_read": True,
            },
        }
    )
    running = Collector(config, clock=clock)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()


def feed(collector: Collector, site: str, power: tuple[PowerReading, ...], at: datetime) -> None:
    """The point's meta and one report, published on the real broker as its agent would."""
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    meta = Meta(
        site=site,
        province="mt",
        site_kind="meeting_point",
        name=f"Điểm cầu {site}",
        interval_s=60,
        agent_version="t",
        at=at,
    )
    report = Report(
        site=site,
        province="mt",
        seq=1,
        taken_at=at,
        interval_s=60,
        power=power,
        links=two_paths(),
        room=room(),
    )
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(collector.config.broker.host, collector.config.broker.port)
    client.loop_start()
    for kind, message in (("meta", meta), ("report", report)):
        info = client.publish(f"kienco/v1/mt/{site}/{kind}", message.model_dump_json(), qos=1)
        info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = collector.states.get(site)
        if held is not None and held.last_report_at == at and collector.verdicts.get(site):
            return
        time.sleep(0.02)
    raise AssertionError(f"{site}: the collector did not take its report")


def rehearsed(collector: Collector, site: str, meeting: str, at: datetime) -> None:
    event = Event(site=site, province="mt", seq=2, at=at, event="rehearsal", detail=meeting)
    collector.handle(f"kienco/v1/mt/{site}/event", event.model_dump_json().encode(), 0, 0)


def status(collector: Collector, meeting: str, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert collector.api is not None
    kienco_main(
        ["meeting", "status", meeting, "--json", "--lang", "en", "--url", collector.api.url]
    )
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_a_meeting_from_plan_to_rehearsal(
    collector: Collector,
    clock: Clock,
    t0: datetime,
    mosquitto: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    short = (ups(battery_runtime_s=110 * 60.0),)  # 1 h 50 min, no generator
    strong = (ups(battery_runtime_s=3600.0), genset(fuel_l=100.0, fuel_burn_l_per_h=5.0))
    feed(collector, "mt-dc-xa", short, t0)
    feed(collector, "mt-dc-tinh", strong, t0)
    assert collector.api is not None
    url = collector.api.url

    assert (
        kienco_main(
            [
                "meeting",
                "plan",
                "--at",
                (t0 + timedelta(hours=1)).isoformat(),
                "--duration",
                "3h",
                "--province",
                "mt",
                "--url",
                url,
            ]
        )
        == 0
    )
    meeting = json.loads(capsys.readouterr().out)
    assert sorted(meeting["points"]) == ["mt-dc-tinh", "mt-dc-xa"]

    before = status(collector, meeting["id"], capsys)
    assert (before["ready"], before["total"]) == (0, 2)
    by_site = {p["site"]: p for p in before["points"]}
    xa = {r["code"]: r["text_en"] for r in by_site["mt-dc-xa"]["reasons"]}
    assert by_site["mt-dc-xa"]["verdict"] == "not_ready"
    assert xa["meeting_power_short"].startswith(
        "if mains fail, backup power lasts 1 h 50 min; the meeting needs 3 h 36 min, to "
    )
    assert xa["rehearsal_missing"] == "no rehearsal yet (one passed within 24 h is required)"
    assert [r["code"] for r in by_site["mt-dc-tinh"]["reasons"] if r["severity"] != "info"] == [
        "rehearsal_missing"
    ]

    # Rehearse: every point is asked on its command topic; their agents answer with an event.
    commands = Subscriber(mosquitto.port, "kienco/v1/mt/+/command", client_id="t-cmd")
    try:
        assert kienco_main(["meeting", "rehearse", meeting["id"], "--wait", "0", "--url", url]) == 3
        asked = commands.wait_for(2, lambda t: True, timeout_s=10)
    finally:
        commands.close()
    assert {Command.model_validate_json(p).site for _, p in asked} == {"mt-dc-xa", "mt-dc-tinh"}
    capsys.readouterr()
    for site in ("mt-dc-xa", "mt-dc-tinh"):
        rehearsed(collector, site, meeting["id"], t0)

    after = status(collector, meeting["id"], capsys)
    by_site = {p["site"]: p for p in after["points"]}
    assert by_site["mt-dc-tinh"]["verdict"] == "ready"
    assert (after["ready"], after["total"]) == (1, 2)
    assert "rehearsal_missing" not in {r["code"] for r in by_site["mt-dc-xa"]["reasons"]}
    seen = after["rehearsals"]["mt-dc-tinh"]
    assert (seen["at"], seen["passed"], seen["problems"]) == (utc_text(t0), True, [])

    # Asked again: the earlier rehearsal is no answer; the command waits for a newer one
    # and says who has not answered (it returned at once, the old results as if new).
    clock.now = t0 + timedelta(minutes=10)
    again = ["meeting", "rehearse", meeting["id"], "--wait", "1", "--url", url]
    assert kienco_main(again) == 3
    assert "no answer yet from: mt-dc-tinh, mt-dc-xa" in capsys.readouterr().err

    # A day later it still counted for this meeting (it was 1 h old when it began), but
    # for a meeting an hour from then it no longer counts (policy: 24 h).
    clock.now = t0 + timedelta(hours=25)
    feed(collector, "mt-dc-tinh", strong, clock.now)
    later = status(collector, meeting["id"], capsys)
    tinh = next(p for p in later["points"] if p["site"] == "mt-dc-tinh")
    assert tinh["verdict"] == "ready"
    plan = ["meeting", "plan", "--at", (t0 + timedelta(hours=26)).isoformat()]
    assert kienco_main([*plan, "--duration", "1h", "--points", "mt-dc-tinh", "--url", url]) == 0
    next_day = json.loads(capsys.readouterr().out)
    tinh = status(collector, next_day["id"], capsys)["points"][0]
    assert tinh["verdict"] == "degraded"
    assert [r["code"] for r in tinh["reasons"] if r["severity"] != "info"] == ["rehearsal_stale"]


def test_a_point_on_generator_must_last_until_the_meeting_ends(
    collector: Collector, t0: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 8: 5 h of fuel, a meeting in 4 h for 3 h: the need is (4 + 3) h x 1.2, from now."""
    on_generator = (
        ups(mains_present=False, battery_runtime_s=600.0),
        genset(
            generator_running=True,
            on_generator=True,
            mains_present=False,
            fuel_l=50.0,
            fuel_burn_l_per_h=10.0,
        ),
    )
    on_mains = (ups(battery_runtime_s=1200.0), genset(fuel_l=50.0, fuel_burn_l_per_h=10.0))
    feed(collector, "mt-dc-gen", on_generator, t0)
    feed(collector, "mt-dc-grid", on_mains, t0)
    assert collector.api is not None
    starts = t0 + timedelta(hours=4)
    plan = ["meeting", "plan", "--at", starts.isoformat(), "--duration", "3h"]
    assert kienco_main([*plan, "--province", "mt", "--url", collector.api.url]) == 0
    meeting = json.loads(capsys.readouterr().out)
    by_site = {p["site"]: p for p in status(collector, meeting["id"], capsys)["points"]}

    gen = {r["code"]: r for r in by_site["mt-dc-gen"]["reasons"]}
    assert by_site["mt-dc-gen"]["verdict"] == "not_ready"
    short = gen["meeting_power_runs_out"]
    assert short["numbers"]["needed_s"] == pytest.approx(8.4 * 3600)
    ends = format_value((starts + timedelta(hours=3)).timestamp(), "time", "en")
    assert "the meeting needs 8 h 24 min, to " in short["text_en"]
    assert f"(it ends at {ends}, plus 20 % margin)" in short["text_en"]
    # the same fuel on the grid holds: mains may fail at the start, 3 h x 1.2 = 3 h 36 min
    grid = [r["code"] for r in by_site["mt-dc-grid"]["reasons"] if r["severity"] != "info"]
    assert grid == ["rehearsal_missing"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3h", 10800), ("90m", 5400), ("1h30m", 5400), ("2.5h", 9000), ("600", 600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_start_is_vietnam_time_today_or_tomorrow() -> None:
    morning = datetime(2024, 9, 7, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
    assert parse_start("14:00", None, morning) == datetime(2024, 9, 7, 7, 0, tzinfo=UTC)
    evening = datetime(2024, 9, 7, 12, 0, tzinfo=UTC)  # 19:00: 14:00 has passed
    assert parse_start("14:00", None, evening) == datetime(2024, 9, 8, 7, 0, tzinfo=UTC)
    assert parse_start("14:00", "2024-09-10", evening) == datetime(2024, 9, 10, 7, 0, tzinfo=UTC)


async def test_a_real_agent_rehearses_when_asked(
    tmp_path: Path,
    mosquitto: Broker,
    collector: Collector,
    t0: datetime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    from agent.config import SiteConfig
    from agent.runner import Agent

    servers = [await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0) for _ in "ab"]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    healthy_room = Path(__file__).parent / "fixtures" / "pc-rooms" / "healthy"
    site = SiteConfig.model_validate(
        {
            "site": "mt-dc-ag",
            "province": "mt",
            "kind": "meeting_point",
            "name": "Điểm cầu thử",
            "interval_s": 3600,
            "broker": {"url": mosquitto.url},
            "outbox": {"path": str(tmp_path / "o.sqlite")},
            "disk_path": str(tmp_path),
            "room": {"pc": {"root": str(healthy_room)}},
            "paths": [
                {
                    "path": "fibre-a",
                    "media": "fibre",
                    "srlg": ["duct-1"],
                    "probes": 2,
                    "target": {"host": "127.0.0.1", "port": ports[0]},
                },
                {
                    "path": "lte",
                    "media": "cellular",
                    "srlg": ["tower-2"],
                    "probes": 2,
                    "target": {"host": "127.0.0.1", "port": ports[1]},
                },
            ],
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(Agent(site).run(stop))
    try:
        for _ in range(200):  # its first report makes it a known meeting point
            if collector.states.get("mt-dc-ag") and collector.states.get("mt-dc-ag").last_report_at:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        assert collector.api is not None
        url = collector.api.url
        assert (
            await asyncio.to_thread(
                kienco_main,
                [
                    "meeting",
                    "plan",
                    "--at",
                    (t0 + timedelta(hours=1)).isoformat(),
                    "--duration",
                    "1h",
                    "--points",
                    "mt-dc-ag",
                    "--url",
                    url,
                ],
            )
            == 0
        )
        meeting = json.loads(capsys.readouterr().out)["id"]
        await asyncio.to_thread(
            kienco_main, ["meeting", "rehearse", meeting, "--wait", "20", "--json", "--url", url]
        )
        result = json.loads(capsys.readouterr().out)
    finally:
        stop.set()
        await task
        for server in servers:
            server.close()
    point = result["points"][0]
    codes = {r["code"] for r in point["reasons"]}
    assert "rehearsal_missing" not in codes  # the agent answered; the result is recorded
    recorded = collector.meetings.latest_rehearsals(["mt-dc-ag"])["mt-dc-ag"]
    # A meeting PC cannot tell whether its client is signed in (no codec API): the
    # default policy checks that, so the rehearsal says so instead of passing blindly.
    assert not recorded.passed
    assert any("thiết bị" in problem for problem in recorded.problems)


@pytest.mark.parametrize(
    ("seen_at", "waiting"),
    [
        (None, ["p1"]),
        ("2026-12-07T06:59:59Z", ["p1"]),  # an earlier rehearsal is no answer
        ("2026-12-07T07:00:00Z", []),
        ("2026-12-07T07:00:30Z", []),
    ],
    ids=["never", "before-the-request", "at-it", "after-it"],
)
def test_a_point_has_answered_with_a_rehearsal_no_older_than_the_request(
    seen_at: str | None, waiting: list[str]
) -> None:
    from kienco.commands.meeting import _not_answered

    seen = {} if seen_at is None else {"p1": {"at": seen_at, "passed": True, "problems": []}}
    assert _not_answered(["p1"], "2026-12-07T07:00:00Z", seen) == waiting


def test_a_point_never_heard_of_is_shown_not_known_and_breaks_no_page(
    collector: Collector, t0: datetime
) -> None:
    """A meeting planned by its points (no province), one of which the collector has never
    heard (its box not installed yet, or forgotten across a restart): that point is
    ``unknown``, "no report received yet", on the API and the board; neither answers 500."""
    import httpx

    feed(collector, "mt-dc-xa", (ups(),), t0)
    assert collector.api is not None
    admin = httpx.Client(
        base_url=collector.api.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Origin": collector.api.url},
        timeout=15,
    )
    planned = admin.post(
        "/api/v1/meetings",
        json={
            "title": "Họp khẩn",
            "starts_at": (t0 + timedelta(hours=1)).isoformat(),
            "duration_s": 7200,
            "points": ["mt-dc-xa", "mt-dc-ghost"],
        },
    )
    assert planned.status_code == 200, planned.text
    meeting = planned.json()["id"]
    answer = admin.get(f"/api/v1/meetings/{meeting}")
    assert answer.status_code == 200, answer.text
    ghost = next(p for p in answer.json()["points"] if p["site"] == "mt-dc-ghost")
    assert ghost["verdict"] == "unknown"
    assert [r["code"] for r in ghost["reasons"]] == ["no_report_yet"]
    page = admin.get(f"/meetings/{meeting}")
    assert page.status_code == 200, page.text[:300]
    assert "mt-dc-ghost" in page.text
