"""Hypothesis strategies for hostile wire messages: what an agent, a device or an attacker
could put on a kienco topic.

Messages are built from the wire models themselves (contract/wire.py), field by field,
so a field added to the contract is fuzzed without a change here:

- free text (errors, names, event details, profiles, versions): any Unicode, with
  control characters, line breaks, escape sequences, bidi controls, rich markup,
  quotes and backslashes over-represented;
- numbers: mostly inside the field's declared bounds, often on them, sometimes just
  beyond, sometimes anywhere (including ``-0.0``, ``5e-324``, 2**53, 2**63);
- times: recent ones (so the rules run), and odd ones (year 1 and 9999, before 1677
  or after 2262, where InfluxDB's nanoseconds end, odd offsets, naive);
- ids: mostly from small pools (so sites accumulate state and verdicts change),
  sometimes not slugs at all;
- the payload: JSON of that, sometimes mangled (a key given twice, truncated, NaN,
  not UTF-8, deeply nested, a BOM), on the message's topic or a wrong one.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel

from contract.wire import SLUG_PATTERN, Event, Meta, Report, State

PROVINCES = ("fz", "fy")
SITES = tuple(f"fz-site-{i}" for i in range(12)) + tuple(f"fy-site-{i}" for i in range(6))
IDS = ("ups1", "gen1", "fibre-a", "mw-b", "vnpt", "duct-1", "tower-2", "r1", "ge0-1")

# Whole snippets that have broken terminals, CSV readers and line protocol before.
HOSTILE = (
    "Modbus timeout\nretry 1/3",
    "input fault\r\nline 2",
    "[/]",
    "[bold red]fake[/bold red]",
    "[link=https://evil.example]x[/link]",
    "\x1b[2J\x1b[H",
    "\x1b]0;title\x07",
    "\x1b]8;;https://evil.example\x1b\\",
    "\x9b31m",
    "\u202egnp.exe",
    "\u2067\u2069\u200f\u061c",
    "\u2028\u2029\x85",
    '=HYPERLINK("http://evil.example")',
    "+1+cmd|' /C calc'!A0",
    '"quoted"',
    "back\\slash\\",
    '\\"',
    "tab\there",
    "\x00\x00",
    "Trạm BTS Đồ Sơn — điểm cầu",
    "<b>&nbsp;</b>",
    '{"site":"x"}',
    "a,b=c d",
    "# not a comment",
)
_CHARS = st.one_of(
    st.characters(exclude_categories=["Cs"]),  # any code point with a UTF-8 form
    st.sampled_from("\n\r\t\x0b\x0c\x1b\x07\x00\x7f\x85\x9b\u2028\u2029\u202e\u2066[]\\\"'=+-@"),
)
texts = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(_CHARS, max_size=40),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(_CHARS, max_size=20)), max_size=6).map(
        "".join
    ),
    st.text(_CHARS, min_size=190, max_size=520),  # around the length limits (200, 500)
)
_ODD_INTS = (0, 1, -1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1)
_ODD_FLOATS = (0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7976931348623157e308, -1e300, 0.1, 65535.0)


def _times(now: datetime, hostile: bool) -> st.SearchStrategy[str]:
    """ISO times as agents (and others) write them; valid ones lie in the recent past."""
    recent = st.builds(
        lambda s, us: now - timedelta(seconds=s, microseconds=us),
        st.integers(0, 4000),
        st.integers(0, 999_999),
    )
    zones = st.sampled_from(
        [
            UTC,
            timezone(timedelta(hours=7)),
            timezone(timedelta(hours=-23, minutes=-59)),
            timezone(timedelta(hours=14)),
        ]
    )
    valid = st.one_of(
        st.builds(lambda at, zone: at.astimezone(zone).isoformat(), recent, zones),
        recent.map(lambda at: at.isoformat().replace("+00:00", "Z")),
        st.sampled_from(["1677-09-21T00:12:43.145225Z", "1970-01-01T00:00:00Z"]),
    )
    odd = st.sampled_from(
        [
            "0001-01-01T00:00:00+07:00",
            "1600-01-01T00:00:00+00:00",
            # InfluxDB's first nanosecond is 1677-09-21T00:12:43.145224192Z
            "1677-09-21T00:12:43.145224Z",
            "1969-12-31T23:59:59.999999Z",
            "2262-04-11T23:47:16.854775Z",
            "2262-04-11T23:47:16.854776Z",
            "9999-12-31T23:59:59.999999-14:00",
            "2024-02-29T23:59:60Z",
            "2024-13-01T00:00:00Z",
            "not a time",
            "2024-09-07T08:59:30.123456789Z",
        ]
    )
    future = st.floats(1.0, 1e6).map(lambda ahead_s: (now + timedelta(seconds=ahead_s)).isoformat())
    naive = recent.map(lambda at: at.replace(tzinfo=None).isoformat())
    return st.one_of(valid, odd, future, naive) if hostile else valid


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(the bare type, its Annotated metadata, whether None is allowed)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *more = get_args(annotation)
            metadata.extend(more)
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            if len(args) != 1:
                return annotation, metadata, optional
            annotation = args[0]
        else:
            return annotation, metadata, optional


class _Bounds:
    """A field's numeric bounds from its constraints (ge/gt/le/lt)."""

    def __init__(self, metadata: list[Any]) -> None:
        self.low: float | None = None
        self.high: float | None = None
        self.low_open = self.high_open = False
        self.max_length: int | None = None
        for item in metadata:
            for c in [item, *getattr(item, "metadata", [])]:
                if getattr(c, "ge", None) is not None:
                    self.low, self.low_open = c.ge, False
                if getattr(c, "gt", None) is not None:
                    self.low, self.low_open = c.gt, True
                if getattr(c, "le", None) is not None:
                    self.high, self.high_open = c.le, False
                if getattr(c, "lt", None) is not None:
                    self.high, self.high_open = c.lt, True
                if getattr(c, "max_length", None) is not None:
                    self.max_length = c.max_length


def _is_slug(metadata: list[Any]) -> bool:
    return any(
        getattr(c, "pattern", None) == SLUG_PATTERN
        for item in metadata
        for c in [item, *getattr(item, "metadata", [])]
    )


def _number(kind: type, bounds: _Bounds, hostile: bool) -> st.SearchStrategy[Any]:
    lo = -1e9 if bounds.low is None else bounds.low
    hi = 1e9 if bounds.high is None else bounds.high
    if kind is int:
        lo_i = math.ceil(lo) + (1 if bounds.low_open and lo == math.ceil(lo) else 0)
        hi_i = math.floor(hi) - (1 if bounds.high_open and hi == math.floor(hi) else 0)
        inside: st.SearchStrategy[Any] = st.integers(lo_i, hi_i)
        edges: list[Any] = [lo_i, hi_i]
        beyond: list[Any] = [lo_i - 1, hi_i + 1, *_ODD_INTS]
    else:
        inside = st.floats(
            lo, hi, allow_nan=False, exclude_min=bounds.low_open, exclude_max=bounds.high_open
        )
        low_edge = math.nextafter(lo, math.inf) if bounds.low_open else lo
        high_edge = math.nextafter(hi, -math.inf) if bounds.high_open else hi
        edges = [low_edge, high_edge] + [v for v in (0.0, -0.0, 5e-324) if low_edge <= v <= hi]
        beyond = [math.nextafter(low_edge, -math.inf), math.nextafter(high_edge, math.inf)]
        beyond += list(_ODD_FLOATS)
    valid = st.one_of(inside, inside, inside, st.sampled_from(edges))
    return st.one_of(valid, st.sampled_from(beyond)) if hostile else valid


def _value(
    name: str,
    annotation: Any,
    now: datetime,
    hostile: bool,
    field_metadata: list[Any] | None = None,
) -> st.SearchStrategy[Any]:
    bare, metadata, optional = _unwrap(annotation)
    metadata += field_metadata or []
    bounds = _Bounds(metadata)
    strategy: st.SearchStrategy[Any]
    origin = get_origin(bare)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        strategy = model_dicts(bare, now, hostile=hostile)
    elif origin is tuple:
        (item,) = [a for a in get_args(bare) if a is not Ellipsis]
        strategy = st.lists(_value(name, item, now, hostile), max_size=4)
    elif origin is Literal:
        strategy = st.sampled_from(get_args(bare))
        if hostile:
            strategy = st.one_of(strategy, texts)
    elif bare is bool:
        strategy = st.booleans()
        if hostile:
            strategy = st.one_of(strategy, st.sampled_from([0, 1, "true"]))
    elif bare in (int, float):
        strategy = _number(bare, bounds, hostile)
    elif bare is str and _is_slug(metadata):
        strategy = st.sampled_from(IDS)
        if hostile:
            strategy = st.one_of(strategy, texts)
    elif bare is str:
        strategy = texts
        if not hostile and bounds.max_length is not None:
            limit = bounds.max_length
            strategy = texts.map(lambda text: text[:limit] or "x")
    elif bare is AwareDatetime or (isinstance(bare, type) and issubclass(bare, datetime)):
        strategy = _times(now, hostile)
    else:
        raise TypeError(f"no fuzz strategy for {name}: {annotation!r}")
    return st.one_of(st.none(), strategy) if optional else strategy


@functools.cache  # building a strategy costs far more than drawing from it
def model_dicts(
    model: type[BaseModel], now: datetime, *, hostile: bool
) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of ``model``'s fields, each fuzzed; hostile: values may break the contract."""
    fields = {
        name: _value(name, info.annotation, now, hostile, list(info.metadata))
        for name, info in model.model_fields.items()
        if name not in ("kind", "v")
    }
    required = {n for n, info in model.model_fields.items() if info.is_required()}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, strategy in fields.items():
            if name in required:
                present = not hostile or not draw(_one_in(20))
            else:
                present = draw(st.booleans())
            if present:
                body[name] = draw(strategy)
        return body

    return build()


_MODELS: dict[str, type[BaseModel]] = {
    "report": Report,
    "event": Event,
    "meta": Meta,
    "state": State,
}


@st.composite
def wire_messages(draw: st.DrawFn, now: datetime) -> tuple[str, bytes]:
    """(topic, payload): mostly a valid message of one of the pooled sites, hostile text
    in every free-text field; one in ten may break the contract anywhere; one in
    fifteen payloads is mangled; one in twenty goes to another site's topic."""
    # Hypothesis leans to the first element of sampled_from: the common case goes first.
    kind = draw(st.sampled_from(["report"] * 12 + ["event", "event", "meta", "state", "status"]))
    site = draw(st.sampled_from(SITES))
    province = site.split("-")[0]
    if kind == "status":  # our own topic, coming back through the filter: ignored
        return f"kienco/v1/{province}/{site}/status", draw(st.binary(max_size=40))
    hostile = draw(_one_in(10))
    body = draw(model_dicts(_MODELS[kind], now, hostile=hostile))
    if not hostile or draw(st.booleans()):
        body["site"], body["province"] = site, province
    payload = json.dumps({"kind": kind, "v": 1, **body}, ensure_ascii=draw(st.booleans()))
    raw = payload.encode()
    if draw(_one_in(15)):
        raw = draw(_mangled(raw))
    topic_site = draw(st.sampled_from(SITES)) if draw(_one_in(20)) else site
    return f"kienco/v1/{topic_site.split('-')[0]}/{topic_site}/{kind}", raw


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (the first element is what Hypothesis leans to)."""
    return st.sampled_from([False] * (n - 1) + [True])


def _mangled(payload: bytes) -> st.SearchStrategy[bytes]:
    """The payload as sent, or broken in one of the ways a sender can break it."""
    first_key = payload.find(b'":')
    twice = (
        payload[:1] + payload[1 : payload.find(b",") + 1] + payload[1:]
        if first_key > 0 and payload.find(b",") > 0
        else payload
    )
    return st.one_of(
        st.just(twice),  # the first key given twice
        st.integers(0, max(0, len(payload) - 1)).map(lambda n: payload[:n]),
        st.just(payload.replace(b"0.0", b"NaN", 1)),
        st.just(b"\xef\xbb\xbf" + payload),
        st.just(payload.replace(b"a", b"\xff", 1)),
        st.just(b"[" * 5000 + b"]" * 5000),
        st.just(b'{"kind":"report","a":' * 2000),
        st.binary(max_size=64),
    )
