"""What the encoder writes, the real InfluxDB reads back unchanged.

A property test writes arbitrary writable measurements, tag keys/values, field
keys and any string values (commas, equals signs, spaces, quotes, backslashes,
Vietnamese text, line breaks, control characters, bidi controls, lone
surrogates) and compares what ``/query`` returns: names and tags unchanged,
string values as ``plumbing.untrusted.influx_string`` folds them. Each example
is one batch in its own measurement: a run is ~60 writes and ~120 queries.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.line_protocol import Point, encode_many
from plumbing.untrusted import influx_string
from tests.support.influx import InfluxServer
from tests.test_line_protocol import ESCAPING_CASES, FOLDING_CASES

pytestmark = pytest.mark.influx

T = 1_700_000_000_000_000_000

_SPECIALS = [",", "=", " ", "\\", '"', "'", "#", "\t", "\x00", "ạ", "Đ", "ở"]
_chars = st.one_of(
    st.sampled_from(_SPECIALS),
    # Only text that has a UTF-8 form; CR/LF cannot be written (see line_protocol).
    st.characters(codec="utf-8", exclude_characters="\n\r"),
)
writable_names = st.text(_chars, min_size=1, max_size=12).filter(lambda s: not s.endswith("\\"))
# In field keys an odd run of backslashes before , = or space cannot be written.
_unwritable_field_key = re.compile(r"(?<!\\)(?:\\\\)*\\[,= ]").search
field_keys = writable_names.filter(lambda s: not _unwritable_field_key(s))
# In a measurement a backslash before , = space or " is dropped by 1.6: refused.
_unwritable_measurement = re.compile(r'\\[,= "]').search
measurement_names = writable_names.filter(lambda s: not _unwritable_measurement(s))
# A string value may hold anything at all: the encoder folds what cannot be stored.
_UNTRUSTED = ["\n", "\r", "\x1b", "\x07", "\x9b", "\x85", "\u202e", "\u2028", "\ud800", "[", "]"]
string_values = st.text(
    st.one_of(st.sampled_from(_SPECIALS + _UNTRUSTED), st.characters(exclude_categories=())),
    max_size=24,
)
examples = st.lists(
    st.tuples(writable_names, writable_names, field_keys, string_values),
    min_size=1,
    max_size=8,
)


@pytest.fixture(scope="module")
def roundtrip_db(influxdb: InfluxServer) -> Iterator[str]:
    name = influxdb.fresh_database("roundtrip")
    yield name
    influxdb.drop_database(name)


def _read_back(influxdb: InfluxServer, db: str, source: str) -> dict[str, dict[str, object]]:
    rows = influxdb.query(db, f"SELECT * FROM {source}")
    return {str(row["i"]): row for row in rows}


_measurements = itertools.count()


@settings(max_examples=60, deadline=None, database=None)
@given(examples, measurement_names)
def test_names_tags_and_strings_round_trip(
    influxdb: InfluxServer,
    roundtrip_db: str,
    example: list[tuple[str, str, str, str]],
    name: str,
) -> None:
    # "rt<n>x" keeps each example's measurement apart and findable by a regex
    # (InfluxQL itself cannot quote every name, e.g. one holding NUL).
    prefix = f"rt{next(_measurements)}x"
    measurement = prefix + name
    # Key prefixes keep the arbitrary keys apart from each other and from "i" and "time".
    points = [
        Point.make(measurement, {"i": str(i), f"k{tag_key}": tag_value}, {f"f{key}": text}, T + i)
        for i, (tag_key, tag_value, key, text) in enumerate(example)
    ]
    response = influxdb.write(roundtrip_db, encode_many(points))
    assert response.status_code == 204, response.text

    names = influxdb.query(roundtrip_db, f"SHOW MEASUREMENTS WITH MEASUREMENT =~ /^{prefix}/")
    assert [row["name"] for row in names] == [measurement]
    rows = _read_back(influxdb, roundtrip_db, f"/^{prefix}/")
    assert len(rows) == len(points)
    for i, (tag_key, tag_value, key, text) in enumerate(example):
        row = rows[str(i)]
        assert row["time"] == T + i
        assert row[f"k{tag_key}"] == tag_value
        assert row[f"f{key}"] == influx_string(text)


def test_escaping_table_round_trips(influxdb: InfluxServer, influx_db: str) -> None:
    points = [
        Point("m", (("i", str(i)), ("t", tag)), {"s": text}, T + i)
        for i, (tag, text, _) in enumerate(ESCAPING_CASES)
    ]
    response = influxdb.write(influx_db, encode_many(points))
    assert response.status_code == 204, response.text
    rows = _read_back(influxdb, influx_db, "m")
    for i, (tag, text, _) in enumerate(ESCAPING_CASES):
        assert (rows[str(i)]["t"], rows[str(i)]["s"]) == (tag, text)


def test_folded_text_reads_back_as_folded(influxdb: InfluxServer, influx_db: str) -> None:
    points = [
        Point("folded", (("i", str(i)),), {"s": text}, T + i)
        for i, (text, _) in enumerate(FOLDING_CASES)
    ]
    response = influxdb.write(influx_db, encode_many(points))
    assert response.status_code == 204, response.text
    rows = _read_back(influxdb, influx_db, "folded")
    assert [rows[str(i)]["s"] for i in range(len(FOLDING_CASES))] == [
        stored for _, stored in FOLDING_CASES
    ]


def test_types_and_names_round_trip(influxdb: InfluxServer, influx_db: str) -> None:
    fields = {"x": 0.1, "big": 2**63 - 1, "neg": -(2**63), "ok": True, "no": False, "e": 5e-324}
    lines = encode_many([Point("my power,a=b", (("t", "v"),), fields, T)])
    assert influxdb.write(influx_db, lines).status_code == 204
    (row,) = influxdb.query(influx_db, 'SELECT * FROM "my power,a=b"')
    assert {key: row[key] for key in fields} == fields
    kinds = {
        row["fieldKey"]: row["fieldType"]
        for row in influxdb.query(influx_db, 'SHOW FIELD KEYS FROM "my power,a=b"')
    }
    assert kinds == {
        "x": "float",
        "e": "float",
        "big": "integer",
        "neg": "integer",
        "ok": "boolean",
        "no": "boolean",
    }


@pytest.mark.parametrize(
    "line",
    [
        "m,t=ends\\ f=1 1",  # a tag value ending in a backslash
        "m,t= f=1 1",  # an empty tag value
        "m f=1 1\r\n",  # CRLF
        "m time=1 1",  # the reserved key
    ],
)
def test_what_the_encoder_refuses_influxdb_refuses(
    influxdb: InfluxServer, influx_db: str, line: str
) -> None:
    """The refusals in line_protocol are InfluxDB's own, not guesses."""
    response = influxdb.write(influx_db, line)
    assert response.status_code == 400, response.text
    assert influxdb.query(influx_db, "SELECT * FROM m") == []
