"""Every way a message can be wrong is rejected with its reason; good ones pass."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from collector.decode import Decoded, Ignored, Rejected, decode
from contract.wire import Report
from tests.support.wire_fuzz import model_dicts

NOW = datetime(2024, 9, 7, 9, 0, tzinfo=UTC)
TOPIC = "kienco/v1/hp/hp-bts-001/report"


def _report(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": "report",
        "v": 1,
        "site": "hp-bts-001",
        "province": "hp",
        "seq": 7,
        "taken_at": "2024-09-07T08:59:30Z",
        "interval_s": 30.0,
        "power": [{"device": "ups1", "battery_charge_pct": 81.0, "on_battery": True}],
        "links": [{"path": "fibre-a", "media": "fibre", "up": True, "rtt_ms": 12.5}],
    }
    body.update(overrides)
    return body


def _decode(topic: str, payload: bytes | dict[str, object]) -> Decoded | Rejected | Ignored:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode(topic, raw, now=NOW, max_bytes=4096, future_tolerance_s=300)


def test_a_good_report_is_accepted_in_utc() -> None:
    result = _decode(TOPIC, _report(taken_at="2024-09-07T15:59:30+07:00"))
    assert isinstance(result, Decoded)
    assert result.message.taken_at == datetime(2024, 9, 7, 8, 59, 30, tzinfo=UTC)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "says"),
    [
        (TOPIC, b"{not json", "invalid_json", "JSON"),
        (TOPIC, b"x" * 5000, "oversized", "5000 bytes"),
        ("kienco/v1/hp/Bad Site/report", _report(), "bad_topic", "slug"),
        ("other/hp/hp-bts-001/report", _report(), "bad_topic", "kienco/v1"),
        (TOPIC, _report(extra_field=1), "schema", "extra_field"),
        (TOPIC, _report(seq="7"), "schema", "seq"),
        (TOPIC, _report(taken_at="2024-09-07T08:59:30"), "schema", "timezone"),
        (
            TOPIC,
            _report(power=[{"device": "ups1", "battery_charge_pct": 180.0}]),
            "schema",
            "battery_charge_pct",
        ),
        (
            TOPIC,
            b'{"kind":"report","v":1,"site":"hp-bts-001","province":"hp","seq":1,'
            b'"taken_at":"2024-09-07T08:59:30Z","interval_s":NaN}',
            "schema",
            "finite",
        ),
        (TOPIC, _report(v=2), "schema", "v"),
        (TOPIC, _report(site="qn-bts-002"), "site_mismatch", "qn-bts-002"),
        (TOPIC, _report(province="qn"), "site_mismatch", "qn"),
        (TOPIC, _report(taken_at="2024-09-07T09:30:00Z"), "future_timestamp", "clock"),
        ("kienco/v1/hp/hp-bts-001/event", _report(), "schema", ""),
        # found by tests/test_fuzz_collector.py: once an OverflowError out of decode
        (TOPIC, _report(taken_at="0001-01-01T00:00:00+07:00"), "schema", "no UTC form"),
        # once accepted, then unwritable: InfluxDB's nanoseconds start in 1677
        (TOPIC, _report(taken_at="1600-01-01T00:00:00Z"), "schema", "outside the times"),
    ],
    ids=[
        "not-json",
        "oversized",
        "topic-not-slug",
        "topic-foreign",
        "unknown-field",
        "wrong-type",
        "naive-time",
        "absurd-value",
        "nan",
        "future-version",
        "site-mismatch",
        "province-mismatch",
        "from-the-future",
        "report-on-event-topic",
        "time-without-utc-form",
        "time-influxdb-cannot-store",
    ],
)
def test_rejections(topic: str, payload: bytes | dict[str, object], reason: str, says: str) -> None:
    result = _decode(topic, payload)
    assert isinstance(result, Rejected), result
    assert result.reason == reason
    assert says in result.detail


_UPS = {"device": "ups1", "battery_charge_pct": 81.0}
_FIBRE = {"path": "fibre-a", "media": "fibre", "up": True}
_PORT = {"device": "r1", "port": "ge0", "oper_up": True}


@pytest.mark.parametrize(
    ("field", "items", "says"),
    [
        ("power", [_UPS, {**_UPS, "battery_charge_pct": 5.0}], "device 'ups1' given twice"),
        ("links", [_FIBRE, {**_FIBRE, "up": False}], "path 'fibre-a' given twice"),
        ("interfaces", [_PORT, {**_PORT, "oper_up": False}], "port ('r1', 'ge0') given twice"),
    ],
)
def test_a_thing_read_twice_in_one_report_is_refused(
    field: str, items: list[dict[str, object]], says: str
) -> None:
    """Two readings of one path at one time (up, and down): the collector kept one, another
    consumer of the broker could keep the other. Refused, with what and why."""
    result = _decode(TOPIC, _report(**{field: items}))
    assert isinstance(result, Rejected) and result.reason == "schema"
    assert says in result.detail and field in result.detail


@pytest.mark.parametrize(
    ("field", "items"),
    [
        ("power", [_UPS, {**_UPS, "device": "ups2"}]),
        ("links", [_FIBRE, {**_FIBRE, "path": "fibre-b"}]),
        ("interfaces", [_PORT, {**_PORT, "port": "ge1"}, {**_PORT, "device": "r2"}]),
    ],
)
def test_things_read_once_each_are_accepted(field: str, items: list[dict[str, object]]) -> None:
    assert isinstance(_decode(TOPIC, _report(**{field: items})), Decoded)


def test_a_meta_declaring_a_path_or_device_twice_is_refused() -> None:
    meta = {
        "kind": "meta", "v": 1, "site": "hp-bts-001", "province": "hp", "site_kind": "station",
        "name": "Trạm", "interval_s": 30, "agent_version": "1", "at": "2024-09-07T08:59:30Z",
    }  # fmt: skip
    topic = "kienco/v1/hp/hp-bts-001/meta"
    path = {"path": "fibre-a", "media": "fibre"}
    device = {"device": "ups1", "role": "ups"}
    assert isinstance(_decode(topic, {**meta, "paths": [path], "devices": [device]}), Decoded)
    for field, twice in (("paths", [path, path]), ("devices", [device, device])):
        result = _decode(topic, {**meta, field: twice})
        assert isinstance(result, Rejected) and "given twice" in result.detail, result


def test_a_report_refused_as_from_the_future_keeps_what_it_says_and_how_far_ahead() -> None:
    """So the collector can say the site talks and its clock is ahead (not silent)."""
    result = _decode(TOPIC, _report(taken_at="2024-09-07T16:00:00Z"))
    assert isinstance(result, Rejected) and result.reason == "future_timestamp"
    assert result.ahead is not None and result.ahead.message.site == "hp-bts-001"
    assert result.ahead_s == 7 * 3600


def test_our_own_status_messages_are_ignored() -> None:
    assert isinstance(_decode("kienco/v1/hp/hp-bts-001/status", b"{}"), Ignored)


def test_small_clock_skew_is_tolerated() -> None:
    ahead = (NOW + timedelta(seconds=60)).isoformat()
    assert isinstance(_decode(TOPIC, _report(taken_at=ahead)), Decoded)


# A key given twice (issue 8, item 8): pydantic keeps the last, another reader the first.
_GOOD = json.dumps(_report(), separators=(",", ":"))


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (_GOOD.replace('"site":', '"site":"hp-bts-999","site":', 1), "site"),
        (_GOOD.replace('"seq":7', '"seq":6,"seq":7', 1), "seq"),
        # nested: one UPS said to be on battery and not
        (_GOOD.replace('"on_battery":true', '"on_battery":false,"on_battery":true'), "on_battery"),
        # blanks between a key and its colon, as a pretty printer writes them
        (_GOOD.replace('"seq":7', '"seq" : 6 ,\n "seq"\t:7', 1), "seq"),
        # a text holding '":' must not hide a duplicate from the cheap count
        (
            _GOOD.replace('"path":', '"error":"he said \\"no\\": 1","path":"x","path":', 1),
            "path",
        ),
    ],
    ids=["site", "seq", "nested", "pretty-printed", "quote-colon-in-text"],
)
def test_a_key_given_twice_is_invalid_json(payload: str, key: str) -> None:
    result = _decode(TOPIC, payload.encode())
    assert isinstance(result, Rejected), result
    assert result.reason == "invalid_json"
    assert f"key {key!r} given twice" in result.detail


@pytest.mark.parametrize(
    "payload",
    [
        _GOOD,
        json.dumps(_report(), indent=2),  # pretty-printed: the exact look, no duplicate
        _GOOD.replace('"path":', '"error":"he said \\"no\\": \\"x\\":1","path":', 1),
        # the same key in two objects is no duplicate
        json.dumps(_report(power=[{"device": "ups1"}, {"device": "ups2"}])),
    ],
    ids=["compact", "pretty", "quote-colon-in-text", "same-key-two-objects"],
)
def test_keys_given_once_are_accepted(payload: str) -> None:
    assert isinstance(_decode(TOPIC, payload.encode()), Decoded)


def _dumps(value: object, twice: object, colons: Iterator[str]) -> str:
    """JSON of ``value``; the object ``twice`` (by identity) gives its first key twice.

    Each key takes the next of ``colons`` (compact, or with blanks around the colon).
    """
    if isinstance(value, dict):
        pairs = [(json.dumps(k), _dumps(v, twice, colons)) for k, v in value.items()]
        if value is twice and pairs:
            pairs.append(pairs[0])
        return "{" + ",".join(f"{k}{next(colons)}{v}" for k, v in pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v, twice, colons) for v in value) + "]"
    return json.dumps(value)


def _objects(value: object) -> list[dict[str, object]]:
    if isinstance(value, dict):
        return [value, *(o for v in value.values() for o in _objects(v))]
    if isinstance(value, list):
        return [o for v in value for o in _objects(v)]
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(model_dicts(Report, NOW, hostile=False), st.data())
def test_the_cheap_count_never_misses_a_key_given_twice(
    body: dict[str, object], data: st.DataObject
) -> None:
    body.update(site="hp-bts-001", province="hp")
    compact = json.dumps(body).encode()
    assume(
        isinstance(
            decode(TOPIC, compact, now=NOW, max_bytes=1 << 20, future_tolerance_s=300), Decoded
        )
    )
    objects = _objects(body)
    twice = data.draw(st.sampled_from([None, *objects]))
    colons = data.draw(st.lists(st.sampled_from([":", " : ", ":\n\t"]), min_size=1, max_size=9))
    raw = _dumps(body, twice, itertools.cycle(colons)).encode()
    result = decode(TOPIC, raw, now=NOW, max_bytes=1 << 20, future_tolerance_s=300)
    if twice is None or not twice:
        assert isinstance(result, Decoded), result
    else:
        assert isinstance(result, Rejected) and result.reason == "invalid_json", result
        assert f"key {next(iter(twice))!r} given twice" in result.detail
