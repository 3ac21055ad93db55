"""What the collector writes for the dashboards: readiness codes and coordinates, the
periodic fleet and compliance summaries, meetings stamped at their start, rehearsals —
built as tables of cases, then through a real collector into a real InfluxDB."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.config import CollectorConfig
from collector.history import (
    COMPLIANCE_CRITERIA,
    MEDIA,
    STATE_CODES,
    VERDICT_CODES,
    compliance_points,
    fleet_points,
    meeting_point,
    rehearsal_point,
    worst_link_points,
)
from collector.inventory import load_inventory
from collector.line_protocol import Point, encode_many
from collector.points import time_ns
from collector.readiness import Verdicts, verdict_points
from collector.service import Collector
from collector.state import SiteStates
from collector.summaries import SummaryClock, attention_points
from contract.wire import Event, LinkReading, Meta, PathDecl, PowerReading, Reason, Report, Status
from rules import Policy, SiteSnapshot, load_policy
from rules.compliance import build_report
from rules.rehearsal import Rehearsal
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.test_rules_support import link

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "firmware-configs" / "inventory" / "example.csv"
POLICY = load_policy()
ADMIN_TOKEN = "dashboards-admin-token"
# The pure tables judge at a fixed instant; a test through the real collector takes its
# own now when it starts (an instant taken at import is minutes old when a loaded suite
# reaches the file).
NOW = datetime(2026, 9, 7, 3, 0, 17, tzinfo=UTC)  # Yagi over Hải Phòng; 17 s into a slot
PATHS = (
    PathDecl(path="fo-vnpt", media="fibre", provider="vnpt", srlg=("duct-5",)),
    PathDecl(path="mw-viettel", media="microwave", provider="viettel", srlg=("tower-2",)),
)


def meta(site: str, **fields: Any) -> Meta:
    values: dict[str, Any] = {
        "site": site,
        "province": "hp",
        "site_kind": "station",
        "name": f"Trạm {site}",
        "operator": "vnpt",
        "hardened": True,
        "site_class": "hardened",
        "latitude": 20.87,
        "longitude": 106.61,
        "paths": PATHS,
        "interval_s": 60,
        "agent_version": "t",
        "at": NOW - timedelta(minutes=5),
    }
    values.update(fields)
    return Meta.model_validate(values)


def report(site: str, *, at: datetime = NOW, fibre_up: bool = True, fuel_l: float = 400) -> Report:
    return Report(
        site=site,
        province="hp",
        seq=1,
        taken_at=at,
        interval_s=60,
        power=(
            PowerReading(device="ups1", mains_present=True, on_battery=False, load_pct=30.0),
            PowerReading(
                device="gen1",
                generator_running=False,
                fuel_l=fuel_l,
                fuel_pct=fuel_l / 5,  # a 500 L tank
                fuel_burn_l_per_h=5.0,
            ),
        ),
        links=(
            link("fo-vnpt", "fibre", "duct-5", up=fibre_up),
            link("mw-viettel", "microwave", "tower-2"),
        ),
    )


def status(site: str, verdict: str, state: str, **fields: Any) -> Status:
    return Status.model_validate(
        {
            "site": site,
            "province": "hp",
            "site_kind": "station",
            "verdict": verdict,
            "station_state": state,
            "evaluated_at": NOW,
            **fields,
        }
    )


def fields_of(point: Point) -> dict[str, Any]:
    return {k: v for k, v in point.fields.items() if v is not None}


# --- readiness ---------------------------------------------------------------------------


def test_a_readiness_point_carries_codes_names_reasons_and_coordinates() -> None:
    snapshot = SiteSnapshot(site="hp-bts-001", province="hp").with_meta(meta("hp-bts-001"))
    reason = Reason(
        rule="backup_power",
        code="backup_hours_short",
        severity="warning",
        text_vi="đang chạy ắc quy,\ncòn 2 giờ",
        text_en="on battery, 2 h left",
    )
    shown = status(
        "hp-bts-001",
        "not_ready",
        "up_battery",
        name="Trạm hp-bts-001",
        dark_in_s=7200.0,
        backup_hours=2.0,
        reasons=(reason,),
    )
    (readiness, finding) = verdict_points(snapshot, shown, NOW, findings=True)
    assert readiness.measurement == "readiness"
    assert dict(readiness.tags) == {
        "site": "hp-bts-001",
        "province": "hp",
        "kind": "station",
        "operator": "vnpt",
    }
    values = fields_of(readiness)
    assert values["verdict_code"] == VERDICT_CODES["not_ready"] == 3
    assert values["state_code"] == STATE_CODES["up_battery"] == 2
    assert values["dark_in_s"] == 7200.0 and values["backup_hours"] == 2.0
    assert (values["latitude"], values["longitude"]) == (20.87, 106.61)
    assert values["name"] == "Trạm hp-bts-001"
    assert values["reasons_vi"] == "đang chạy ắc quy, còn 2 giờ"  # one line: line protocol
    assert finding.measurement == "finding"
    assert encode_many([readiness]).count("\n") == 0  # one line, as it stands


def test_codes_rank_worse_higher_so_max_picks_the_worst_of_an_interval() -> None:
    assert sorted(VERDICT_CODES, key=VERDICT_CODES.__getitem__) == [
        "ready",
        "degraded",
        "unknown",
        "not_ready",
    ]
    assert STATE_CODES["up_commercial"] < STATE_CODES["up_generator"] < STATE_CODES["up_battery"]
    assert max(STATE_CODES.values()) == STATE_CODES["down_damage"]
    assert len(set(STATE_CODES.values())) == len(STATE_CODES)


# --- fleet -------------------------------------------------------------------------------


def test_fleet_counts_sites_by_verdict_state_and_paths_up_per_medium() -> None:
    fresh = SiteSnapshot(site="a", province="hp").with_meta(meta("a")).with_report(report("a"))
    cut = (
        SiteSnapshot(site="b", province="hp")
        .with_meta(meta("b"))
        .with_report(report("b", fibre_up=False))
    )
    silent = (
        SiteSnapshot(site="c", province="hp")
        .with_meta(meta("c", operator="viettel"))
        .with_report(report("c", at=NOW - timedelta(hours=2)))
    )
    sites = [
        (fresh, status("a", "ready", "up_commercial")),
        (cut, status("b", "degraded", "up_battery")),
        (silent, status("c", "unknown", "unknown")),
    ]
    points = fleet_points(sites, POLICY, NOW)
    by_operator = {dict(p.tags)["operator"]: fields_of(p) for p in points}
    assert {p.measurement for p in points} == {"fleet"}
    assert {dict(p.tags)["kind"] for p in points} == {"station"}
    vnpt, viettel = by_operator["vnpt"], by_operator["viettel"]
    assert (vnpt["sites"], vnpt["ready"], vnpt["degraded"], vnpt["not_ready"]) == (2, 1, 1, 0)
    assert (vnpt["up_commercial"], vnpt["up_battery"], vnpt["down_power"]) == (1, 1, 0)
    assert (vnpt["paths_fibre"], vnpt["paths_fibre_up"]) == (2, 1)
    assert (vnpt["paths_microwave"], vnpt["paths_microwave_up"]) == (2, 2)
    # a silent site's paths are declared but not up; its state is counted as unknown
    assert (viettel["paths_fibre"], viettel["paths_fibre_up"]) == (1, 0)
    assert (viettel["unknown"], viettel["state_unknown"]) == (1, 1)
    # every column is there, zeros included: a panel's columns never come and go
    assert all(f"paths_{m}_up" in vnpt for m in MEDIA)
    # fuel: the fresh sites' generators only (the silent site's last level is not "now")
    assert (vnpt["generators"], vnpt["fuel_pct_sum"]) == (2, 2 * 80.0)
    assert vnpt["fuel_pct_min"] == 80.0 and viettel["generators"] == 0
    assert "fuel_pct_min" not in viettel and viettel["fuel_pct_sum"] == 0.0


# --- attention ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "state", "listed"),
    [
        ("ready", "up_commercial", False),
        ("degraded", "up_commercial", False),  # one weakness on mains: not for 3 a.m.
        ("not_ready", "up_commercial", True),
        ("degraded", "up_battery", True),
        ("ready", "up_generator", True),
        ("unknown", "unknown", True),  # silent
        ("not_ready", "down_power", True),
        ("unknown", "down_transport", True),
    ],
)
def test_attention_lists_sites_off_mains_silent_or_not_ready(
    verdict: str, state: str, listed: bool
) -> None:
    snapshot = SiteSnapshot(site="a", province="hp").with_meta(meta("a"))
    points, now_listed = attention_points([(snapshot, status("a", verdict, state))], NOW, set())
    assert now_listed == ({"a"} if listed else set())
    assert len(points) == int(listed)
    if listed:
        (point,) = points
        (readiness,) = verdict_points(snapshot, status("a", verdict, state), NOW, findings=False)
        assert point.measurement == "attention" and point.tags == readiness.tags
        assert fields_of(point) == {**fields_of(readiness), "listed": True}
        assert point.time_ns == readiness.time_ns


def test_a_site_leaving_attention_gets_one_point_without_listed_then_none() -> None:
    snapshot = SiteSnapshot(site="a", province="hp").with_meta(meta("a"))
    on_battery = status("a", "degraded", "up_battery", dark_in_s=3600.0)
    back = status("a", "ready", "up_commercial")
    first, listed = attention_points([(snapshot, on_battery)], NOW, set())
    assert listed == {"a"} and fields_of(first[0])["listed"] is True
    later = NOW + timedelta(minutes=1)
    (cleared,), listed = attention_points([(snapshot, back)], later, listed)
    assert listed == set() and "listed" not in fields_of(cleared)
    assert fields_of(cleared)["state_code"] == STATE_CODES["up_commercial"]
    assert "dark_in_s" not in fields_of(cleared)  # the time-to-dark table drops the row too
    assert attention_points([(snapshot, back)], later + timedelta(minutes=1), listed) == ([], set())


# --- the worst path of each site losing packets ---------------------------------------------


def _with_links(site: str, *links: LinkReading, at: datetime = NOW) -> SiteSnapshot:
    return (
        SiteSnapshot(site=site, province="hp")
        .with_meta(meta(site))
        .with_report(report(site, at=at).model_copy(update={"links": links}))
    )


@pytest.mark.parametrize(
    ("links", "worst"),
    [
        ((link("fo-vnpt"), link("mw-viettel", "microwave")), None),  # no loss: not listed
        ((link("fo-vnpt", loss_pct=None), link("mw-viettel", "microwave")), None),  # no figure
        ((link("fo-vnpt", loss_pct=2.5), link("mw-viettel", "microwave")), "fo-vnpt"),
        (  # the most loss wins; a path down (all probes lost) is 100 %
            (
                link("fo-vnpt", loss_pct=20.0),
                link("mw-viettel", "microwave", up=False, loss_pct=100.0, rtt_ms=None),
            ),
            "mw-viettel",
        ),
        ((link("fo-vnpt", loss_pct=7.0), link("mw-viettel", "microwave", loss_pct=7.0)), "fo-vnpt"),
    ],
)
def test_worst_link_lists_each_site_losing_packets_with_its_worst_path(
    links: tuple[LinkReading, ...], worst: str | None
) -> None:
    snapshot = _with_links("a", *links)
    stamp = NOW.replace(second=0)
    points = worst_link_points(
        [(snapshot, status("a", "ready", "up_commercial"))], POLICY, NOW, stamp
    )
    if worst is None:
        assert points == []
        return
    (point,) = points
    chosen = next(k for k in links if k.path == worst)
    (readiness,) = verdict_points(
        snapshot, status("a", "ready", "up_commercial"), NOW, findings=False
    )
    assert point.measurement == "link_worst" and point.tags == readiness.tags
    assert point.time_ns == time_ns(stamp)
    expected = {"loss_pct": chosen.loss_pct, "path": worst, "media": chosen.media}
    expected |= {"up": chosen.up} if chosen.up is not None else {}
    expected |= {"rtt_ms": chosen.rtt_ms} if chosen.rtt_ms is not None else {}
    assert fields_of(point) == expected


def test_worst_link_leaves_out_a_silent_site() -> None:
    # its paths are unknown now; attention lists it as silent
    lossy = (link("fo-vnpt", loss_pct=50.0),)
    silent = _with_links("s", *lossy, at=NOW - timedelta(hours=2))
    judged = [(silent, status("s", "unknown", "unknown"))]
    assert worst_link_points(judged, POLICY, NOW, NOW) == []


@pytest.mark.parametrize(("level", "live"), [(0, True), (3, False)])
def test_fleet_and_worst_link_count_a_site_silent_by_its_own_window(level: int, live: bool) -> None:
    """150 s after its last report a 60 s site is fresh by the base window (3 intervals)
    and stale at a risk level whose step shortens it to 2: the summaries say what the
    verdict says, never its paths up while it is judged silent."""
    policy = Policy.model_validate({"risk": [{"min_level": 3, "stale_intervals": 2}]})
    lossy = (link("fo-vnpt", loss_pct=5.0), link("mw-viettel", "microwave"))
    snapshot = _with_links("a", *lossy, at=NOW - timedelta(seconds=150))
    judged = [(snapshot, status("a", "ready" if live else "unknown", "up_commercial"))]
    (fleet,) = fleet_points(judged, policy, NOW, risk_level=lambda _province: level)
    assert fields_of(fleet)["paths_fibre_up"] == (1 if live else 0)
    listed = worst_link_points(judged, policy, NOW, NOW, risk_level=lambda _province: level)
    assert len(listed) == (1 if live else 0)


# --- compliance ----------------------------------------------------------------------------


def test_compliance_points_per_area_and_station_with_failed_criteria() -> None:
    inventory = load_inventory(INVENTORY)
    snapshots = {
        "hp-bts-001": SiteSnapshot(site="hp-bts-001", province="hp")
        .with_meta(meta("hp-bts-001"))
        .with_report(report("hp-bts-001")),
        "hp-bts-002": SiteSnapshot(site="hp-bts-002", province="hp")
        .with_meta(meta("hp-bts-002"))
        .with_report(report("hp-bts-002", fuel_l=50)),
    }
    judged = build_report(snapshots, inventory, POLICY, NOW, province="hp")
    points = compliance_points(judged, NOW)
    areas = {dict(p.tags)["area"]: fields_of(p) for p in points if p.measurement == "compliance"}
    an_duong = areas["an-duong"]
    assert an_duong["declared"] == 3  # hp-bts-004 is not declared hardened
    assert (an_duong["compliant"], an_duong["non_compliant"]) == (1, 1)
    assert an_duong["never_reported"] == 1 and an_duong["failed_never_reported"] == 1
    assert an_duong["failed_generator_autonomy_short"] == 1
    assert an_duong["carrier_list"] == "mobifone, viettel, vnpt" and an_duong["carriers"] == 3
    # the carriers the verdict counts: seen up now on the area's paths; these name no
    # provider, so none is seen, whatever the inventory lists
    assert (an_duong["carrier_up_list"], an_duong["carriers_up"]) == ("", 0)
    assert an_duong["area_name"] == "Huyện An Dương"
    assert all(f"failed_{code}" in an_duong for code in COMPLIANCE_CRITERIA)
    stations = {
        dict(p.tags)["site"]: (dict(p.tags), fields_of(p))
        for p in points
        if p.measurement == "compliance_station"
    }
    tags, short = stations["hp-bts-002"]
    assert tags == {
        "site": "hp-bts-002",
        "province": "hp",
        "area": "an-duong",
        "operator": "viettel",
    }
    assert short["status"] == "non_compliant" and short["status_code"] == 2
    assert short["failed"] == "generator_autonomy_short"
    assert "72" in short["failed_vi"] and "72" in short["failed_en"]
    assert stations["hp-bts-001"][1]["status_code"] == 0
    assert "hp-bts-004" not in stations  # not declared hardened: not a compliance station
    (province,) = [fields_of(p) for p in points if p.measurement == "compliance_province"]
    for name in ("declared", "compliant", "non_compliant", "missing", "failed_silent"):
        assert province[name] == sum(area[name] for area in areas.values()), name


# --- meetings, rehearsals, the clock ----------------------------------------------------


def test_a_meeting_is_stamped_at_its_start_and_a_rehearsal_when_it_ran() -> None:
    start = NOW + timedelta(hours=2)
    point = meeting_point(
        "m-1", "Họp khẩn\nbão số 3", start, 3 * 3600, ["a", "b"], province="hp", created_by="x"
    )
    assert point.time_ns == int(start.timestamp()) * 10**9
    assert dict(point.tags) == {"province": "hp", "meeting": "m-1"}
    assert fields_of(point) == {
        "title": "Họp khẩn bão số 3",
        "duration_s": 10800.0,
        "points": 2,
        "created_by": "x",
    }
    rehearsal = Rehearsal("a", NOW, False, ("mất đường truyền",))
    known = SiteSnapshot(site="a", province="hp").with_meta(meta("a", site_kind="meeting_point"))
    failed = rehearsal_point("m-1", "hp", rehearsal, known)
    # tagged as the site's readiness, so the dashboards filter it by operator and kind
    assert dict(failed.tags) == {
        "site": "a",
        "province": "hp",
        "kind": "meeting_point",
        "operator": "vnpt",
    }
    unknown = rehearsal_point("m-1", "hp", rehearsal, None)
    assert dict(unknown.tags) == {"site": "a", "province": "hp", "kind": "unknown"}
    assert fields_of(failed) == {
        "meeting": "m-1",
        "passed": False,
        "problems": 1,
        "problems_vi": "mất đường truyền",
    }


def test_a_summary_is_due_once_per_slot_and_stamped_at_its_start() -> None:
    clock = SummaryClock(60)
    at = datetime(2024, 9, 7, 6, 0, 42, 500_000, tzinfo=UTC)
    assert clock.due(at) == datetime(2024, 9, 7, 6, 0, tzinfo=UTC)  # at once, its slot
    assert clock.due(at + timedelta(seconds=17)) is None  # 06:00:59.5: same slot
    assert clock.due(at + timedelta(seconds=18)) == datetime(2024, 9, 7, 6, 1, tzinfo=UTC)
    assert clock.due(at + timedelta(seconds=30)) is None
    # a collector down for a while writes the slot it is in, not the ones it missed
    assert clock.due(at + timedelta(minutes=10)) == datetime(2024, 9, 7, 6, 10, tzinfo=UTC)


# --- through a real collector, into a real InfluxDB ----------------------------------------


@pytest.fixture
def collector(
    tmp_path: Path, mosquitto: Broker, influxdb: InfluxServer
) -> Iterator[tuple[Collector, str]]:
    database = influxdb.fresh_database("history")
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": f"c-{database}",
                "topic_filter": "kienco/v1/hp/#",
            },
            "influx": {"url": influxdb.url, "database": database},
            "data_dir": str(tmp_path / "collector"),
            "http": {
                "port": 0,
                "admin_token": {"value": ADMIN_TOKEN},
                "anonymous_read": True,
            },
            "inventory": str(INVENTORY),
            "status": {"sweep_s": 0.1},
        }
    )
    running = Collector(config)
    # Summaries every half second, not every minute: this test watches them change.
    running.summaries.fleet = SummaryClock(0.5)
    running.summaries.compliance = SummaryClock(0.5)
    running.start()
    assert running.wait_connected(10)
    yield running, database
    running.stop()


def wait_rows(check: Callable[[], list[dict[str, Any]]], timeout_s: float = 20) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = check()
        if rows:
            return rows
        time.sleep(0.1)
    raise AssertionError("no rows in time")


def test_the_collector_writes_what_the_dashboards_read(
    collector: tuple[Collector, str], influxdb: InfluxServer
) -> None:
    running, db = collector
    now = datetime.now(UTC).replace(microsecond=0)  # the collector's clock is the real one
    for site, fuel in (("hp-bts-001", 400.0), ("hp-bts-002", 50.0)):
        described = meta(site, at=now - timedelta(minutes=5)).model_dump_json().encode()
        running.handle(f"kienco/v1/hp/{site}/meta", described, 0, 0)
        body = report(site, at=now, fuel_l=fuel).model_dump_json().encode()
        running.handle(f"kienco/v1/hp/{site}/report", body, 0, 0)
    assert running.api is not None
    api = running.api.url
    start = now + timedelta(hours=3)
    planned = httpx.post(
        f"{api}/api/v1/meetings",
        json={
            "title": "Họp ứng phó bão",
            "starts_at": start.isoformat(),
            "duration_s": 7200,
            "points": ["hp-bts-001"],
        },
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    rehearsed = Event(
        site="hp-bts-001",
        province="hp",
        seq=2,
        at=now,
        event="rehearsal",
        detail=planned["id"],
    )
    running.handle("kienco/v1/hp/hp-bts-001/event", rehearsed.model_dump_json().encode(), 0, 0)

    def rows(query: str) -> Callable[[], list[dict[str, Any]]]:
        return lambda: influxdb.query(db, query)

    readiness = wait_rows(
        rows("SELECT * FROM readiness WHERE site = 'hp-bts-001' ORDER BY time DESC LIMIT 1")
    )[0]
    assert readiness["operator"] == "vnpt" and readiness["kind"] == "station"
    assert isinstance(readiness["verdict_code"], int) and isinstance(readiness["state_code"], int)
    assert readiness["latitude"] == 20.87 and readiness["name"] == "Trạm hp-bts-001"

    fleet = wait_rows(rows("SELECT * FROM fleet WHERE operator = 'vnpt' AND sites >= 2"))
    assert all(isinstance(row["paths_fibre_up"], int) for row in fleet)
    # the inventory's never-heard sites are counted too (their operators come from it)
    assert wait_rows(rows("SELECT * FROM fleet WHERE operator = 'mobifone'"))

    # Summaries run every 0.5 s, beside the judgements: wait for one that saw them all.
    area = wait_rows(
        rows(
            "SELECT * FROM compliance WHERE area = 'an-duong' AND non_compliant >= 1 "
            "AND compliant >= 1"
        )
    )[-1]
    assert (area["declared"], area["compliant"], area["never_reported"]) == (3, 1, 1)
    assert area["failed_generator_autonomy_short"] == 1
    station = wait_rows(
        rows("SELECT * FROM compliance_station WHERE site = 'hp-bts-002' ORDER BY time DESC")
    )[0]
    assert station["status"] == "non_compliant" and station["operator"] == "viettel"

    meeting = wait_rows(rows(f"SELECT * FROM meeting WHERE meeting = '{planned['id']}'"))[0]
    assert meeting["time"] == int(start.timestamp()) * 10**9  # stamped at its start
    assert meeting["province"] == "hp" and meeting["points"] == 1
    rehearsal = wait_rows(rows("SELECT * FROM rehearsal WHERE site = 'hp-bts-001'"))[0]
    assert rehearsal["meeting"] == planned["id"] and isinstance(rehearsal["passed"], bool)


def test_a_silent_site_is_judged_again_every_offline_period_so_it_stays_in_history() -> None:
    states = SiteStates()
    verdicts = Verdicts(states, POLICY)
    states.apply_meta(meta("hp-bts-001"))
    states.apply_report(report("hp-bts-001", at=NOW))
    offline_s = POLICY.freshness.offline_after_s
    later = NOW + timedelta(seconds=offline_s + 1)
    judged = verdicts.evaluate("hp-bts-001", later)  # offline now: nothing more to wait for
    assert judged is not None and judged[0].verdict == "unknown"
    assert verdicts.due(later + timedelta(seconds=offline_s - 1)) == []
    again = later + timedelta(seconds=offline_s)
    assert verdicts.due(again) == ["hp-bts-001"]
    judged = verdicts.evaluate("hp-bts-001", again)
    assert judged is not None and judged[2][0].measurement == "readiness"  # written again
