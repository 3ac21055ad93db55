"""What the profile vocabularies share (SNMP :mod:`agent.profiles`, :mod:`agent.modbus_profile`,
:mod:`agent.room_profiles`): strict models and YAML, one file per profile named after it,
and errors that name the file, the key and the fix.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from contract.wire import SLUG_PATTERN

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class Strict(BaseModel):
    """Frozen, finite numbers only, and an unknown key named with the keys allowed there."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # extra="forbid" alone says "Extra inputs are not permitted"; name the allowed keys.
        if isinstance(data, dict):
            allowed = sorted(f.alias or n for n, f in cls.model_fields.items())
            for key in data:
                if key not in allowed:
                    raise ValueError(f"unknown key {key!r}; allowed here: {', '.join(allowed)}")
        return data


class ProfileDocument(Strict):
    """The keys every profile file starts with; ``profile`` is also the file's name."""

    profile: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=64)]
    description: str


class Invalid(Strict):
    """Raw values that mean "unknown" (checked before scale and enum); 65535 equals 65535.0.

    ``equals`` may hold words too: text a device answers for "no value" (NUT's ``WAIT``).
    """

    equals: tuple[int | float | str, ...] = ()
    below: float | None = None
    above: float | None = None

    def rejects(self, raw: float) -> bool:
        below = self.below is not None and raw < self.below
        return raw in self.equals or below or (self.above is not None and raw > self.above)

    @property
    def bounds(self) -> bool:
        """Whether it has a numeric bound (below/above), which text cannot have."""
        return self.below is not None or self.above is not None


def wire_kinds(model: type[BaseModel], *identity: str) -> dict[str, Any]:
    """bool, int, float, str or the set of allowed words, per field of the wire model itself."""
    kinds: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in identity:
            (inner,) = [a for a in typing.get_args(field.annotation) if a is not type(None)]
            if typing.get_origin(inner) is Annotated:
                inner = typing.get_args(inner)[0]
            is_words = typing.get_origin(inner) is Literal
            kinds[name] = frozenset(typing.get_args(inner)) if is_words else inner
    return kinds


def check_enum(where: str, kind: Any, enum: Mapping[Any, Any] | None) -> None:
    """A number takes no enum; a yes/no or word field needs an enum onto its values."""
    if kind in (int, float):
        if enum is not None:
            raise ValueError(f"{where}: a number takes scale/offset, not enum; remove enum")
        return
    words = sorted(kind) if isinstance(kind, frozenset) else [True, False]
    if enum is None:
        raise ValueError(f"{where}: map the raw values onto {words} with enum (or use derive)")
    for raw, value in enum.items():
        if not (value in kind if isinstance(kind, frozenset) else isinstance(value, bool)):
            raise ValueError(f"{where}.enum.{raw}: {value!r} is not one of {words}")


class StrictLoader(yaml.SafeLoader):
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


def describe(exc: ValidationError) -> str:
    """One line per problem, ``key.path: message (got VALUE)``, joined for an indented list."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "missing":
            lines.append(f"{where}: required key missing; add it")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        got = "" if isinstance(err["input"], dict | list) else f" (got {err['input']!r})"
        lines.append(f"{where}: {msg}{got}")
    return "\n  ".join(lines)


P = TypeVar("P", bound=ProfileDocument)
Fail = Callable[[str], Exception]


def load_profile_file(
    path: Path | str,
    model_or_chooser: type[P] | Callable[[dict[Any, Any]], type[P]],
    error_cls: Fail,
    *,
    what: str,
    suffix: str,
) -> P:
    """Read, validate, name-check one file; a chooser picks the model (ValueError: why not)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)
    except OSError as exc:
        raise error_cls(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error_cls(f"{path}{at}: not valid YAML: {problem}; fix the syntax there") from None
    if not isinstance(data, dict):
        raise error_cls(
            f"{path}: a {what} is a YAML mapping with keys profile, description and the"
            f" rest of its vocabulary (got {type(data).__name__})"
        )
    try:
        if isinstance(model_or_chooser, type):
            model = typing.cast("type[P]", model_or_chooser)  # mypy narrows it to plain `type`
        else:
            model = model_or_chooser(data)
    except ValueError as exc:
        raise error_cls(f"{path}: {exc}") from None
    try:
        profile = model.model_validate(data)
    except ValidationError as exc:
        raise error_cls(f"{path}: invalid {what}:\n  {describe(exc)}") from None
    if path.name != f"{profile.profile}{suffix}":
        raise error_cls(
            f"{path}: key 'profile' is {profile.profile!r} but the file is {path.name} (it must"
            f" be named {profile.profile}{suffix}); make them the same (devices name profiles"
            " by file)"
        )
    return profile


def find_profile(
    name: str,
    dirs: Iterable[Path | str],
    *,
    suffix: str,
    error_cls: Fail,
    load: Callable[[Path], P],
    example: str,
    what: str = "profile",
) -> P:
    """Load ``<name><suffix>`` from the first of dirs that has it."""
    folders = [Path(d) for d in dirs]
    if not re.fullmatch(SLUG_PATTERN, name):
        raise error_cls(f"{what} name {name!r} is not a slug like {example!r}; fix the config")
    for folder in folders:
        if (folder / f"{name}{suffix}").is_file():
            return load(folder / f"{name}{suffix}")
    # <name>.modbus.yaml and the like are other protocols' profiles, in the same folder.
    stems = {
        p.name.removesuffix(suffix) for d in folders if d.is_dir() for p in d.glob(f"*{suffix}")
    }
    known = sorted(stem for stem in stems if "." not in stem)
    raise error_cls(
        f"no {what} {name!r} in {', '.join(map(str, folders))} (known:"
        f" {', '.join(known) or 'none'}); add {name}{suffix} or name a known one"
    )
