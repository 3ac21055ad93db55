"""InfluxDB line protocol: a ``Point`` value and its exact text encoding.

Escaping, as InfluxDB 1.6 parses it (each rule checked against the real
``influxd``, see tests/test_line_protocol.py and tests/test_influx_roundtrip.py):

- tag keys and tag values: ``,`` ``=`` and space get a backslash; any other
  backslash (``\\"`` included) is kept as a literal character.
- measurement and field keys: the same, plus ``"``. (1.6 unescapes these with
  another routine, which also turns ``\\=`` and ``\\"`` into ``=`` and ``"``: a
  name holding either only round-trips if ``=`` and ``"`` are escaped too.)
- string field values: in double quotes, ``\\`` and ``"`` escaped; ``\\n`` is not
  an escape sequence (it is stored as a backslash and an ``n``). Any text is
  writable: it goes through ``plumbing.untrusted.influx_string`` first, which folds
  line breaks into a space and removes the other control characters (they would
  reach whoever queries the field, and a newline cannot be carried, see below).
- integers end in ``i``; booleans are ``true``/``false``; floats use ``repr``,
  which round-trips exactly.

Refused with ``LineProtocolError`` (they cannot be written, or not faithfully):
an empty name or tag value; a name or tag value ending in a backslash (the
backslash would escape the delimiter after it); a field key with an odd run of
backslashes before ``,`` ``=`` or space; newline or CR in any name or tag, or a
lone surrogate (no UTF-8 form); a measurement starting with ``#`` (the line
becomes a comment), or holding a backslash right before ``,`` ``=`` space or ``"``
(1.6 stores ``a\\,b`` as ``a,b`` however it is escaped: tried on the real influxd,
tests/test_influx_roundtrip.py found it); the key ``time``; NaN and infinities;
integers outside int64.
Names and tags are identities (folding one would merge two series): they are
refused, never changed. String values are text: they are folded, never refused,
so free text from a device or an agent can never make a point unwritable.

A newline *inside a quoted string field* is accepted by 1.6 (tried: it is
stored intact, even mid-batch), but InfluxData documents it as unsupported in
every version, 2.x and 3.x included, and it would make a batch impossible to
split or count by lines: hence the fold.

Speed: tag sets, tag pairs, field keys and measurements are escaped once and
cached (series repeat every report); slugs take a regex fast path; floats,
bools and ints are formatted inline; a string is folded only when
``str.isprintable`` (C) says it holds a control character, and translated only
when it holds a quote or a backslash (``str.translate`` with a dict is slow).
Measured with ``benchmarks/codec.py`` (timeit, best of 12) on the shared 2-core
box, quiet at the time (the figures move with the others' load): ``power``
points with 4 tags and 12 fields, 310 000 lines/s with the caches warm, 245 000
with every cache cold; a realistic report mix (``report_points``: report,
2 power, 3 link, host) 555 000–565 000; ``finding`` points (two reason texts)
600 000, or 195 000 when each text holds a line break and an ESC to fold. Before
the folding moved here (same run, same box): 285 000, 228 000, 545 000, 160 000
(the dict ``translate`` on every string), and such findings were refused.
The caches are plain dicts: a race between threads only recomputes an entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from plumbing.untrusted import influx_string

__all__ = [
    "FieldShape",
    "FieldValue",
    "LineProtocolError",
    "Point",
    "count_lines",
    "encode",
    "encode_fields",
    "encode_line",
    "encode_many",
    "field_shape",
    "series",
    "time_text",
]

FieldValue = bool | int | float | str
"""A field value as InfluxDB stores it: boolean, 64-bit integer, float or string."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# InfluxDB 1.x reserves the two extreme int64 values as sentinels for time.
_TIME_MIN, _TIME_MAX = _INT64_MIN + 2, _INT64_MAX - 1
# Caches of escaped text, cleared when full: a few tens of MB at most.
_CACHE_MAX = 100_000  # tag sets, field keys, measurements
_PAIRS_MAX = 200_000  # tag key=value pairs: every site id of a national fleet fits

_is_plain = re.compile(r"[A-Za-z0-9_.\-]+").fullmatch
_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
# Measurements and field keys are unescaped by another routine in 1.6, which also
# turns \" into ": a name holding \" only round-trips if " is escaped too.
_NAME_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", '"': '\\"'})
# 1.6 scans the field section pairing each backslash with the next character, so
# in a field key an odd run of backslashes before , = or space swallows the
# escape we add and the delimiter ends the key: such keys cannot be written.
_odd_backslashes_before_delimiter = re.compile(r"(?<!\\)(?:\\\\)*\\[,= ]").search
# In a measurement 1.6 drops the backslashes before , = space and " (any run of them).
_backslash_before_escaped = re.compile(r'\\[,= "]').search
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


class LineProtocolError(ValueError):
    """A point that cannot be written; ``element`` names the offending part."""

    def __init__(self, element: str, reason: str) -> None:
        super().__init__(f"{element}: {reason}")
        self.element = element
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Point:
    """One line: measurement, sorted tags, fields (``None`` = omitted) and time in ns."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: Mapping[str, FieldValue | None]
    time_ns: int

    @classmethod
    def make(
        cls,
        measurement: str,
        tags: Mapping[str, str | None],
        fields: Mapping[str, FieldValue | None],
        time_ns: int,
    ) -> Point:
        """Build a point from a tag mapping: ``None`` tags are left out, keys sorted."""
        return cls(
            measurement,
            tuple(sorted((k, v) for k, v in tags.items() if v is not None)),
            fields,
            time_ns,
        )


def _check_name(name: str, element: str, table: dict[int, str] = _NAME_ESCAPES) -> str:
    if _is_plain(name):
        return name  # ids are slugs: nothing to escape, nothing to refuse
    if not name:
        raise LineProtocolError(element, "empty")
    if "\n" in name or "\r" in name:
        raise LineProtocolError(element, f"newline or CR in {name!r}")
    try:
        name.encode()
    except UnicodeEncodeError:
        raise LineProtocolError(element, f"no UTF-8 form (a lone surrogate): {name!r}") from None
    if name[-1] == "\\":
        raise LineProtocolError(element, f"ends in a backslash: {name!r}")
    return name.translate(table)


def _escape_key(key: str, element: str, table: dict[int, str] = _NAME_ESCAPES) -> str:
    if key == "time":
        raise LineProtocolError(element, "'time' is reserved")
    return _check_name(key, element, table)


_measurements: dict[str, str] = {}
_field_keys: dict[str, str] = {}  # key -> escaped key followed by "="
_tag_sets: dict[tuple[tuple[str, str], ...], str] = {}
_tag_pairs: dict[tuple[str, str], str] = {}


def _measurement(name: str) -> str:
    escaped = _measurements.get(name)
    if escaped is None:
        if name.startswith("#"):
            raise LineProtocolError("measurement", f"{name!r} starts with '#' (a comment)")
        if _backslash_before_escaped(name):
            raise LineProtocolError(
                "measurement", f"a backslash before , = space or a quote: {name!r}"
            )
        escaped = _check_name(name, "measurement")
        if len(_measurements) < _CACHE_MAX:
            _measurements[name] = escaped
    return escaped


def _tag_pair(pair: tuple[str, str]) -> str:
    escaped = _tag_pairs.get(pair)
    if escaped is None:
        key, value = pair
        escaped = (
            f",{_escape_key(key, 'tag key', _TAG_ESCAPES)}"
            f"={_check_name(value, f'tag {key!r} value', _TAG_ESCAPES)}"
        )
        if len(_tag_pairs) >= _PAIRS_MAX:
            _tag_pairs.clear()
        _tag_pairs[pair] = escaped
    return escaped


def _tag_text(tags: tuple[tuple[str, str], ...]) -> str:
    """The escaped tag set, checked (uncached)."""
    ordered = sorted(tags)  # InfluxDB wants them sorted; nearly free when they are
    for (key, _), (next_key, _) in pairwise(ordered):
        if key == next_key:
            raise LineProtocolError(f"tag {key!r}", "given twice")
    return "".join([_tag_pairs.get(pair) or _tag_pair(pair) for pair in ordered])


def _tag_set(tags: tuple[tuple[str, str], ...]) -> str:
    escaped = _tag_sets.get(tags)
    if escaped is None:
        escaped = _tag_text(tags)
        if len(_tag_sets) >= _CACHE_MAX:
            _tag_sets.clear()  # crude but bounded; a miss costs little (pairs are cached)
        _tag_sets[tags] = escaped
    return escaped


def series(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """A line's head, the measurement and its tag set escaped (``tags`` as ``Point.make``
    leaves them), uncached: callers that write the same series every report keep it
    (collector/points.py ``report_lines``)."""
    tag_text = _tag_text(tags)
    return (_measurements.get(measurement) or _measurement(measurement)) + tag_text


def _field_key(key: str) -> str:
    """The escaped key and its ``=``."""
    escaped = _field_keys.get(key)
    if escaped is None:
        escaped = _escape_key(key, "field key") + "="
        if _odd_backslashes_before_delimiter(key):
            raise LineProtocolError("field key", f"a backslash before , = or space: {key!r}")
        if len(_field_keys) < _CACHE_MAX:
            _field_keys[key] = escaped
    return escaped


def _field_value(key: str, value: FieldValue) -> str:
    # float first: it is the commonest; bool before int, as bool is an int.
    if isinstance(value, float):
        if math.isfinite(value):
            return float.__repr__(value)  # shortest text that round-trips, even for subclasses
        raise LineProtocolError(f"field {key!r}", f"{value} is not finite")
    if isinstance(value, str):
        if not value.isprintable():  # untrusted text: folded here, so every caller may pass it
            value = influx_string(value)
        if "\\" in value or '"' in value:
            value = value.translate(_STRING_ESCAPES)
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return f"{value:d}i"
        raise LineProtocolError(f"field {key!r}", f"{value} is outside int64")
    raise LineProtocolError(f"field {key!r}", f"unsupported type {type(value).__name__}")


FieldShape = tuple[tuple[str, str, type[FieldValue] | None], ...]
"""Fields in order: (key, the escaped key and its ``=`` or ``""`` to look it up, the
field's one type or ``None``: each value written as its own type)."""


def field_shape(fields: Iterable[tuple[str, type[FieldValue]]]) -> FieldShape:
    """The shape of a measurement's fixed fields (each key checked and escaped once)."""
    return tuple((key, _field_key(key), kind) for key, kind in fields)


def encode_fields(shape: FieldShape, values: Sequence[FieldValue | None]) -> str:
    """The field section of a line, ``values`` in ``shape``'s order (``None`` = left
    out; a value not of its field's type is converted to it); ``""`` when none is left."""
    text: list[str] = []
    append = text.append
    # The loop is inlined for the common types: it is where the time goes.
    keys = _field_keys
    for (key, prefix, kind), value in zip(shape, values, strict=True):
        if value is None:
            continue
        if not prefix:
            prefix = keys.get(key) or _field_key(key)
        if kind is not None and type(value) is not kind:
            value = kind(value)
        if type(value) is float and value - value == 0.0:  # false for NaN and ±inf
            append(f"{prefix}{value!r}")
        elif type(value) is bool:
            append(f"{prefix}true" if value else f"{prefix}false")
        elif type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            append(f"{prefix}{value}i")
        else:
            append(prefix + _field_value(key, value))
    return ",".join(text)


def time_text(time_ns: int) -> str:
    """A line's timestamp, checked."""
    if type(time_ns) is not int or not _TIME_MIN <= time_ns <= _TIME_MAX:
        raise LineProtocolError("time", f"{time_ns!r} is not an int64 nanosecond time")
    return str(time_ns)


def encode(point: Point) -> str:
    """One line, without a newline; ``""`` when the point has no field to write."""
    return encode_line(point.measurement, point.tags, point.fields, point.time_ns)


def encode_line(
    measurement: str,
    tags: tuple[tuple[str, str], ...],
    fields: Mapping[str, FieldValue | None],
    time_ns: int,
) -> str:
    """What :func:`encode` writes for ``Point(measurement, tags, fields, time_ns)``, without
    making the point. ``tags`` as ``Point.make`` leaves them (sorted, no ``None``)."""
    keys = tuple(fields)
    shape = _shapes.get(keys)
    if shape is None:
        shape = _shape_of(keys)
    text = encode_fields(shape, tuple(fields.values()))
    if not text:
        return ""
    at = time_text(time_ns)
    tag_text = _tag_sets.get(tags)
    if tag_text is None:
        tag_text = _tag_set(tags)
    name = _measurements.get(measurement) or _measurement(measurement)
    return f"{name}{tag_text} {text} {at}"


# The shapes of the field sets points have had (the same few measurements over and
# over), each value written as its own type; cleared when full.
_shapes: dict[tuple[str, ...], FieldShape] = {}


def _shape_of(keys: tuple[str, ...]) -> FieldShape:
    # A key is checked when a value is given for it (encode_fields): a key of a field
    # left out (None) is never refused.
    shape = tuple((key, "", None) for key in keys)
    if len(_shapes) >= _CACHE_MAX:
        _shapes.clear()
    _shapes[keys] = shape
    return shape


def encode_many(points: Iterable[Point], *, refused: list[LineProtocolError] | None = None) -> str:
    """Lines joined by ``\\n``; points without fields are skipped.

    A point that cannot be encoded raises, unless ``refused`` is given: then its
    error is appended there and the other points are still encoded.
    """
    lines: list[str] = []
    for point in points:
        try:
            line = encode(point)
        except LineProtocolError as error:
            if refused is None:
                raise
            refused.append(error)
            continue
        if line:
            lines.append(line)
    return "\n".join(lines)


def count_lines(lines: str) -> int:
    """Points in a batch made by ``encode_many`` (no value holds a newline)."""
    return sum(1 for line in lines.split("\n") if line)
