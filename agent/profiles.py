"""Device profiles: which OIDs a device model exposes and how each becomes a reading.

A profile is data (``firmware-configs/profiles/<name>.yaml``). ``kind: power`` (the
default; vocabulary at the top of ``ups-mib.yaml``) GETs scalars into one
``PowerReading``; ``kind: interfaces`` (vocabulary at the top of ``if-mib-router.yaml``)
walks table columns into one ``InterfaceReading`` per row. Loading is strict: an
unknown key, a wrong type or a name that is not a wire field fails with the key and
the fix. The value vocabulary (``ValueSpec``, ``Condition``, ``Derivation``) and the
pure decoding live in :mod:`agent.profile_decode`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, Field, PrivateAttr, StringConstraints, ValidationError
from pydantic import model_validator as _model_validator

from agent.profile_decode import (
    _ORDERING,
    Condition,
    Derivation,
    Invalid,
    Name,
    RawValue,
    Value,
    ValueSpec,
    _Strict,
)
from agent.wire import SLUG_PATTERN, InterfaceReading, PowerReading

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
    "table_columns",
]

PROFILES_DIR = Path(__file__).parents[1] / "firmware-configs" / "profiles"
ProfileName = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=64)]


def _wire_kind(annotation: Any) -> Any:
    """bool, int, float, str, or the frozenset of allowed words, for one wire field."""
    (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(inner) is Annotated:
        inner = typing.get_args(inner)[0]
    return frozenset(typing.get_args(inner)) if typing.get_origin(inner) is Literal else inner


def _wire_kinds(model: type[BaseModel], *identity: str) -> dict[str, Any]:
    # Read from the wire contract itself so profiles and wire cannot drift apart.
    return {n: _wire_kind(f.annotation) for n, f in model.model_fields.items() if n not in identity}


POWER_KINDS = _wire_kinds(PowerReading, "device", "profile", "error")
INTERFACE_KINDS = _wire_kinds(InterfaceReading, "device", "port", "error")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the fix."""


class ProfileTest(_Strict):
    """What tests/test_profile_catalogue.py expects when it polls the profile's recording."""

    absent: tuple[str, ...] = ()  # readings the recorded model does not serve (null)
    rows: Annotated[int, Field(ge=0)] | None = None  # interfaces the filters keep


class PortLabel(_Strict):
    """The port slug: the first non-empty text value of ``from``, else ``prefix`` + row index."""

    from_: tuple[Name, ...] = Field(default=(), alias="from")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,15}$")] = "if"


def _check_spec(where: str, kind: Any, spec: ValueSpec) -> None:
    if kind is str:
        if spec.scale != 1 or spec.offset != 0 or spec.enum is not None:
            raise ValueError(f"{where}: a text field takes no scale, offset or enum; remove them")
        return
    if spec.text:
        raise ValueError(f"{where}: not a text field; remove text: true")
    if kind in (int, float):
        if spec.enum is not None:
            raise ValueError(f"{where}: a number takes scale/offset, not enum; remove enum")
        return
    words = sorted(kind) if isinstance(kind, frozenset) else [True, False]
    if spec.enum is None:
        raise ValueError(f"{where}: map the raw values onto {words} with enum (or use derive)")
    for raw, value in spec.enum.items():
        if not (value in kind if isinstance(kind, frozenset) else isinstance(value, bool)):
            raise ValueError(f"{where}.enum.{raw}: {value!r} is not one of {words}")


def _check_conditions(
    where: str, conditions: Sequence[Condition], known: Mapping[str, Any]
) -> None:
    for cond in conditions:
        target = known.get(cond.value)
        if target is None:
            raise ValueError(
                f"{where}: {cond.value!r} is neither a reading nor a source; use one of "
                + ", ".join(known)
            )
        if target.enum is not None and cond.operator in _ORDERING:
            raise ValueError(f"{where}: {cond.value} has an enum; use eq, ne or in")
        if cond.operator == "match" and not target.text:
            raise ValueError(f"{where}: match needs a text value; add text: true to {cond.value}")


def _check_fields(profile: _Profile, section: str, kinds: dict[str, Any], model: str) -> None:
    """Shared checks: names fit the wire, derivations fit their fields, conditions resolve."""
    fields: dict[str, ValueSpec] = getattr(profile, section)
    for name, spec in fields.items():
        if name not in kinds:
            raise ValueError(f"{section}.{name}: not {model} field; use one of {', '.join(kinds)}")
        _check_spec(f"{section}.{name}", kinds[name], spec)
    for name in profile.sources.keys() & fields.keys():
        raise ValueError(f"sources.{name}: also under {section}; rename the source")
    # A wire text field (the interface name) is text even without `text: true`.
    known = {
        **profile.sources,
        **{n: s.model_copy(update={"text": kinds[n] is str}) for n, s in fields.items()},
    }
    for name, derivation in profile.derive.items():
        wanted = int if derivation.count_ is not None else bool
        if kinds.get(name) is not wanted:
            what = (
                "count fields (alarms_count…)" if wanted is int else "yes/no fields (on_battery…)"
            )
            raise ValueError(f"derive.{name}: this combinator gives {what} only")
        if name in fields:
            raise ValueError(f"derive.{name}: also under {section}; keep one of the two")
        _check_conditions(f"derive.{name}", derivation.conditions, known)
    for name in profile.test.absent:
        if name not in fields and name not in profile.derive:
            raise ValueError(f"test.absent: {name!r} is not a reading of this profile; remove it")
    profile._known = known


class _Profile(_Strict):
    profile: ProfileName
    description: str
    mib: str | None = None
    sources: dict[Name, ValueSpec] = Field(default_factory=dict)
    derive: dict[str, Derivation] = Field(default_factory=dict)
    test: ProfileTest = ProfileTest()
    _known: dict[str, ValueSpec] = PrivateAttr(default_factory=dict)


class Profile(_Profile):
    """A power device: scalars GET in one request, decoded into one ``PowerReading``."""

    wire_kinds: ClassVar[dict[str, Any]] = POWER_KINDS
    kind: Literal["power"] = "power"
    readings: dict[str, ValueSpec]

    @_model_validator(mode="after")
    def _names_fit_the_wire(self) -> Profile:
        _check_fields(self, "readings", POWER_KINDS, "a PowerReading")
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
        _check_fields(self, "columns", INTERFACE_KINDS, "an InterfaceReading")
        for name in self.port.from_:
            if name not in self._known or not self._known[name].text:
                raise ValueError(f"port.from: {name!r} is not a text column or source (text: true)")
        for key, rule in (("include", self.include), ("exclude", self.exclude)):
            if rule is not None and rule.count_ is not None:
                raise ValueError(f"{key}: use any or all; count does not select rows")
            if rule is not None:
                _check_conditions(key, rule.conditions, self._known)
        return self


AnyProfile = Profile | InterfaceProfile
_KINDS: dict[str, type[Profile] | type[InterfaceProfile]] = {
    "power": Profile,
    "interfaces": InterfaceProfile,
}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolve `<<` merges first, as SafeLoader does
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader itself refuses unhashable keys, with a clear message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "missing":
            lines.append(f"{where}: required key missing; add it")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = "" if isinstance(err["input"], dict) else f" (got {err['input']!r})"
            lines.append(f"{where}: {msg}{got}")
    return "\n  ".join(lines)


def load_profile(path: Path | str) -> AnyProfile:
    """Load and validate one profile file; raise ProfileError naming the key and the fix."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"{path}{at}: not valid YAML: {problem}; fix the syntax there") from exc
    if not isinstance(data, dict):
        raise ProfileError(
            f"{path}: a profile is a YAML mapping with keys profile, description,"
            f" readings (got {type(data).__name__})"
        )
    if "kind" not in data and "columns" in data:
        raise ProfileError(f"{path}: columns are walked in a table profile; add kind: interfaces")
    model = _KINDS.get(str(data.get("kind", "power")))
    if model is None:
        raise ProfileError(f"{path}: kind {data['kind']!r}: use one of {', '.join(_KINDS)}")
    try:
        profile = model.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{path}: invalid profile:\n  {_describe(exc)}") from None
    if profile.profile != path.stem:
        raise ProfileError(
            f"{path}: key 'profile' is {profile.profile!r} but the file is"
            f" {path.name}; make them the same (devices name profiles by file)"
        )
    return profile


def load_profile_by_name(name: str, search_dirs: Sequence[Path] | None = None) -> AnyProfile:
    """Load ``<name>.yaml`` from the first of search_dirs that has it (default PROFILES_DIR)."""
    dirs = [Path(d) for d in search_dirs] if search_dirs is not None else [PROFILES_DIR]
    if not re.fullmatch(SLUG_PATTERN, name):
        raise ProfileError(f"profile name {name!r} is not a slug like 'ups-mib'; fix the device")
    for directory in dirs:
        if (directory / f"{name}.yaml").is_file():
            return load_profile(directory / f"{name}.yaml")
    # <name>.modbus.yaml and the like are other protocols' profiles, in the same folder.
    known = sorted(
        {p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml") if "." not in p.stem}
    )
    raise ProfileError(
        f"no profile {name!r} in {', '.join(map(str, dirs))} (known:"
        f" {', '.join(known) or 'none'}); add {name}.yaml or name a known one"
    )


def oids(profile: Profile) -> list[str]:
    """The OID instances to GET for a power profile, each once, in profile order."""
    specs = [*profile.sources.values(), *profile.readings.values()]
    return list(dict.fromkeys(spec.instance_oid for spec in specs))


def table_columns(profile: InterfaceProfile) -> list[str]:
    """The column OIDs to walk for an interface profile, each once, in profile order."""
    specs = [*profile.sources.values(), *profile.columns.values()]
    return list(dict.fromkeys(spec.oid for spec in specs))
