"""Device profiles: which OIDs a device model exposes and how each becomes a reading.

A profile is data (``firmware-configs/profiles/<name>.yaml``). ``kind: power`` (the
default; vocabulary at the top of ``ups-mib.yaml``) GETs scalars into one
``PowerReading``, and may say what the model's SNMP traps mean (``traps:``,
:mod:`agent.trap_profile`); ``kind: interfaces`` (vocabulary at the top of
``if-mib-router.yaml``) walks table columns into one ``InterfaceReading`` per row.
Loading is strict: an unknown key, a wrong type or a name that is not a wire field
fails with the key and the fix. The value vocabulary is :mod:`agent.profile_vocabulary`,
the decoding :mod:`agent.profile_decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, StringConstraints
from pydantic import model_validator as _model_validator

from agent.profile_files import (
    Invalid,
    Name,
    ProfileDocument,
    Strict,
    find_profile,
    load_profile_file,
    wire_kinds,
)
from agent.profile_vocabulary import (
    Condition,
    Derivation,
    ProfileTest,
    RawValue,
    Value,
    ValueRule,
    ValueSpec,
    check_conditions,
    check_readings,
)
from agent.trap_profile import TrapSection, check_traps
from contract.wire import InterfaceReading, PowerReading
from plumbing.data import firmware_configs

__all__ = [
    "PROFILES_DIR",
    "AnyProfile",
    "Condition",
    "Derivation",
    "InterfaceProfile",
    "Invalid",
    "Profile",
    "ProfileError",
    "RawValue",
    "Value",
    "ValueSpec",
    "load_profile",
    "load_profile_by_name",
    "oids",
    "snmp_profile_paths",
    "table_columns",
]

PROFILES_DIR = firmware_configs() / "profiles"
POWER_KINDS = wire_kinds(PowerReading, "device", "profile", "error")
INTERFACE_KINDS = wire_kinds(InterfaceReading, "device", "port", "error")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the fix."""


class PortLabel(Strict):
    """The port slug: the first non-empty text value of ``from``, else ``prefix`` + row index."""

    from_: tuple[Name, ...] = Field(default=(), alias="from")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,15}$")] = "if"


class _Profile(ProfileDocument):
    mib: str | None = None
    sources: dict[Name, ValueSpec] = Field(default_factory=dict)
    derive: dict[str, Derivation] = Field(default_factory=dict)
    test: ProfileTest = ProfileTest()
    _known: dict[str, ValueRule] = PrivateAttr(default_factory=dict)


class Profile(_Profile):
    """A power device: scalars GET in one request, decoded into one ``PowerReading``."""

    wire_kinds: ClassVar[dict[str, Any]] = POWER_KINDS
    kind: Literal["power"] = "power"
    readings: dict[str, ValueSpec]
    traps: TrapSection | None = None

    @_model_validator(mode="after")
    def _names_fit_the_wire(self) -> Profile:
        self._known = check_readings(self, "readings", self.readings, POWER_KINDS, "a PowerReading")
        if self.traps is not None:
            check_traps(self.traps, self._known, POWER_KINDS)
        return self


class InterfaceProfile(_Profile):
    """A table of ports: columns walked, each row decoded into one ``InterfaceReading``."""

    wire_kinds: ClassVar[dict[str, Any]] = INTERFACE_KINDS
    kind: Literal["interfaces"]
    columns: dict[str, ValueSpec]
    port: PortLabel
    include: Derivation | None = None  # a row is kept only where this holds
    exclude: Derivation | None = None  # and dropped where this holds
    max_rows: Annotated[int, Field(ge=1, le=10_000)] = 512

    @_model_validator(mode="after")
    def _columns_fit_the_wire(self) -> InterfaceProfile:
        for section, specs in (("columns", self.columns), ("sources", self.sources)):
            for name, spec in specs.items():
                if "index" in spec.model_fields_set:
                    raise ValueError(f"{section}.{name}.index: a column is walked; remove index")
        self._known = check_readings(
            self, "columns", self.columns, INTERFACE_KINDS, "an InterfaceReading"
        )
        for name in self.port.from_:
            if name not in self._known or not self._known[name].text:
                raise ValueError(f"port.from: {name!r} is not a text column or source (text: true)")
        for key, rule in (("include", self.include), ("exclude", self.exclude)):
            if rule is not None and (rule.count_ is not None or rule.when is not None):
                raise ValueError(f"{key}: use any, all or first; count does not select rows")
            if rule is not None:
                check_conditions(key, rule.conditions, self._known)
        return self


AnyProfile = Profile | InterfaceProfile
_KINDS: dict[str, type[Profile] | type[InterfaceProfile]] = {
    "power": Profile,
    "interfaces": InterfaceProfile,
}


def _choose(data: dict[Any, Any]) -> type[Profile] | type[InterfaceProfile]:
    if "kind" not in data and "columns" in data:
        raise ValueError("columns are walked in a table profile; add kind: interfaces")
    model = _KINDS.get(str(data.get("kind", "power")))
    if model is None:
        raise ValueError(f"kind {data['kind']!r}: use one of {', '.join(_KINDS)}")
    return model


def load_profile(path: Path | str) -> AnyProfile:
    """Load and validate one profile file; raise ProfileError naming the key and the fix."""
    return load_profile_file(path, _choose, ProfileError, what="profile", suffix=".yaml")


def load_profile_by_name(name: str, search_dirs: Sequence[Path] | None = None) -> AnyProfile:
    """Load ``<name>.yaml`` from the first of search_dirs that has it (default PROFILES_DIR)."""
    dirs = search_dirs if search_dirs is not None else [PROFILES_DIR]
    return find_profile(
        name, dirs, suffix=".yaml", error_cls=ProfileError, load=load_profile, example="ups-mib"
    )


def snmp_profile_paths(search_dirs: Sequence[Path] | None = None) -> list[Path]:
    """Every SNMP profile file (``<name>.yaml``; ``<name>.modbus.yaml`` and the like are not)."""
    dirs = search_dirs if search_dirs is not None else [PROFILES_DIR]
    return sorted(p for d in dirs for p in Path(d).glob("*.yaml") if p.name.count(".") == 1)


def oids(profile: Profile) -> list[str]:
    """The OID instances to GET for a power profile, each once, in profile order."""
    specs = [*profile.sources.values(), *profile.readings.values()]
    return list(dict.fromkeys(spec.instance_oid for spec in specs))


def table_columns(profile: InterfaceProfile) -> list[str]:
    """The column OIDs to walk for an interface profile, each once, in profile order."""
    specs = [*profile.sources.values(), *profile.columns.values()]
    return list(dict.fromkeys(spec.oid for spec in specs))
