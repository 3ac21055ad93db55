"""Modbus register profiles: which holding registers a controller exposes and what they mean.

A profile is data (``firmware-configs/profiles/<name>.modbus.yaml``; the
vocabulary is described at the top of ``dse-gencomm.modbus.yaml``). Loading is
strict: an unknown key, a wrong type or a name that is not a ``PowerReading``
field fails with the key and the fix. ``decode`` is pure: registers in, a
``PowerReading`` out; ``blocks`` says which register ranges to read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic import model_validator as _model_validator

from agent.profile_decode import OPERATORS, ORDERING
from agent.profile_files import (
    Invalid,
    Name,
    ProfileDocument,
    Strict,
    check_enum,
    find_profile,
    load_profile_file,
    wire_kinds,
)
from contract.wire import PowerReading
from plumbing.data import firmware_configs

__all__ = ["ModbusProfile", "ModbusProfileError", "blocks", "decode", "load_modbus_profile"]

PROFILES_DIR = firmware_configs() / "profiles"
SUFFIX = ".modbus.yaml"
MAX_READ = 125  # registers per Modbus read: a PDU holds at most 125 (Modbus spec, function 3)

RegisterType = Literal["u16", "s16", "u32", "s32", "codes4"]
Value = int | float | str | bool


class ModbusProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the fix."""


# What each PowerReading field holds, read from the wire contract so the two cannot drift.
_WIRE = wire_kinds(PowerReading, "device", "profile", "error")


class Register(Strict):
    """One value: ``raw * scale + offset``, ``enum[raw]``, or (codes4) a count of codes."""

    address: Annotated[int, Field(ge=0, le=65535)]
    type: RegisterType = "u16"
    name: str | None = None  # what the map calls it, for people
    word_order: Literal["big", "little"] | None = None
    words: Annotated[int, Field(ge=1, le=MAX_READ)] | None = None
    count: tuple[int, ...] | None = None
    scale: float = 1.0
    offset: float = 0.0
    enum: dict[int, str | bool] | None = None
    invalid: Invalid = Invalid()

    @_model_validator(mode="after")
    def _shape(self) -> Register:
        if (self.type == "codes4") != (self.count is not None and self.words is not None):
            raise ValueError("type codes4 takes words (registers) and count (codes to count)")
        if self.type != "codes4" and self.words is not None:
            raise ValueError(f"words is for codes4 only; a {self.type} has a fixed size")
        if self.address + self.size > 65536:
            raise ValueError(f"address {self.address} + {self.size} words runs past 65535")
        return self

    @property
    def size(self) -> int:
        return self.words or (2 if self.type in ("u32", "s32") else 1)


class Condition(Strict):
    """``{value: NAME, OP: OPERAND}`` with exactly one of eq, ne, gt, ge, lt, le."""

    value: Name
    eq: int | float | bool | str | None = None
    ne: int | float | bool | str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @_model_validator(mode="after")
    def _one(self) -> Condition:
        given = [op for op in OPERATORS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of eq, ne, gt, ge, lt, le (got {given or 'none'})")
        return self

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if getattr(self, op) is not None)

    def holds(self, value: Value | None) -> bool | None:
        op = self.operator
        if value is None or (op in ORDERING and isinstance(value, str | bool)):
            return None
        return bool(OPERATORS[op](value, getattr(self, op)))


class Derivation(Strict):
    """A yes/no field: ``any`` (or), ``all`` (and), or ``first`` (the first known decides)."""

    any_: tuple[Condition, ...] | None = Field(default=None, alias="any", min_length=1)
    all_: tuple[Condition, ...] | None = Field(default=None, alias="all", min_length=1)
    first: tuple[Condition, ...] | None = Field(default=None, min_length=1)

    @_model_validator(mode="after")
    def _one(self) -> Derivation:
        if sum(x is not None for x in (self.any_, self.all_, self.first)) != 1:
            raise ValueError("give exactly one of any (or), all (and), first (fallbacks)")
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.any_ or self.all_ or self.first or ()

    def evaluate(self, values: Mapping[str, Value | None]) -> bool | None:
        results = [c.holds(values.get(c.value)) for c in self.conditions]
        if self.first is not None:
            return next((r for r in results if r is not None), None)
        # Kleene logic: one True decides `any`, one False decides `all`; else unknown wins.
        decisive = self.any_ is not None
        if decisive in results:
            return decisive
        return None if None in results else not decisive


class ModbusProfile(ProfileDocument):
    """One controller family: readings (wire fields), sources (helpers), derivations."""

    word_order: Literal["big", "little"] = "big"
    max_gap: Annotated[int, Field(ge=0, le=MAX_READ)] = 0
    sentinels: dict[Literal["u16", "s16", "u32", "s32"], Invalid] = Field(default_factory=dict)
    readings: dict[str, Register]
    sources: dict[Name, Register] = Field(default_factory=dict)
    derive: dict[str, Derivation] = Field(default_factory=dict)

    @_model_validator(mode="after")
    def _fits_the_wire(self) -> ModbusProfile:
        for name, spec in self.readings.items():
            if name not in _WIRE:
                fields = ", ".join(_WIRE)
                raise ValueError(f"readings.{name}: not a PowerReading field; use one of {fields}")
            _check(f"readings.{name}", _WIRE[name], spec)
        for name, spec in self.sources.items():
            if name in self.readings:
                raise ValueError(f"sources.{name}: also a reading; rename the source")
            if spec.type == "codes4":
                raise ValueError(f"sources.{name}: codes4 counts alarms; use it under readings")
        known = {**self.sources, **self.readings}
        for name, derivation in self.derive.items():
            if _WIRE.get(name) is not bool:
                raise ValueError(f"derive.{name}: derive gives yes/no fields only (on_battery…)")
            if name in self.readings:
                raise ValueError(f"derive.{name}: also under readings; keep one of the two")
            for cond in derivation.conditions:
                target = known.get(cond.value)
                if target is None:
                    raise ValueError(
                        f"derive.{name}: {cond.value!r} is neither a reading nor a source;"
                        f" use one of {', '.join(known)}"
                    )
                if target.enum is not None and cond.operator in ORDERING:
                    raise ValueError(f"derive.{name}: {cond.value} has an enum; use eq or ne")
        return self

    def specs(self) -> dict[str, Register]:
        return {**self.sources, **self.readings}


def _check(where: str, kind: Any, spec: Register) -> None:
    if spec.type == "codes4":
        if kind is not int:
            raise ValueError(f"{where}: codes4 gives a count; use it for a count field")
        return
    check_enum(where, kind, spec.enum)


def load_modbus_profile(path: Path | str) -> ModbusProfile:
    """Load and validate one profile file; raise ModbusProfileError naming the key and the fix."""
    return load_profile_file(
        path, ModbusProfile, ModbusProfileError, what="Modbus profile", suffix=SUFFIX
    )


def load_modbus_profile_by_name(
    name: str, search_dirs: Sequence[Path] | None = None
) -> ModbusProfile:
    """Load ``<name>.modbus.yaml`` from the first of search_dirs that has it."""
    return find_profile(
        name,
        search_dirs if search_dirs is not None else [PROFILES_DIR],
        suffix=SUFFIX,
        error_cls=ModbusProfileError,
        load=load_modbus_profile,
        example="dse-gencomm",
        what="Modbus profile",
    )


def blocks(profile: ModbusProfile) -> list[tuple[int, int]]:
    """(start, count) reads covering every register, merged across gaps up to max_gap.

    A value's words always travel in one read: half of a 32-bit value from one
    read and half from the next could mix old and new data.
    """
    spans = sorted({(s.address, s.address + s.size) for s in profile.specs().values()})
    merged: list[list[int]] = []
    for start, end in spans:
        near = merged and start - merged[-1][1] <= profile.max_gap
        if near and max(end, merged[-1][1]) - merged[-1][0] <= MAX_READ:
            merged[-1][1] = max(end, merged[-1][1])
        else:
            merged.append([start, end])
    return [(start, end - start) for start, end in merged]


def _raw(spec: Register, order: str, registers: Mapping[int, int]) -> int | list[int] | None:
    words = [registers.get(spec.address + i) for i in range(spec.size)]
    if any(w is None for w in words):
        return None
    known = [int(w) & 0xFFFF for w in words if w is not None]
    if spec.type == "codes4":
        return [(w >> shift) & 0xF for w in known for shift in (12, 8, 4, 0)]
    if len(known) == 2:
        high, low = known if (spec.word_order or order) == "big" else known[::-1]
        value, bits = high << 16 | low, 32
    else:
        value, bits = known[0], 16
    signed = spec.type.startswith("s")
    return value - (1 << bits) if signed and value >= 1 << (bits - 1) else value


def _value(profile: ModbusProfile, spec: Register, registers: Mapping[int, int]) -> Value | None:
    raw = _raw(spec, profile.word_order, registers)
    if isinstance(raw, list):  # codes4; all 0xF ("unimplemented", GenComm §8.1): no such page
        counted = spec.count or ()
        return None if all(c == 0xF for c in raw) else sum(c in counted for c in raw)
    sentinel = next((i for t, i in profile.sentinels.items() if t == spec.type), None)
    if raw is None or spec.invalid.rejects(raw) or (sentinel and sentinel.rejects(raw)):
        return None
    if spec.enum is not None:
        return spec.enum.get(raw)
    value = round(raw * spec.scale + spec.offset, 6)  # drop binary noise (545 * 0.1)
    return value if math.isfinite(value) else None


def decode(
    profile: ModbusProfile,
    device_id: str,
    registers: Mapping[int, int],
    *,
    tank_l: float | None = None,
) -> PowerReading:
    """Registers (address -> 16-bit word) into a PowerReading. Pure: no I/O, no clock.

    ``tank_l`` (the site's tank size) turns a fuel percentage into litres when
    the controller does not report litres itself.
    """
    values = {name: _value(profile, spec, registers) for name, spec in profile.specs().items()}
    fields: dict[str, Any] = {}
    for name in profile.readings:
        value = values[name]
        # Counts are whole numbers on the wire; a scaled register gives a float.
        fields[name] = round(value) if isinstance(value, float) and _WIRE[name] is int else value
    for name, derivation in profile.derive.items():
        fields[name] = derivation.evaluate(values)
    pct = fields.get("fuel_pct")
    if fields.get("fuel_l") is None and tank_l is not None and isinstance(pct, int | float):
        fields["fuel_l"] = round(pct / 100 * tank_l, 2) if 0 <= pct <= 100 else None
    base = {"device": device_id, "profile": profile.profile}
    try:
        return PowerReading.model_validate({**base, **fields})
    except ValidationError as exc:
        # A value the wire refuses as absurd (fuel 130 %) is unknown, not a failed device.
        bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in fields}
        if not bad:
            raise
        return PowerReading.model_validate(
            {**base, **{k: (None if k in bad else v) for k, v in fields.items()}}
        )
