"""Modbus register profiles: which holding registers a controller exposes and what they mean.

A profile is data (``firmware-configs/profiles/<name>.modbus.yaml``; the
vocabulary is described at the top of ``dse-gencomm.modbus.yaml``). Loading is
strict: an unknown key, a wrong type or a name that is not a ``PowerReading``
field fails with the key and the fix. ``decode`` is pure: registers in, a
``PowerReading`` out; ``blocks`` says which register ranges to read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic import model_validator as _model_validator

from agent.profile_decode import decode_value, reading_fields, validated
from agent.profile_files import (
    Invalid,
    Name,
    ProfileDocument,
    find_profile,
    load_profile_file,
    wire_kinds,
)
from agent.profile_vocabulary import Derivation, ProfileTest, Value, ValueRule, check_readings
from contract.wire import PowerReading
from plumbing.data import firmware_configs

__all__ = [
    "ModbusProfile",
    "ModbusProfileError",
    "blocks",
    "decode",
    "load_modbus_profile",
    "value_spans",
]

PROFILES_DIR = firmware_configs() / "profiles"
SUFFIX = ".modbus.yaml"
MAX_READ = 125  # registers per Modbus read: a PDU holds at most 125 (Modbus spec, function 3)

RegisterType = Literal["u16", "s16", "u32", "s32", "codes4"]


class ModbusProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the fix."""


# What each PowerReading field holds, read from the wire contract so the two cannot drift.
_WIRE = wire_kinds(PowerReading, "device", "profile", "error")


class Register(ValueRule):
    """One value: ``raw * scale + offset``, ``enum[raw]``, or (codes4) a count of codes."""

    address: Annotated[int, Field(ge=0, le=65535)]
    type: RegisterType = "u16"
    name: str | None = None  # what the map calls it, for people
    word_order: Literal["big", "little"] | None = None
    words: Annotated[int, Field(ge=1, le=MAX_READ)] | None = None
    count: tuple[int, ...] | None = None

    @_model_validator(mode="after")
    def _shape(self) -> Register:
        if self.text:
            raise ValueError("registers hold numbers; remove text")
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

    def check_fits(self, where: str, kind: Any) -> None:
        if self.type != "codes4":
            super().check_fits(where, kind)
        elif kind is not int:
            raise ValueError(f"{where}: codes4 gives a count; use it for a count field")


class ModbusProfile(ProfileDocument):
    """One controller family: readings (wire fields), sources (helpers), derivations."""

    word_order: Literal["big", "little"] = "big"
    max_gap: Annotated[int, Field(ge=0, le=MAX_READ)] = 0
    sentinels: dict[Literal["u16", "s16", "u32", "s32"], Invalid] = Field(default_factory=dict)
    readings: dict[str, Register]
    sources: dict[Name, Register] = Field(default_factory=dict)
    derive: dict[str, Derivation] = Field(default_factory=dict)
    test: ProfileTest = ProfileTest()

    @_model_validator(mode="after")
    def _fits_the_wire(self) -> ModbusProfile:
        for name, spec in self.sources.items():
            if spec.type == "codes4":
                raise ValueError(f"sources.{name}: codes4 counts alarms; use it under readings")
        check_readings(self, "readings", self.readings, _WIRE, "a PowerReading")
        return self

    def specs(self) -> dict[str, Register]:
        return {**self.sources, **self.readings}


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
    spans = sorted((start, start + count) for start, count in value_spans(profile))
    merged: list[list[int]] = []
    for start, end in spans:
        near = merged and start - merged[-1][1] <= profile.max_gap
        if near and max(end, merged[-1][1]) - merged[-1][0] <= MAX_READ:
            merged[-1][1] = max(end, merged[-1][1])
        else:
            merged.append([start, end])
    return [(start, end - start) for start, end in merged]


def value_spans(profile: ModbusProfile) -> list[tuple[int, int]]:
    """(start, count) of each value's own registers, each once, in address order."""
    return sorted({(s.address, s.size) for s in profile.specs().values()})


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
    if raw is None or (sentinel is not None and sentinel.rejects(raw)):
        return None
    return decode_value(spec, raw)


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
    fields = reading_fields(PowerReading, profile.derive, profile.readings, _WIRE, values)
    pct = fields.get("fuel_pct")
    if fields.get("fuel_l") is None and tank_l is not None and isinstance(pct, int | float):
        fields["fuel_l"] = round(pct / 100 * tank_l, 2) if 0 <= pct <= 100 else None
    return validated(PowerReading, {"device": device_id, "profile": profile.profile}, fields)
