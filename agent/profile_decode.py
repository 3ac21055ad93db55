"""The one decoding of device profiles: raw values in, wire readings out; no I/O, no clock.

Every protocol goes the same way: each reading and source through ``decode_value``
(text, invalid, enum, scale/offset), the readings in the wire's own types
(``to_wire``; one the wire refuses as absurd is unknown before any derivation reads
it), the derivations over those values, and ``validated``: a value the wire refuses
as absurd becomes unknown, not a failed device. Only where a raw value comes from differs (an
OID here, a trap varbind in :mod:`agent.trap_profile`, a NUT variable in
:mod:`agent.nut_profile`, registers in :mod:`agent.modbus_profile`).

``decode`` turns one SNMP GET answer into a ``PowerReading``; ``decode_interfaces``
turns walked table rows into one ``InterfaceReading`` per kept row. A missing OID, a
noSuch* answer, an invalid or absurd value gives null, never 0.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from agent.profile_vocabulary import Derivation, RawValue, Value, ValueRule, ValueSpec
from contract.wire import InterfaceReading, PowerReading

if TYPE_CHECKING:  # the profile documents import this module
    from agent.profiles import InterfaceProfile, Profile

__all__ = [
    "decode",
    "decode_interfaces",
    "decode_value",
    "decode_values",
    "fits",
    "port_slug",
    "reading_fields",
    "rows_from_walk",
    "to_wire",
    "validated",
]

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=ValueRule)
_SLUG_MAX = 64  # wire Slug's max_length


def decode_value(rule: ValueRule, raw: RawValue, *, text: bool = False) -> Value | None:
    """One raw value: text kept as text, numbers through invalid, enum or scale/offset."""
    text = text or rule.text
    if isinstance(raw, bytes):
        data = raw
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            # A name in a legacy code page still names the port; a number it is not.
            raw = data.decode("latin-1") if text else None
    if text:
        word = None if raw is None else str(raw).strip().strip("\x00").strip()
        if not word or word in rule.invalid.equals:
            return None
        return rule.enum.get(word, word) if rule.enum is not None else word
    if isinstance(raw, str):
        raw = raw.strip()
        if raw in rule.invalid.equals:
            return None
        if rule.enum is not None and raw in rule.enum:
            return rule.enum[raw]  # vendors that answer words ("OB") rather than numbers
        try:
            raw = float(raw)  # some cards send numbers as text ("229.5"), NUT always does
        except ValueError:
            return None
    if raw is None or not math.isfinite(raw) or rule.invalid.rejects(raw):
        return None
    if rule.enum is not None:
        return rule.enum.get(int(raw)) if float(raw).is_integer() else None
    # Rounding drops binary noise from the scale (545 * 0.1 = 54.50000000000001).
    value = round(raw * rule.scale + rule.offset, 6)
    return value if math.isfinite(value) else None


def decode_values(
    specs: Iterable[tuple[str, R]],
    kinds: Mapping[str, Any],
    raw_of: Callable[[R], RawValue],
) -> dict[str, Value | None]:
    """Every named spec's value; a wire text field (an interface name) is read as text."""
    return {
        name: decode_value(spec, raw_of(spec), text=kinds.get(name) is str) for name, spec in specs
    }


def to_wire(kind: Any, value: Value | None) -> Value | None:
    """A value in the wire field's own type: counts whole, measures float."""
    if value is None or kind in (bool, str) or isinstance(kind, frozenset):
        return value  # enum values were checked against the field at load time
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return round(value) if kind is int else float(value)


@cache
def _field_check(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """The wire's own check of one field of ``model`` (its type and bounds)."""
    info = model.model_fields[name]
    kind: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return TypeAdapter(kind, config=model.model_config)


def fits(model: type[BaseModel], name: str, value: Any) -> bool:
    """Whether the wire takes ``value`` (already in the field's type) for ``name``."""
    try:
        _field_check(model, name).validate_python(value)
    except ValidationError:
        return False
    return True


def reading_fields(
    model: type[BaseModel],
    derive: Mapping[str, Derivation],
    wire: Iterable[str],
    kinds: Mapping[str, Any],
    values: Mapping[str, Value | None],
) -> dict[str, Any]:
    """The wire fields: the readings named in ``wire``, then every derivation.

    A reading the wire refuses as absurd (upsSecondsOnBattery at INT32_MAX, 19 660 V of
    mains from a word-swapped pair) is unknown before any derivation reads it: left in,
    ``on_battery_for_s > 0`` said "on battery" and ``input_v > 100`` "mains present"
    from a value the report then carried as null.
    """
    fields: dict[str, Any] = {name: to_wire(kinds[name], values[name]) for name in wire}
    refused = {n for n, v in fields.items() if v is not None and not fits(model, n, v)}
    if refused:
        fields |= dict.fromkeys(refused, None)
        values = {**values, **dict.fromkeys(refused, None)}
    for name, derivation in derive.items():
        fields[name] = to_wire(kinds[name], derivation.evaluate(values))
    return fields


def validated(model: type[M], base: dict[str, Any], fields: dict[str, Any]) -> M:
    """The wire model of ``fields``; a value the wire refuses (charge 250 %) becomes unknown."""
    try:
        return model.model_validate({**base, **fields})
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in fields}
        if not bad:
            raise
        kept = {name: (None if name in bad else value) for name, value in fields.items()}
        return model.model_validate({**base, **kept})


def answer_by_oid(varbinds: Mapping[str, RawValue]) -> dict[str, RawValue]:
    """OID -> value, without the leading dot some transports keep."""
    return {oid.lstrip("."): value for oid, value in varbinds.items()}


def snmp_values(profile: Profile, answer: Mapping[str, RawValue]) -> dict[str, Value | None]:
    """The values of a power profile's sources and readings in one GET answer (or trap)."""
    specs: tuple[tuple[str, ValueSpec], ...] = (
        *profile.sources.items(),
        *profile.readings.items(),
    )
    return decode_values(specs, profile.wire_kinds, lambda spec: answer.get(spec.instance_oid))


def decode(profile: Profile, device_id: str, varbinds: Mapping[str, RawValue]) -> PowerReading:
    """Turn one GET answer (OID -> value) into a PowerReading."""
    values = snmp_values(profile, answer_by_oid(varbinds))
    fields = reading_fields(
        PowerReading, profile.derive, profile.readings, profile.wire_kinds, values
    )
    return validated(PowerReading, {"device": device_id, "profile": profile.profile}, fields)


def rows_from_walk(walked: Mapping[str, Mapping[str, RawValue]]) -> dict[str, dict[str, RawValue]]:
    """``{column: {index: value}}`` (as walked) -> ``{index: {column: value}}``."""
    rows: dict[str, dict[str, RawValue]] = {}
    for column, cells in walked.items():
        for index, value in cells.items():
            rows.setdefault(index, {})[column.lstrip(".")] = value
    return rows


def port_slug(text: str | None) -> str | None:
    """``GigabitEthernet0/0/1`` -> ``gigabitethernet0-0-1``; None when nothing is left."""
    if not text:
        return None
    plain = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    ascii_only = plain.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")[:_SLUG_MAX].rstrip("-")
    return slug or None


def _index_key(index: str) -> tuple[int, ...]:
    return tuple(int(part) for part in index.split(".") if part.isdigit())


def decode_interfaces(
    profile: InterfaceProfile, device_id: str, rows: Mapping[str, Mapping[str, RawValue]]
) -> list[InterfaceReading]:
    """Turn walked rows (index -> {column OID: value}) into one InterfaceReading per kept row.

    A row is kept when ``include`` holds (an include it cannot decide, for an unknown
    input, drops the row) and ``exclude`` does not hold (one it cannot decide keeps it).
    """
    readings: list[InterfaceReading] = []
    seen: set[str] = set()
    specs: tuple[tuple[str, ValueSpec], ...] = (
        *profile.sources.items(),
        *profile.columns.items(),
    )
    for index in sorted(rows, key=_index_key)[: profile.max_rows]:
        row = answer_by_oid(rows[index])

        def in_row(spec: ValueSpec, row: Mapping[str, RawValue] = row) -> RawValue:
            return row.get(spec.oid)

        values = decode_values(specs, profile.wire_kinds, in_row)
        if profile.include is not None and profile.include.evaluate(values) is not True:
            continue
        if profile.exclude is not None and profile.exclude.evaluate(values) is True:
            continue
        labels = (port_slug(str(values.get(name) or "")) for name in profile.port.from_)
        suffix = index.replace(".", "-")
        port = next((label for label in labels if label), f"{profile.port.prefix}{suffix}")
        port = _unique_port(port, suffix, seen)  # two rows must never report as one port
        seen.add(port)
        fields = reading_fields(
            InterfaceReading, profile.derive, profile.columns, profile.wire_kinds, values
        )
        readings.append(validated(InterfaceReading, {"device": device_id, "port": port}, fields))
    return readings


def _unique_port(port: str, suffix: str, seen: set[str]) -> str:
    """``port``, or, when another row already took it, ``port`` with the row's index (then
    a count) after it: a report that gives a port twice is refused whole (contract/wire.py),
    so even labels that collide with another row's index must not make one."""
    candidate, extra = port, 1
    while candidate in seen:
        tail = suffix if extra == 1 else f"{suffix}-{extra}"
        candidate = f"{port[: _SLUG_MAX - len(tail) - 1]}-{tail}"
        extra += 1
    return candidate
