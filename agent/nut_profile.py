"""NUT profiles: which of upsd's variables become which readings, and how.

A profile is data (``firmware-configs/profiles/<name>.nut.yaml``; vocabulary at the
top of ``nut.nut.yaml``). NUT's variable names are one standard for every driver
(NUT ``docs/nut-names.txt``), so the shipped profile ``nut`` serves any UPS; a driver
with quirks gets a profile of its own (the device's ``profile:``). Each value is a
``NutValue``: the shared value vocabulary (:mod:`agent.profile_vocabulary`) read from
a variable, and decoded by the one path (:mod:`agent.profile_decode`). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints
from pydantic import model_validator as _model_validator

from agent.profile_decode import decode_value, reading_fields, validated
from agent.profile_files import Name, ProfileDocument, find_profile, load_profile_file, wire_kinds
from agent.profile_vocabulary import Derivation, ProfileTest, Value, ValueRule, check_readings
from contract.wire import PowerReading
from plumbing.data import firmware_configs

__all__ = [
    "DEFAULT_PROFILE",
    "NutProfile",
    "NutProfileError",
    "NutValue",
    "count_alarms",
    "decode_vars",
    "load_nut_profile",
    "load_nut_profile_by_name",
]

PROFILES_DIR = firmware_configs() / "profiles"
SUFFIX = ".nut.yaml"
DEFAULT_PROFILE = "nut"
POWER_KINDS = wire_kinds(PowerReading, "device", "profile", "error")

# NUT names: lowercase words joined by dots; three-phase ones add "L1-N" and the like.
VarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class NutProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the fix."""


def count_alarms(text: str | None) -> int | None:
    """How many alarms NUT's ``ups.alarm`` lists; None when it lists none.

    Drivers join alarm texts with spaces, newer ones wrap each in brackets
    ("[Replace battery!] [Overheat]"), older ones end each with "!".
    """
    text = (text or "").strip()
    if not text:
        return None
    bracketed = re.findall(r"\[[^\]]*\]", text)
    if bracketed:
        return len(bracketed)
    return max(1, len([s for s in text.split("!") if s.strip()]))


class NutValue(ValueRule):
    """One value from upsd: ``var`` (or the first of several that gives a value)."""

    var: VarName | tuple[VarName, ...]
    count_of: Literal["alarms"] | None = None  # the value is how many alarms the text lists

    @_model_validator(mode="after")
    def _count_is_a_number(self) -> NutValue:
        if self.count_of is not None and (self.text or self.enum is not None):
            raise ValueError("count_of gives a number; remove text and enum")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return (self.var,) if isinstance(self.var, str) else self.var

    def read(self, variables: Mapping[str, str], *, text: bool = False) -> Value | None:
        for name in self.names:
            raw = variables.get(name)
            value = count_alarms(raw) if self.count_of else decode_value(self, raw, text=text)
            if value is not None:
                return value
        return None


class NutProfile(ProfileDocument):
    """One family of UPSes behind upsd: readings (wire fields), sources, derivations."""

    wire_kinds: ClassVar[dict[str, Any]] = POWER_KINDS
    readings: dict[str, NutValue]
    sources: dict[Name, NutValue] = Field(default_factory=dict)
    derive: dict[str, Derivation] = Field(default_factory=dict)
    test: ProfileTest = ProfileTest()

    @_model_validator(mode="after")
    def _fits_the_wire(self) -> NutProfile:
        check_readings(self, "readings", self.readings, POWER_KINDS, "a PowerReading")
        return self


def load_nut_profile(path: Path | str) -> NutProfile:
    """Load and validate one profile file; raise NutProfileError naming the key and the fix."""
    return load_profile_file(path, NutProfile, NutProfileError, what="NUT profile", suffix=SUFFIX)


def load_nut_profile_by_name(name: str, search_dirs: Sequence[Path] | None = None) -> NutProfile:
    """Load ``<name>.nut.yaml`` from the first of search_dirs that has it (default PROFILES_DIR)."""
    return find_profile(
        name,
        search_dirs if search_dirs is not None else [PROFILES_DIR],
        suffix=SUFFIX,
        error_cls=NutProfileError,
        load=load_nut_profile,
        example=DEFAULT_PROFILE,
        what="NUT profile",
    )


@cache
def shipped_nut_profile(name: str = DEFAULT_PROFILE) -> NutProfile:
    """A profile from ``firmware-configs/profiles/``, loaded once per process."""
    return load_nut_profile_by_name(name)


def decode_vars(
    device_id: str, variables: Mapping[str, str], profile: NutProfile | None = None
) -> PowerReading:
    """Turn one ``LIST VAR`` answer into a PowerReading (with the shipped ``nut`` profile)."""
    profile = profile or shipped_nut_profile()
    specs = {**profile.sources, **profile.readings}
    values = {
        name: spec.read(variables, text=POWER_KINDS.get(name) is str)
        for name, spec in specs.items()
    }
    fields = reading_fields(PowerReading, profile.derive, profile.readings, POWER_KINDS, values)
    return validated(PowerReading, {"device": device_id, "profile": profile.profile}, fields)
