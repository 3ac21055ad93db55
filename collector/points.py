"""Wire messages → InfluxDB points. Pure: no I/O, no clock.

Schema (tags are ids; everything measured is a field; time is the message's):

============  ============================================  =======================================
measurement   tags                                          fields
============  ============================================  =======================================
report        site, province                                seq (int), interval_s (float)
event         site, province, event, device                 seq (int), detail (str)
power         site, province, kind, operator, device        every PowerReading value but ``profile``
link          site, province, kind, operator, path, media,  up, rtt_ms, jitter_ms, loss_pct,
              provider                                      probes_sent, bandwidth_*_mbps,
                                                            bandwidth_error, error
interface     site, province, kind, operator, device, port  every InterfaceReading value
host          site, province, kind, operator                every HostReading value
room          site, province, kind, operator                every RoomReading value
agent_state   site, province, kind, operator                online (bool)
============  ============================================  =======================================

``kind`` and ``operator`` are what is fixed with the site (``site_tags``: from its
meta; kind ``unknown`` and no operator until the meta arrives), the same tags as its
``readiness`` points, so the dashboards filter the readings by province, operator and
kind on their own series, without a list of sites (a list of 100 000 names costs
seconds a query). They add no series, but one for a site that reported before its meta,
or whose meta changed.

They come from the collector's state, not from the message: a message delivered again
(a redelivery after a crash) once its site's meta changed kind or operator is written
under the new tags, a second point of the same values at the same time in a second
series. So ``report`` and ``event``, the messages' accounting (``seq``: gaps and
duplicates are counted on them), keep a key the message alone fixes, and a replay of
either overwrites its point in place. ``provider`` and ``device`` are left out when
the message has none.

A field's InfluxDB type never changes (a second type is refused with a 400):
each field's type is taken once from the wire model (``FIELD_TYPES``) and every
value is converted to it, so a float field sent as JSON ``230`` is still
written as a float. Nulls are left out. Free text (errors, event details) is
passed as it came: the line-protocol encoder makes any string writable.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from collector.line_protocol import (
    FieldValue,
    Point,
    encode_fields,
    field_shape,
    series,
    time_text,
)
from contract.wire import (
    Event,
    HostReading,
    InterfaceReading,
    LinkReading,
    PowerReading,
    Report,
    RoomReading,
    State,
)
from rules.snapshot import SiteSnapshot

__all__ = [
    "FIELD_TYPES",
    "event_points",
    "report_lines",
    "report_points",
    "site_point_tags",
    "site_tags",
    "state_points",
    "time_ns",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FieldKind = type[float] | type[int] | type[bool] | type[str]
_Fields = tuple[tuple[str, Callable[[Any], FieldValue]], ...]


def time_ns(at: datetime) -> int:
    """Exact nanoseconds since the epoch of an aware datetime (no float rounding)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def site_tags(snapshot: SiteSnapshot | None) -> tuple[str, str | None]:
    """The tags fixed with a site, on each of its points: its kind (``unknown`` until its
    meta says) and its operator (none until then)."""
    if snapshot is None:
        return "unknown", None
    meta = snapshot.meta
    return snapshot.site_kind or "unknown", meta.operator if meta is not None else None


def site_point_tags(snapshot: SiteSnapshot) -> dict[str, str | None]:
    """The tags of a point about a site as the collector judges it (``readiness``,
    ``attention``, ``link_worst``): its site and province, and ``site_tags``."""
    kind, operator = site_tags(snapshot)
    return {
        "site": snapshot.site,
        "province": snapshot.province,
        "kind": kind,
        "operator": operator,
    }


def _kind_of(annotation: Any) -> FieldKind:
    """The one InfluxDB type of a wire field, from its annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _kind_of(inner)
    if origin is Annotated:
        return _kind_of(get_args(annotation)[0])
    if origin is Literal:
        if all(isinstance(arg, str) for arg in get_args(annotation)):
            return str
    elif annotation in (bool, int, float, str):
        kind: FieldKind = annotation
        return kind
    raise TypeError(f"no InfluxDB field type for {annotation!r}")


def _fields_of(model: type[BaseModel], *, not_fields: frozenset[str]) -> dict[str, FieldKind]:
    return {
        name: _kind_of(info.annotation)
        for name, info in model.model_fields.items()
        if name not in not_fields
    }


FIELD_TYPES: Mapping[str, Mapping[str, FieldKind]] = {
    "report": {"seq": int, "interval_s": float},
    # profile names the device profile (configuration, announced in meta), not a reading.
    "power": _fields_of(PowerReading, not_fields=frozenset({"device", "profile"})),
    # srlg is declared in the site's meta; tags carry path, media and provider.
    "link": _fields_of(LinkReading, not_fields=frozenset({"path", "media", "provider", "srlg"})),
    # device and port are tags; the port's human name (ifDescr) is a field.
    "interface": _fields_of(InterfaceReading, not_fields=frozenset({"device", "port"})),
    "host": _fields_of(HostReading, not_fields=frozenset()),
    "room": _fields_of(RoomReading, not_fields=frozenset()),
    "event": {"seq": int, "detail": str},
    "agent_state": {"online": bool},
}
"""Every field kienco writes, per measurement, with its fixed type."""


def _converters(measurement: str) -> _Fields:
    return tuple((name, kind) for name, kind in FIELD_TYPES[measurement].items())


_POWER, _LINK, _INTERFACE, _HOST, _ROOM = (
    _converters(m) for m in ("power", "link", "interface", "host", "room")
)


def _values(reading: BaseModel, fields: _Fields) -> dict[str, FieldValue]:
    values: dict[str, FieldValue] = {}
    for name, convert in fields:
        value = getattr(reading, name)
        if value is not None:
            values[name] = convert(value)
    return values


def _power_point(power: PowerReading, site: Mapping[str, str | None], at_ns: int) -> Point:
    return Point.make("power", {**site, "device": power.device}, _values(power, _POWER), at_ns)


def report_points(
    report: Report, *, site_kind: str | None, operator: str | None = None
) -> list[Point]:
    """All points of one report, stamped with the time its readings were taken."""
    at_ns = time_ns(report.taken_at)
    own = {"site": report.site, "province": report.province}
    site = {**own, "kind": site_kind, "operator": operator}
    points = [
        Point.make(
            "report", own, {"seq": report.seq, "interval_s": float(report.interval_s)}, at_ns
        )
    ]
    points.extend(_power_point(power, site, at_ns) for power in report.power)
    points.extend(
        Point.make(
            "link",
            {**site, "path": link.path, "media": link.media, "provider": link.provider},
            _values(link, _LINK),
            at_ns,
        )
        for link in report.links
    )
    points.extend(
        Point.make(
            "interface",
            {**site, "device": port.device, "port": port.port},
            _values(port, _INTERFACE),
            at_ns,
        )
        for port in report.interfaces
    )
    if report.host is not None:
        points.append(Point.make("host", site, _values(report.host, _HOST), at_ns))
    if report.room is not None:
        points.append(Point.make("room", site, _values(report.room, _ROOM), at_ns))
    return points


class _Reading:
    """How a reading model's fixed fields are read (from the model's ``__dict__``: one C
    call for all of them) and written."""

    def __init__(self, measurement: str) -> None:
        names = tuple(FIELD_TYPES[measurement])
        self.shape = field_shape(FIELD_TYPES[measurement].items())
        pick = itemgetter(*names)
        self.values: Callable[[BaseModel], Sequence[Any]] = (
            (lambda r: pick(r.__dict__)) if len(names) > 1 else (lambda r: (pick(r.__dict__),))
        )

    def fields(self, reading: BaseModel) -> str:
        return encode_fields(self.shape, self.values(reading))


_REPORT_SHAPE = field_shape(FIELD_TYPES["report"].items())
_READ_POWER, _READ_LINK, _READ_INTERFACE, _READ_HOST, _READ_ROOM = (
    _Reading(m) for m in ("power", "link", "interface", "host", "room")
)

# Each series' line head (measurement and tags, escaped), keyed by the measurement, the
# site's tags and the reading's; cleared when full, as line_protocol's caches are.
_heads: dict[tuple[str | None, ...], str] = {}
_HEADS_MAX = 100_000


def _head(key: tuple[str | None, ...], site: tuple[tuple[str, str], ...]) -> str:
    """The head of ``key`` = (measurement, kind, operator, province, site, *the reading's
    tags)."""
    head = _heads.get(key)
    if head is None:
        measurement = key[0]
        assert measurement is not None
        more = _SERIES_TAGS[measurement]
        given = [(k, v) for k, v in zip(more, key[5:], strict=True) if v is not None]
        head = series(measurement, tuple(sorted([*site, *given])))
        if len(_heads) >= _HEADS_MAX:
            _heads.clear()
        _heads[key] = head
    return head


_SERIES_TAGS: Mapping[str, tuple[str, ...]] = {
    "report": (),
    "power": ("device",),
    "link": ("path", "media", "provider"),
    "interface": ("device", "port"),
    "host": (),
    "room": (),
}


def report_lines(report: Report, *, site_kind: str | None, operator: str | None = None) -> str:
    """``encode_many(report_points(report, site_kind=…, operator=…))``, the same text, made
    without the points: no ``Point``, no tag or field dicts, each series' head made once
    (the ingest path's encoder; tests/test_points.py holds the two equal)."""
    kind, province, site_id = site_kind, report.province, report.site
    own: tuple[tuple[str, str], ...] = (("province", province), ("site", site_id))
    site = own
    if operator is not None:
        site = (("operator", operator), *site)
    if kind is not None:
        site = (("kind", kind), *site)
    fields = encode_fields(_REPORT_SHAPE, (report.seq, report.interval_s))
    at = " " + time_text(time_ns(report.taken_at))
    lines = [f"{_head(('report', None, None, province, site_id), own)} {fields}{at}"]
    for power in report.power:
        if fields := _READ_POWER.fields(power):
            key: tuple[str | None, ...] = ("power", kind, operator, province, site_id, power.device)
            lines.append(f"{_heads.get(key) or _head(key, site)} {fields}{at}")
    for link in report.links:
        if fields := _READ_LINK.fields(link):
            key = ("link", kind, operator, province, site_id, link.path, link.media, link.provider)
            lines.append(f"{_heads.get(key) or _head(key, site)} {fields}{at}")
    for port in report.interfaces:
        if fields := _READ_INTERFACE.fields(port):
            key = ("interface", kind, operator, province, site_id, port.device, port.port)
            lines.append(f"{_heads.get(key) or _head(key, site)} {fields}{at}")
    for reading, read, measurement in (
        (report.host, _READ_HOST, "host"),
        (report.room, _READ_ROOM, "room"),
    ):
        if reading is not None and (fields := read.fields(reading)):
            key = (measurement, kind, operator, province, site_id)
            lines.append(f"{_heads.get(key) or _head(key, site)} {fields}{at}")
    return "\n".join(lines)


def event_points(
    event: Event, *, site_kind: str | None = None, operator: str | None = None
) -> list[Point]:
    """The event itself (its own key: no kind or operator), and the power reading it
    carries (if any) as a ``power`` point."""
    at_ns = time_ns(event.at)
    own = {"site": event.site, "province": event.province}
    site = {**own, "kind": site_kind, "operator": operator}
    fields: dict[str, FieldValue | None] = {
        "seq": event.seq,
        "detail": event.detail,
    }
    points = [
        Point.make("event", {**own, "event": event.event, "device": event.device}, fields, at_ns)
    ]
    if event.power is not None:
        points.append(_power_point(event.power, site, at_ns))
    return points


def state_points(
    state: State, *, site_kind: str | None = None, operator: str | None = None
) -> list[Point]:
    """The agent's birth (online) or Last Will (offline)."""
    site = {"site": state.site, "province": state.province, "kind": site_kind, "operator": operator}
    return [Point.make("agent_state", site, {"online": state.state == "online"}, time_ns(state.at))]
