"""Line protocol encoding: exact text for each escaping case, and what is refused.

ESCAPING_CASES is also written to a real InfluxDB and read back in
tests/test_influx_roundtrip.py, so the expected texts here are the ones 1.6 parses.
"""

from __future__ import annotations

import math
from enum import IntEnum, StrEnum

import pytest

from collector.line_protocol import (
    LineProtocolError,
    Point,
    count_lines,
    encode,
    encode_many,
)

T = 1_700_000_000_123_456_789

# (tag value, string field value, expected line)
ESCAPING_CASES: list[tuple[str, str, str]] = [
    ("hai-phong", "ok", 'm,t=hai-phong s="ok" 1700000000123456789'),
    ("Trạm Hải Phòng", "Trạm Hải Phòng", 'm,t=Trạm\\ Hải\\ Phòng s="Trạm Hải Phòng" ' + str(T)),
    ("a,b", "a,b", f'm,t=a\\,b s="a,b" {T}'),
    ("a=b", "a=b", f'm,t=a\\=b s="a=b" {T}'),
    (" lead", " lead", f'm,t=\\ lead s=" lead" {T}'),
    ('say "hi"', 'say "hi"', f'm,t=say\\ "hi" s="say \\"hi\\"" {T}'),
    ("C:\\tram", "C:\\tram", f'm,t=C:\\tram s="C:\\\\tram" {T}'),
    ("a\\,b", "a\\,b", f'm,t=a\\\\,b s="a\\\\,b" {T}'),
    ("a\\ b", "ends\\", f'm,t=a\\\\ b s="ends\\\\" {T}'),
    ("\\\\x", '\\"', f'm,t=\\\\x s="\\\\\\"" {T}'),
    ("#not-a-comment", "", f'm,t=#not-a-comment s="" {T}'),
    ("tab\there", "tab here", f'm,t=tab\there s="tab here" {T}'),
    ("điểm cầu", "Ủy ban nhân dân", f'm,t=điểm\\ cầu s="Ủy ban nhân dân" {T}'),
]


@pytest.mark.parametrize(("tag", "text", "expected"), ESCAPING_CASES)
def test_escaping(tag: str, text: str, expected: str) -> None:
    assert encode(Point("m", (("t", tag),), {"s": text}, T)) == expected


# (string field value as it came, as it is written): untrusted text is folded, never refused
# (plumbing/untrusted.py, influx_string); tests/test_influx_roundtrip.py reads these back.
FOLDING_CASES: list[tuple[str, str]] = [
    ("Modbus timeout\nretry 1/3", "Modbus timeout retry 1/3"),
    ("input fault\r\n\r\nline 2\n", "input fault line 2 "),
    ("tab\tand\vform\ffeed", "tab and form feed"),
    ("clear\x1b[2J screen", "clear[2J screen"),
    ("\x1b]0;title\x07OSC", "]0;titleOSC"),
    ("c1 \x9b31m csi", "c1 31m csi"),
    ("padded\x00\x00\x00", "padded"),
    ("bidi \u202egnp.exe\u202c ok \u2066x\u2069", "bidi gnp.exe ok x"),
    ("line\u2028sep\u2029para\x85nel", "line sep para nel"),
    ("lone \ud800 surrogate", "lone \ufffd surrogate"),
    ('both "quoted"\nand \\ slashed', 'both "quoted" and \\ slashed'),
]


@pytest.mark.parametrize(("text", "stored"), FOLDING_CASES)
def test_any_text_is_writable_as_a_string_field(text: str, stored: str) -> None:
    line = encode(Point("m", (), {"s": text}, T))
    escaped = stored.replace("\\", "\\\\").replace('"', '\\"')
    assert line == f'm s="{escaped}" {T}'
    assert count_lines(encode_many([Point("m", (), {"s": text}, T)] * 3)) == 3
    line.encode()  # always has a UTF-8 form


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        (Point("my power", (), {"f": 1.0}, 0), "my\\ power f=1.0 0"),
        (Point("a,b=c", (), {"f": 1.0}, 0), "a\\,b\\=c f=1.0 0"),
        (Point("m", (("k y", "v"),), {"f k,=": 1.0}, 0), "m,k\\ y=v f\\ k\\,\\==1.0 0"),
        # A quote is escaped in measurements and field keys, not in tags (1.6 differs).
        (Point('m"x', (('k"', 'v"'),), {'f"k': 1.0}, 0), 'm\\"x,k"=v" f\\"k=1.0 0'),
        # An even run of backslashes before a delimiter is fine in a field key.
        (Point("m", (), {"a\\\\ b": 1.0}, 0), "m a\\\\\\ b=1.0 0"),
        (Point("m", (), {"i": 42, "n": -7, "z": 0}, 5), "m i=42i,n=-7i,z=0i 5"),
        (Point("m", (), {"t": True, "f": False}, 5), "m t=true,f=false 5"),
        (Point("m", (), {"big": 2**63 - 1, "small": -(2**63)}, -5), None),
    ],
)
def test_names_and_types(point: Point, expected: str | None) -> None:
    line = encode(point)
    if expected is not None:
        assert line == expected
    else:
        assert line == f"m big={2**63 - 1}i,small={-(2**63)}i -5"


@pytest.mark.parametrize("value", [0.1, 1e300, 5e-324, -0.0, 230.0, 1 / 3, 1e16, -1.5e-07])
def test_floats_round_trip_exactly(value: float) -> None:
    text = encode(Point("m", (), {"f": value}, 1)).split(" ")[1].removeprefix("f=")
    assert float(text) == value
    assert math.copysign(1, float(text)) == math.copysign(1, value)
    assert not text.endswith("i")  # a float field must never look like an int


def test_tags_are_sorted_and_none_fields_omitted() -> None:
    point = Point.make(
        "power",
        {"site": "s1", "device": "ups1", "province": "hp", "kind": None},
        {"charge_pct": 90.0, "runtime_s": None, "on_battery": False},
        T,
    )
    assert point.tags == (("device", "ups1"), ("province", "hp"), ("site", "s1"))
    assert (
        encode(point)
        == f"power,device=ups1,province=hp,site=s1 charge_pct=90.0,on_battery=false {T}"
    )
    # Unsorted tags given directly are sorted on the way out too.
    unsorted = Point("power", (("site", "s1"), ("device", "ups1")), {"f": 1.0}, T)
    assert encode(unsorted) == f"power,device=ups1,site=s1 f=1.0 {T}"


def test_enum_subclasses_are_written_as_their_base_type() -> None:
    class Level(IntEnum):
        HIGH = 3

    class Mode(StrEnum):
        ECO = "eco"

    assert encode(Point("m", (), {"l": Level.HIGH, "m": Mode.ECO}, 1)) == 'm l=3i,m="eco" 1'


def test_point_without_fields_is_skipped() -> None:
    empty = Point("m", (("t", "x"),), {"a": None}, T)
    assert encode(empty) == ""
    full = Point("m", (), {"a": 1.0}, T)
    assert encode_many([empty, full, empty, full]) == f"m a=1.0 {T}\nm a=1.0 {T}"
    assert encode_many([]) == ""


@pytest.mark.parametrize(
    ("point", "element"),
    [
        (Point("m", (("t", ""),), {"f": 1.0}, T), "tag 't' value"),
        (Point("m", (("t", "ends\\"),), {"f": 1.0}, T), "tag 't' value"),
        (Point("m", (("t", "two\nlines"),), {"f": 1.0}, T), "tag 't' value"),
        (Point("m", (("t", "cr\r"),), {"f": 1.0}, T), "tag 't' value"),
        (Point("m", (("", "v"),), {"f": 1.0}, T), "tag key"),
        (Point("m", (("k\\", "v"),), {"f": 1.0}, T), "tag key"),
        (Point("m", (("time", "v"),), {"f": 1.0}, T), "tag key"),
        (Point("m", (("t", "a"), ("t", "b")), {"f": 1.0}, T), "tag 't'"),
        (Point("", (), {"f": 1.0}, T), "measurement"),
        (Point("#m", (), {"f": 1.0}, T), "measurement"),
        (Point("m\\", (), {"f": 1.0}, T), "measurement"),
        (Point("m\n", (), {"f": 1.0}, T), "measurement"),
        # 1.6 drops a backslash before , = space or " in a measurement (stored "a,b")
        (Point("a\\,b", (), {"f": 1.0}, T), "measurement"),
        (Point("a\\ b", (), {"f": 1.0}, T), "measurement"),
        (Point("a\\=b", (), {"f": 1.0}, T), "measurement"),
        (Point('a\\"b', (), {"f": 1.0}, T), "measurement"),
        (Point('a\\\\"b', (), {"f": 1.0}, T), "measurement"),
        (Point("m", (), {"": 1.0}, T), "field key"),
        (Point("m", (), {"time": 1.0}, T), "field key"),
        (Point("m", (), {"f\\": 1.0}, T), "field key"),
        (Point("m", (), {"a\\ b": 1.0}, T), "field key"),
        (Point("m", (), {"a\\\\\\,b": 1.0}, T), "field key"),
        (Point("m", (("t", "lone\ud800"),), {"f": 1.0}, T), "tag 't' value"),
        (Point("m", (), {"f": math.nan}, T), "field 'f'"),
        (Point("m", (), {"f": math.inf}, T), "field 'f'"),
        (Point("m", (), {"f": -math.inf}, T), "field 'f'"),
        (Point("m", (), {"f": 2**63}, T), "field 'f'"),
        (Point("m", (), {"f": b"bytes"}, T), "field 'f'"),  # type: ignore[dict-item]
        (Point("m", (), {"f": 1.0}, 2**63), "time"),
        (Point("m", (), {"f": 1.0}, 1.5), "time"),  # type: ignore[arg-type]
    ],
)
def test_refused(point: Point, element: str) -> None:
    with pytest.raises(LineProtocolError) as caught:
        encode(point)
    assert caught.value.element == element
    assert element in str(caught.value)


def test_refused_points_are_reported_and_others_kept() -> None:
    good = Point("m", (("t", "ok"),), {"f": 1.0}, T)
    bad = Point("m", (("t", "bad\\"),), {"f": 1.0}, T)
    with pytest.raises(LineProtocolError):
        encode_many([good, bad])
    refused: list[LineProtocolError] = []
    assert encode_many([good, bad, good], refused=refused) == f"m,t=ok f=1.0 {T}\nm,t=ok f=1.0 {T}"
    assert [error.element for error in refused] == ["tag 't' value"]


def test_a_refused_tag_set_stays_refused() -> None:
    # The tag-set cache must never remember a refused set as valid.
    bad = Point("m", (("t", "x\\"),), {"f": 1.0}, T)
    for _ in range(2):
        with pytest.raises(LineProtocolError):
            encode(bad)


def test_count_lines() -> None:
    assert count_lines("") == 0
    assert count_lines("m f=1 1") == 1
    assert count_lines("m f=1 1\nm f=2 2\n") == 2
    # Unicode line separators may sit inside values; only \n separates lines.
    assert count_lines('m s="a\u2028b\x0bc" 1\nm f=1 2') == 2
