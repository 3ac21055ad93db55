"""The value vocabulary of profiles and the pure decoding with it: no I/O, no clock.

``ValueSpec`` (one OID -> one value), ``Condition`` and ``Derivation`` are the
pieces profiles are built of (:mod:`agent.profiles` holds the documents and their
loading). ``decode`` turns one GET answer into a ``PowerReading``;
``decode_interfaces`` turns walked table rows into one ``InterfaceReading`` per kept
row. A missing OID, a noSuch* answer, an invalid or absurd value gives null, never 0.
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, Field, StringConstraints, ValidationError
from pydantic import field_validator as _field_validator
from pydantic import model_validator as _model_validator

from agent.profile_files import Invalid, Name, Strict
from contract.wire import InterfaceReading, PowerReading

if TYPE_CHECKING:  # the profile documents import this module's vocabulary
    from agent.profiles import InterfaceProfile, Profile

__all__ = ["decode", "decode_interfaces", "decode_value", "port_slug", "rows_from_walk"]

RawValue = int | float | str | bytes | None
"""A value as the transport hands it over; None is missing/noSuchObject/noSuchInstance."""
Value = int | float | str | bool


ORDERING = ("gt", "ge", "lt", "le")  # comparisons that need a number
OPERATORS = {op: getattr(operator, op) for op in ("eq", "ne", *ORDERING)}
_ALL_OPERATORS = (*OPERATORS, "in", "match")

Oid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)+$")]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ValueSpec(Strict):
    """How one OID becomes one value: ``raw * scale + offset``, ``enum[raw]``, or text."""

    oid: Oid
    index: str = "0"
    object: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    enum: dict[int | str, str | bool] | None = None
    invalid: Invalid = Invalid()
    text: bool = False

    @_field_validator("oid")
    @classmethod
    def _object_not_instance(cls, oid: str) -> str:
        # "…2.4.0" would be asked for as "…2.4.0.0" and silently answer noSuchInstance.
        if oid.endswith(".0"):
            raise ValueError(f"{oid} ends in .0: give the object in oid, its instance in index")
        return oid

    @_field_validator("index", mode="before")
    @classmethod
    def _index_text(cls, index: Any) -> Any:
        index = str(index) if _is_number(index) else index
        if isinstance(index, str) and not re.fullmatch(r"[0-9]+(\.[0-9]+)*", index):
            raise ValueError(f"index {index!r}: use 0 for a scalar, the row (1, 1.2) for a table")
        return index

    @_model_validator(mode="after")
    def _text_is_plain(self) -> ValueSpec:
        numeric = self.scale != 1 or self.offset != 0 or self.invalid != Invalid()
        if self.text and (numeric or self.enum is not None):
            raise ValueError("a text value takes no scale, offset, enum or invalid; remove them")
        return self

    @property
    def instance_oid(self) -> str:
        return f"{self.oid}.{self.index}"


class Condition(Strict):
    """``{value: NAME, OP: OPERAND}``, one of eq, ne, gt, ge, lt, le, in (a list), match (regex)."""

    value: Name
    eq: int | float | bool | str | None = None
    ne: int | float | bool | str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    in_: tuple[int | float | str, ...] | None = Field(default=None, alias="in", min_length=1)
    match: str | None = None

    @_model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in _ALL_OPERATORS if self._operand(op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_ALL_OPERATORS)} (got {given})")
        try:
            re.compile(self.match or "")
        except re.error as exc:
            raise ValueError(f"match: {self.match!r} is not a regular expression: {exc}") from None
        return self

    def _operand(self, op: str) -> Any:
        return self.in_ if op == "in" else getattr(self, op)

    @property
    def operator(self) -> str:
        return next(op for op in _ALL_OPERATORS if self._operand(op) is not None)

    def holds(self, value: Value | None) -> bool | None:
        """True/False, or None when the value is unknown (or of a kind the operator cannot use)."""
        op = self.operator
        if value is None or (op in ORDERING and not _is_number(value)):
            return None
        if op == "match":
            return (
                re.search(self.match or "", value) is not None if isinstance(value, str) else None
            )
        if op == "in":
            return value in (self.in_ or ())
        return bool(OPERATORS[op](value, self._operand(op)))


class Derivation(Strict):
    """``any`` (or) / ``all`` (and) give a yes/no field; ``count`` counts conditions that hold."""

    any_: tuple[Condition, ...] | None = Field(default=None, alias="any", min_length=1)
    all_: tuple[Condition, ...] | None = Field(default=None, alias="all", min_length=1)
    count_: tuple[Condition, ...] | None = Field(default=None, alias="count", min_length=1)

    @_model_validator(mode="after")
    def _one_combinator(self) -> Derivation:
        if [self.any_, self.all_, self.count_].count(None) != 2:
            raise ValueError("give exactly one of any (or), all (and), count: a list of conditions")
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.any_ or self.all_ or self.count_ or ()

    def evaluate(self, values: Mapping[str, Value | None]) -> bool | int | None:
        results = [c.holds(values.get(c.value)) for c in self.conditions]
        if self.count_ is not None:
            # A lower bound when some inputs are unknown: a known alarm is never hidden.
            known = [r for r in results if r is not None]
            return sum(known) if known else None
        # Kleene logic: one known True decides `any`, one known False decides `all`;
        # otherwise an unknown input leaves the answer unknown.
        decisive = self.any_ is not None
        if decisive in results:
            return decisive
        return None if None in results else not decisive


M = TypeVar("M", bound=BaseModel)
_SLUG_MAX = 64  # wire Slug's max_length


def decode_value(spec: ValueSpec, raw: RawValue, *, text: bool = False) -> Value | None:
    """One raw value: text kept as text, numbers through invalid, enum or scale/offset."""
    text = text or spec.text
    if isinstance(raw, bytes):
        data = raw
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            # A name in a legacy code page still names the port; a number it is not.
            raw = data.decode("latin-1") if text else None
    if text:
        return None if raw is None else (str(raw).strip().strip("\x00").strip() or None)
    if isinstance(raw, str):
        raw = raw.strip()
        if spec.enum is not None and raw in spec.enum:
            return spec.enum[raw]  # vendors that answer words ("OB") rather than numbers
        try:
            raw = float(raw)  # some cards send numbers as text ("229.5")
        except ValueError:
            return None
    if raw is None or not math.isfinite(raw) or spec.invalid.rejects(raw):
        return None
    if spec.enum is not None:
        return spec.enum.get(int(raw)) if float(raw).is_integer() else None
    # Rounding drops binary noise from the scale (545 * 0.1 = 54.50000000000001).
    return round(raw * spec.scale + spec.offset, 6)


def _to_wire(kind: Any, value: Value | None) -> Value | None:
    if value is None or kind in (bool, str) or isinstance(kind, frozenset):
        return value  # enum values were checked against the field at load time
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return round(value) if kind is int else float(value)


def _values(
    specs: Iterable[tuple[str, ValueSpec]], kinds: Mapping[str, Any], raw_of: Any
) -> dict[str, Value | None]:
    return {
        name: decode_value(spec, raw_of(spec), text=kinds.get(name) is str) for name, spec in specs
    }


def _fields(
    profile: Profile | InterfaceProfile,
    wire: Mapping[str, ValueSpec],
    kinds: Mapping[str, Any],
    values: Mapping[str, Value | None],
) -> dict[str, Any]:
    fields: dict[str, Any] = {name: _to_wire(kinds[name], values[name]) for name in wire}
    for name, derivation in profile.derive.items():
        fields[name] = derivation.evaluate(values)
    return fields


def _validated(model: type[M], base: dict[str, Any], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate({**base, **fields})
    except ValidationError as exc:
        # A value the wire refuses as absurd (charge 250 %) is unknown, not a failed device.
        bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in fields}
        if not bad:
            raise
        kept = {name: (None if name in bad else value) for name, value in fields.items()}
        return model.model_validate({**base, **kept})


def decode(profile: Profile, device_id: str, varbinds: Mapping[str, RawValue]) -> PowerReading:
    """Turn one GET answer (OID -> value) into a PowerReading."""
    answer = {oid.lstrip("."): value for oid, value in varbinds.items()}
    specs = (*profile.sources.items(), *profile.readings.items())
    kinds = profile.wire_kinds
    values = _values(specs, kinds, lambda spec: answer.get(spec.instance_oid))
    fields = _fields(profile, profile.readings, kinds, values)
    return _validated(PowerReading, {"device": device_id, "profile": profile.profile}, fields)


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
    specs = (*profile.sources.items(), *profile.columns.items())
    for index in sorted(rows, key=_index_key)[: profile.max_rows]:
        row = {oid.lstrip("."): value for oid, value in rows[index].items()}
        values = _values(specs, profile.wire_kinds, lambda spec, row=row: row.get(spec.oid))
        if profile.include is not None and profile.include.evaluate(values) is not True:
            continue
        if profile.exclude is not None and profile.exclude.evaluate(values) is True:
            continue
        labels = (port_slug(str(values.get(name) or "")) for name in profile.port.from_)
        suffix = index.replace(".", "-")
        port = next((label for label in labels if label), f"{profile.port.prefix}{suffix}")
        if port in seen:  # two rows must never report as one port
            port = f"{port[: _SLUG_MAX - len(suffix) - 1]}-{suffix}"
        seen.add(port)
        fields = _fields(profile, profile.columns, profile.wire_kinds, values)
        readings.append(_validated(InterfaceReading, {"device": device_id, "port": port}, fields))
    return readings
