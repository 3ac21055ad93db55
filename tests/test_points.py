"""Wire messages → points: tags, fixed field types, nulls left out, exact times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, ValidationError

from collector.line_protocol import LineProtocolError, Point, encode, encode_many
from collector.points import (
    FIELD_TYPES,
    event_points,
    report_lines,
    report_points,
    site_tags,
    state_points,
    time_ns,
)
from contract.wire import (
    Event,
    HostReading,
    LinkReading,
    PowerReading,
    Report,
    RoomReading,
    State,
)
from rules import SiteSnapshot
from tests.support.influx import InfluxServer
from tests.support.wire_fuzz import wire_messages
from tests.test_rules_support import PROVINCE, SITE, meta

TAKEN_AT = "2025-09-20T03:04:05.123456+07:00"  # typhoon season, Hai Phong local time
TAKEN_AT_NS = 1_758_312_245_123_456_000  # 20:04:05.123456 UTC

REPORT_JSON = """{
  "site": "hp-do-son-01", "province": "hai-phong", "seq": 41872,
  "taken_at": "2025-09-20T03:04:05.123456+07:00", "interval_s": 30,
  "power": [
    {"device": "ups1", "profile": "apc-smart-ups", "mains_present": false, "on_battery": true,
     "battery_status": "normal", "battery_charge_pct": 87, "battery_runtime_s": 5400,
     "input_v": 0, "output_v": 229.6, "load_pct": 41.5, "alarms_count": 2,
     "fuel_pct": null, "error": "input fault\\r\\nline 2"},
    {"device": "gen1", "generator_running": true, "fuel_l": 180.5, "fuel_burn_l_per_h": 4}
  ],
  "links": [
    {"path": "fibre-vnpt", "media": "fibre", "provider": "vnpt", "srlg": ["duct-a"],
     "up": true, "rtt_ms": 12, "jitter_ms": 1.5, "loss_pct": 0, "probes_sent": 10},
    {"path": "vsat-1", "media": "vsat", "up": false, "probes_sent": 10, "loss_pct": 100,
     "error": "timeout"}
  ],
  "host": {"cpu_pct": 12.5, "memory_pct": 40, "outbox_depth": 0, "temperature_c": null,
           "clock_synced": false, "clock_offset_ms": null, "clock_max_error_ms": null},
  "room": {"codec_reachable": true, "codec_registered": false, "in_call": null}
}"""


@pytest.fixture
def report() -> Report:
    return Report.model_validate_json(REPORT_JSON)


def _by(points: list[Point], measurement: str) -> list[Point]:
    return [p for p in points if p.measurement == measurement]


def test_one_point_per_reading_at_the_report_time(report: Report) -> None:
    points = report_points(report, site_kind="station")
    assert [p.measurement for p in points] == [
        "report",
        "power",
        "power",
        "link",
        "link",
        "host",
        "room",
    ]
    assert {p.time_ns for p in points} == {TAKEN_AT_NS}


def test_tags(report: Report) -> None:
    points = report_points(report, site_kind="station")
    own = (("province", "hai-phong"), ("site", "hp-do-son-01"))
    site = (("kind", "station"), *own)
    # the accounting (seq) keeps the key the message alone fixes: a replay overwrites it
    assert _by(points, "report")[0].tags == own
    assert _by(points, "host")[0].tags == site
    assert [p.tags for p in _by(points, "power")] == [
        (("device", "ups1"), *site),
        (("device", "gen1"), *site),
    ]
    fibre, vsat = _by(points, "link")
    assert dict(fibre.tags) == {
        **dict(site),
        "path": "fibre-vnpt",
        "media": "fibre",
        "provider": "vnpt",
    }
    assert "provider" not in dict(vsat.tags)  # none declared: no empty tag
    unknown_kind = report_points(report, site_kind=None)
    assert all("kind" not in dict(p.tags) for p in unknown_kind)


def test_fields_are_typed_and_nulls_left_out(report: Report) -> None:
    points = report_points(report, site_kind="station")
    assert _by(points, "report")[0].fields == {"seq": 41872, "interval_s": 30.0}
    ups, gen = _by(points, "power")
    assert ups.fields == {
        "error": "input fault\r\nline 2",  # as it came: the encoder folds it (test below)
        "mains_present": False,
        "on_battery": True,
        "battery_status": "normal",
        "battery_charge_pct": 87.0,
        "battery_runtime_s": 5400.0,
        "input_v": 0.0,  # 0 V is a reading, not a null
        "output_v": 229.6,
        "load_pct": 41.5,
        "alarms_count": 2,
    }
    assert gen.fields == {"generator_running": True, "fuel_l": 180.5, "fuel_burn_l_per_h": 4.0}
    fibre, vsat = _by(points, "link")
    assert fibre.fields == {
        "up": True,
        "rtt_ms": 12.0,
        "jitter_ms": 1.5,
        "loss_pct": 0.0,
        "probes_sent": 10,
    }
    assert vsat.fields == {"error": "timeout", "up": False, "loss_pct": 100.0, "probes_sent": 10}
    assert _by(points, "host")[0].fields == {
        "cpu_pct": 12.5,
        "memory_pct": 40.0,
        "outbox_depth": 0,
        "clock_synced": False,  # an unsynchronised clock is a reading, not a null
    }
    assert _by(points, "room")[0].fields == {"codec_reachable": True, "codec_registered": False}


def test_every_value_has_its_fixed_type(report: Report) -> None:
    for point in report_points(report, site_kind="station"):
        types = FIELD_TYPES[point.measurement]
        for name, value in point.fields.items():
            assert type(value) is types[name], (point.measurement, name, value)


def test_field_types_cover_the_wire_models() -> None:
    """A new wire field becomes a point field of a fixed type without code changes."""
    cases: list[tuple[type[BaseModel], str, set[str]]] = [
        (PowerReading, "power", {"device", "profile"}),
        (LinkReading, "link", {"path", "media", "provider", "srlg"}),
        (HostReading, "host", set()),
        (RoomReading, "room", set()),
    ]
    for model, measurement, not_fields in cases:
        assert set(FIELD_TYPES[measurement]) == set(model.model_fields) - not_fields
    assert FIELD_TYPES["power"]["alarms_count"] is int
    assert FIELD_TYPES["power"]["battery_charge_pct"] is float
    assert FIELD_TYPES["power"]["on_battery"] is bool
    assert FIELD_TYPES["power"]["battery_status"] is str
    assert FIELD_TYPES["host"]["clock_synced"] is bool
    assert FIELD_TYPES["host"]["clock_max_error_ms"] is float


def test_empty_readings_give_no_line(report: Report) -> None:
    bare = report.model_copy(update={"host": HostReading(), "room": RoomReading()})
    lines = encode_many(report_points(bare, site_kind=None)).split("\n")
    assert not any(line.startswith(("host", "room")) for line in lines)


def test_time_is_exact_to_the_microsecond() -> None:
    at = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)  # near the int64 end
    assert time_ns(at) == 9_223_372_036_854_775_000
    assert time_ns(datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1_000


def test_event_points() -> None:
    event = Event(
        site="hp-do-son-01",
        province="hai-phong",
        seq=41873,
        at=datetime(2025, 9, 19, 20, 5, tzinfo=UTC),
        event="on_battery",
        device="ups1",
        detail="trap upsOnBattery\nfrom 10.0.0.5",
        power=PowerReading(device="ups1", on_battery=True, battery_charge_pct=86.0),
    )
    marker, power = event_points(event, site_kind="station", operator="vnpt")
    assert marker.measurement == "event"
    assert dict(marker.tags) == {  # its own key, as the report's: a replay overwrites it
        "site": "hp-do-son-01",
        "province": "hai-phong",
        "event": "on_battery",
        "device": "ups1",
    }
    assert dict(power.tags) == {
        "site": "hp-do-son-01",
        "province": "hai-phong",
        "kind": "station",
        "operator": "vnpt",
        "device": "ups1",
    }
    assert marker.fields == {"seq": 41873, "detail": "trap upsOnBattery\nfrom 10.0.0.5"}
    # Points carry the text as it came; the encoder folds it, so it is always writable.
    assert 'detail="trap upsOnBattery from 10.0.0.5"' in encode(marker)
    assert power.measurement == "power"
    assert power.fields == {"on_battery": True, "battery_charge_pct": 86.0}
    assert marker.time_ns == power.time_ns == time_ns(event.at)
    (bare,) = event_points(event.model_copy(update={"power": None, "device": None}))
    assert dict(bare.tags).keys() == {"site", "province", "event"}


def test_state_points() -> None:
    at = datetime(2025, 9, 19, 20, 6, tzinfo=UTC)
    cases: list[tuple[Literal["online", "offline"], bool]] = [
        ("online", True),
        ("offline", False),
    ]
    for state, online in cases:
        message = State(site="s1", province="p1", state=state, at=at)
        (point,) = state_points(message, site_kind="meeting_point")
        assert point.measurement == "agent_state"
        assert point.fields == {"online": online}
        assert point.time_ns == time_ns(at)


@pytest.mark.influx
def test_ints_sent_for_floats_do_not_conflict(
    influxdb: InfluxServer, influx_db: str, report: Report
) -> None:
    """A reading sent once as 230 and once as 229.6 stays one float field (no 400)."""
    as_float = report.model_copy(update={"seq": 1})
    as_int = Report.model_validate_json(
        REPORT_JSON.replace('"output_v": 229.6', '"output_v": 230').replace(
            TAKEN_AT, "2025-09-20T03:04:35+07:00"
        )
    )
    for message in (as_float, as_int):
        response = influxdb.write(influx_db, encode_many(report_points(message, site_kind=None)))
        assert response.status_code == 204, response.text
    kinds = {
        (row["fieldKey"], row["fieldType"])
        for row in influxdb.query(influx_db, "SHOW FIELD KEYS FROM power")
    }
    assert ("output_v", "float") in kinds
    assert ("alarms_count", "integer") in kinds
    assert ("battery_status", "string") in kinds
    host_kinds = {
        (row["fieldKey"], row["fieldType"])
        for row in influxdb.query(influx_db, "SHOW FIELD KEYS FROM host")
    }
    assert ("clock_synced", "boolean") in host_kinds
    reports = influxdb.query(influx_db, "SELECT count(seq) FROM report")
    assert reports[0]["count"] == 2


@pytest.mark.parametrize(
    ("site_kind", "operator"),
    [(None, None), ("station", "vnpt"), ("meeting_point", None), ("unknown", "viettel")],
)
def test_report_lines_are_the_points_encoded(
    report: Report, site_kind: str | None, operator: str | None
) -> None:
    assert report_lines(report, site_kind=site_kind, operator=operator) == encode_many(
        report_points(report, site_kind=site_kind, operator=operator)
    )


def test_site_tags_are_the_readiness_tags_on_every_point(report: Report) -> None:
    # what is fixed with the site: kind "unknown" and no operator until its meta
    assert site_tags(None) == ("unknown", None)
    bare = SiteSnapshot(site=SITE, province=PROVINCE)
    assert site_tags(bare) == ("unknown", None)
    known = bare.with_meta(meta().model_copy(update={"operator": "viettel"}))
    kind, operator = site_tags(known)
    assert (kind, operator) == ("station", "viettel")
    readings = [p for p in report_points(report, site_kind=kind, operator=operator)
                if p.measurement != "report"]  # fmt: skip
    assert {p.measurement for p in readings} == {"power", "link", "host", "room"}
    assert all(dict(p.tags)["operator"] == "viettel" for p in readings)
    assert all(dict(p.tags)["kind"] == "station" for p in readings)
    (state,) = state_points(
        State(site=SITE, province=PROVINCE, state="online", at=datetime(2025, 9, 19, tzinfo=UTC)),
        site_kind=kind,
        operator=operator,
    )
    assert dict(state.tags)["operator"] == "viettel"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_messages(datetime(2026, 9, 7, 3, 0, tzinfo=UTC)))  # any instant: only encoded
def test_report_lines_equal_the_points_encoded_for_any_report(message: tuple[str, bytes]) -> None:
    # The ingest path's encoder writes exactly what the points would, or raises as they do.
    topic, payload = message
    if not topic.endswith("/report"):
        return
    try:
        report = Report.model_validate_json(payload)
    except ValidationError:
        return
    try:
        expected = encode_many(report_points(report, site_kind="station"))
    except LineProtocolError as error:
        with pytest.raises(LineProtocolError, match=re.escape(str(error))):
            report_lines(report, site_kind="station")
        return
    assert report_lines(report, site_kind="station") == expected


def test_a_replay_after_a_meta_change_overwrites_the_accounting_in_place(report: Report) -> None:
    # report and event points (seq) are keyed by the message alone: the same message
    # written before and after its site's meta changed is the same point, not a second
    before = report_lines(report, site_kind=None).split("\n")
    after = report_lines(report, site_kind="power_room", operator="viettel").split("\n")
    assert before[0] == after[0] and before[0].startswith("report,province=hai-phong,site=")
    assert before[1:] != after[1:]  # the readings carry the new tags
