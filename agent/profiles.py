"""Device profiles: which OIDs a device model exposes and how each becomes a reading.

A profile is data (``firmware-configs/profiles/<name>.yaml``; the vocabulary is
described at the top of ``ups-mib.yaml``). Loading is strict: an unknown key, a
wrong type or a name that is not a ``PowerReading`` field fails with the key and
the fix. ``decode`` is pure: a GET answer in, a ``PowerReading`` out.
"""

from __future__ import annotations

import math
import operator
import re
import typing
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic import field_validator as _field_validator
from pydantic import model_validator as _model_validator

from agent.wire import SLUG_PATTERN, PowerReading

PROFILES_DIR = Path(__file__).parents[1] / "firmware-configs" / "profiles"

RawValue = int | float | str | bytes | None
"""A value as the transport hands it over; None is missing/noSuchObject/noSuchInstance."""
Value = int | float | str | bool


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the fix."""


def _wire_kind(annotation: Any) -> Any:
    """bool, int, float, or the frozenset of allowed words, for one PowerReading field."""
    (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(inner) is Annotated:
        inner = typing.get_args(inner)[0]
    return frozenset(typing.get_args(inner)) if typing.get_origin(inner) is Literal else inner


# What each PowerReading field holds, read from the wire contract so the two cannot drift.
_WIRE_KINDS: dict[str, Any] = {
    name: _wire_kind(field.annotation)
    for name, field in PowerReading.model_fields.items()
    if name not in ("device", "profile", "error")
}
_ORDERING = ("gt", "ge", "lt", "le")
_OPERATORS = {op: getattr(operator, op) for op in ("eq", "ne", *_ORDERING)}

Oid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)+$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @_model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # extra="forbid" alone says "Extra inputs are not permitted"; name the allowed keys.
        if isinstance(data, dict):
            allowed = sorted(f.alias or n for n, f in cls.model_fields.items())
            for key in data:
                if key not in allowed:
                    raise ValueError(f"unknown key {key!r}; allowed here: {', '.join(allowed)}")
        return data


class Invalid(_Strict):
    """Raw values that mean "unknown" (checked before scale and enum)."""

    equals: tuple[float, ...] = ()
    below: float | None = None
    above: float | None = None

    def rejects(self, raw: float) -> bool:
        below = self.below is not None and raw < self.below
        return raw in self.equals or below or (self.above is not None and raw > self.above)


class ValueSpec(_Strict):
    """How one OID instance becomes one value: ``raw * scale + offset``, or ``enum[raw]``."""

    oid: Oid
    index: str = "0"
    object: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    enum: dict[int | str, str | bool] | None = None
    invalid: Invalid = Invalid()

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

    @property
    def instance_oid(self) -> str:
        return f"{self.oid}.{self.index}"


class Condition(_Strict):
    """``{value: NAME, OP: OPERAND}`` with exactly one of eq, ne, gt, ge, lt, le."""

    value: Name
    eq: int | float | bool | str | None = None
    ne: int | float | bool | str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @_model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in _OPERATORS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of eq, ne, gt, ge, lt, le (got {given or 'none'})")
        return self

    @property
    def operator(self) -> str:
        return next(op for op in _OPERATORS if getattr(self, op) is not None)

    def holds(self, value: Value | None) -> bool | None:
        """True/False, or None when the value is unknown (or not a number to order)."""
        op = self.operator
        if value is None or (op in _ORDERING and not _is_number(value)):
            return None
        return bool(_OPERATORS[op](value, getattr(self, op)))


class Derivation(_Strict):
    """A yes/no field from conditions: ``any`` (or) or ``all`` (and), unknown-aware."""

    any_: tuple[Condition, ...] | None = Field(default=None, alias="any", min_length=1)
    all_: tuple[Condition, ...] | None = Field(default=None, alias="all", min_length=1)

    @_model_validator(mode="after")
    def _one_combinator(self) -> Derivation:
        if (self.any_ is None) == (self.all_ is None):
            raise ValueError("give exactly one of any (or) and all (and), a list of conditions")
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.any_ or self.all_ or ()

    def evaluate(self, values: Mapping[str, Value | None]) -> bool | None:
        results = [c.holds(values.get(c.value)) for c in self.conditions]
        # Kleene logic: one known True decides `any`, one known False decides `all`;
        # otherwise an unknown input leaves the answer unknown.
        decisive = self.any_ is not None
        if decisive in results:
            return decisive
        return None if None in results else not decisive


class Profile(_Strict):
    """One device model: readings (wire fields), sources (helpers) and derivations."""

    profile: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=64)]
    description: str
    mib: str | None = None
    readings: dict[str, ValueSpec]
    sources: dict[Name, ValueSpec] = {}
    derive: dict[str, Derivation] = {}

    @_model_validator(mode="after")
    def _names_fit_the_wire(self) -> Profile:
        for name, spec in self.readings.items():
            if name not in _WIRE_KINDS:
                raise ValueError(
                    f"readings.{name}: not a PowerReading field; use one of "
                    + ", ".join(_WIRE_KINDS)
                )
            _check_enum(f"readings.{name}", _WIRE_KINDS[name], spec)
        for name in self.derive:
            if _WIRE_KINDS.get(name) is not bool:
                raise ValueError(f"derive.{name}: derive gives yes/no fields only (on_battery…)")
            if name in self.readings:
                raise ValueError(f"derive.{name}: also under readings; keep one of the two")
        for name in self.sources.keys() & self.readings.keys():
            raise ValueError(f"sources.{name}: also a reading; rename the source")
        known = {**self.sources, **self.readings}
        for name, derivation in self.derive.items():
            for cond in derivation.conditions:
                target = known.get(cond.value)
                if target is None:
                    raise ValueError(
                        f"derive.{name}: {cond.value!r} is neither a reading nor"
                        f" a source; use one of {', '.join(known)}"
                    )
                if target.enum is not None and cond.operator in _ORDERING:
                    raise ValueError(f"derive.{name}: {cond.value} has an enum; use eq or ne")
        return self


def _check_enum(where: str, kind: Any, spec: ValueSpec) -> None:
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


def load_profile(path: Path | str) -> Profile:
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
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{path}: invalid profile:\n  {_describe(exc)}") from None
    if profile.profile != path.stem:
        raise ProfileError(
            f"{path}: key 'profile' is {profile.profile!r} but the file is"
            f" {path.name}; make them the same (devices name profiles by file)"
        )
    return profile


def load_profile_by_name(name: str, search_dirs: Sequence[Path] | None = None) -> Profile:
    """Load ``<name>.yaml`` from the first of search_dirs that has it (default PROFILES_DIR)."""
    dirs = [Path(d) for d in search_dirs] if search_dirs is not None else [PROFILES_DIR]
    if not re.fullmatch(SLUG_PATTERN, name):
        raise ProfileError(f"profile name {name!r} is not a slug like 'ups-mib'; fix the device")
    for directory in dirs:
        if (directory / f"{name}.yaml").is_file():
            return load_profile(directory / f"{name}.yaml")
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ProfileError(
        f"no profile {name!r} in {', '.join(map(str, dirs))} (known:"
        f" {', '.join(known) or 'none'}); add {name}.yaml or name a known one"
    )


def oids(profile: Profile) -> list[str]:
    """The OID instances to GET for this profile, each once, in profile order."""
    specs = [*profile.sources.values(), *profile.readings.values()]
    return list(dict.fromkeys(spec.instance_oid for spec in specs))


def _decode_value(spec: ValueSpec, raw: RawValue) -> Value | None:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
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


def _to_wire(name: str, value: Value | None) -> Value | None:
    kind = _WIRE_KINDS[name]
    if value is None or kind is bool or isinstance(kind, frozenset):
        return value  # enum values were checked against the field at load time
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return round(value) if kind is int else float(value)


def decode(profile: Profile, device_id: str, varbinds: Mapping[str, RawValue]) -> PowerReading:
    """Turn one GET answer (OID -> value) into a PowerReading. Pure: no I/O, no clock."""
    answer = {oid.lstrip("."): value for oid, value in varbinds.items()}
    values = {
        name: _decode_value(spec, answer.get(spec.instance_oid))
        for name, spec in (*profile.sources.items(), *profile.readings.items())
    }
    fields = {name: _to_wire(name, values[name]) for name in profile.readings}
    for name, derivation in profile.derive.items():
        fields[name] = derivation.evaluate(values)
    base = {"device": device_id, "profile": profile.profile}
    try:
        return PowerReading.model_validate({**base, **fields})
    except ValidationError as exc:
        # A value the wire refuses as absurd (charge 250 %) is unknown, not a failed device.
        bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in fields}
        if not bad:
            raise
        kept = {name: (None if name in bad else value) for name, value in fields.items()}
        return PowerReading.model_validate({**base, **kept})
