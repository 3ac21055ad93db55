"""Room profiles: where a video codec's HTTP API says what a meeting needs, and decoding it.

A profile is data (``firmware-configs/room-profiles/<name>.yaml``; the vocabulary is
described at the top of ``cisco-roomos.yaml``): which documents to GET under the
codec's URL, their format (xml or json), and for each ``RoomReading`` field a test on a
path in a document, or ``any``/``all`` of several. Loading is strict: an unknown key, a
wrong type or a name that is not a reading fails with the key and the fix. ``decode``
is pure: documents in, a ``RoomReading`` out. A value not found is null; a malformed
document gives an error reading, never an exception.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from agent.profile_files import ProfileDocument, Strict, find_profile, load_profile_file
from contract.wire import RoomReading
from plumbing.data import firmware_configs

ROOM_PROFILES_DIR = firmware_configs() / "room-profiles"
READINGS = tuple(name for name in RoomReading.model_fields if name != "error")

_STEP = r"(\*|@?[A-Za-z_][A-Za-z0-9_.:-]*)"
PathExpr = Annotated[str, StringConstraints(pattern=rf"^{_STEP}(/{_STEP})*$", max_length=300)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]
Scalar = str | int | float | bool
Tri = bool | None


class RoomProfileError(ValueError):
    """A room profile that cannot be used; the message names the file, the key and the fix."""


class Rule(Strict):
    """A test on one path of one document, or ``any``/``all`` of several rules."""

    any_: tuple[Rule, ...] | None = Field(default=None, alias="any", min_length=1)
    all_: tuple[Rule, ...] | None = Field(default=None, alias="all", min_length=1)
    path: PathExpr | None = None
    document: Name | None = None
    exists: bool | None = None
    equals: Scalar | tuple[Scalar, ...] | None = None
    above: float | None = None
    below: float | None = None
    unknown: tuple[Scalar, ...] = ()
    match: Literal["any", "all"] = "any"
    missing: bool | None = None

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        given = self.model_fields_set
        if {"any_", "all_"} & given:
            if len(given) > 1:
                raise ValueError("a rule is any, all, or a test on a path; split it in two")
            return self
        if self.path is None:
            raise ValueError("give path (a test) or any/all (a combination of rules)")
        tests = [k for k in ("exists", "equals", "above", "below") if getattr(self, k) is not None]
        if len(tests) != 1:
            raise ValueError(
                f"give exactly one of exists, equals, above, below (got"
                f" {', '.join(tests) or 'none'})"
            )
        idle = [k for k in ("unknown", "match", "missing") if k in given]
        if self.exists is not None and idle:
            raise ValueError(f"{', '.join(idle)} mean nothing with exists; remove them")
        if any(step.startswith("@") for step in self.path.split("/")[:-1]):
            raise ValueError(f"path {self.path!r}: an @attribute can only be the last step")
        return self

    @property
    def parts(self) -> tuple[Rule, ...]:
        return self.any_ or self.all_ or ()

    @property
    def wanted(self) -> tuple[Scalar, ...]:
        if self.equals is None:
            return ()
        return self.equals if isinstance(self.equals, tuple) else (self.equals,)

    def tests(self, where: str) -> Iterator[tuple[str, Rule]]:
        """Every test under this rule, with where it is (``readings.camera_ok.any.0``)."""
        if self.path is not None:
            yield where, self
        for index, part in enumerate(self.parts):
            yield from part.tests(f"{where}.{'any' if self.any_ else 'all'}.{index}")


class Document(Strict):
    """One GET under the codec's URL; ``expect`` names a path every genuine answer has."""

    path: Annotated[str, StringConstraints(pattern=r"^(/[^\s#]*)?$", max_length=300)]
    expect: PathExpr | None = None


class RoomProfile(ProfileDocument):
    """A codec family: the documents to GET and how each reading is found in them."""

    format: Literal["xml", "json"]
    documents: dict[Name, Document] = Field(min_length=1)
    readings: dict[str, Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _fits(self) -> RoomProfile:
        for name in self.readings:
            if name not in READINGS:
                raise ValueError(
                    f"readings.{name}: not a RoomReading field; use one of " + ", ".join(READINGS)
                )
        docs = ", ".join(self.documents)
        for field, rule in self.readings.items():
            for where, test in rule.tests(f"readings.{field}"):
                if test.document is not None and test.document not in self.documents:
                    raise ValueError(
                        f"{where}.document: {test.document!r} is not a document of"
                        f" this profile; use one of {docs}"
                    )
                self._check_format(where, test.path or "", (*test.wanted, *test.unknown))
        for name, doc in self.documents.items():
            if doc.expect is not None:
                self._check_format(f"documents.{name}.expect", doc.expect, ())
        return self

    def _check_format(self, where: str, path: str, values: tuple[Scalar | None, ...]) -> None:
        if self.format == "json" and "@" in path:
            raise ValueError(f"{where}: @attributes exist in xml only; name the json key")
        if self.format == "xml" and any(isinstance(v, bool) for v in values):
            # YAML reads True, On, Yes as booleans; xml values are always text.
            raise ValueError(f'{where}: xml values are text; quote them (equals: "True", "On")')

    @property
    def first_document(self) -> str:
        return next(iter(self.documents))


# --- decoding: pure, no I/O ---------------------------------------------------------


class _Malformed(ValueError):
    pass


def _parse(fmt: str, raw: bytes) -> Any:
    if fmt == "json":
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise _Malformed(f"not valid JSON ({str(exc)[:120]})") from None
    if re.search(rb"<!DOCTYPE", raw, re.IGNORECASE):
        # Entity declarations can expand without bound; a codec's status never needs one.
        raise _Malformed("an XML document with a DOCTYPE is refused")
    try:
        return ET.fromstring(raw)
    except ET.ParseError as exc:
        raise _Malformed(f"not well-formed XML ({exc})") from None


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _flat(nodes: Sequence[Any]) -> list[Any]:
    # A JSON list stands for repeated elements, as in XML: a step visits every item.
    return [item for node in nodes for item in (node if isinstance(node, list) else [node])]


def _find(fmt: str, root: Any, path: str) -> list[Any]:
    first, *rest = path.split("/")
    if fmt == "json":
        nodes = _flat([root])
        for step in (first, *rest):
            found: list[Any] = []
            for node in nodes:
                if isinstance(node, dict):
                    found.extend(
                        node.values() if step == "*" else [node[step]] if step in node else []
                    )
            nodes = _flat(found)
        return nodes
    nodes = [root] if first in ("*", _local(root.tag)) else []
    for step in rest:
        if step.startswith("@"):
            nodes = [n.get(step[1:]) for n in nodes if n.get(step[1:]) is not None]
        else:
            nodes = [c for n in nodes for c in n if step in ("*", _local(c.tag))]
    return nodes


def _text(node: Any) -> str | None:
    """The comparable text of a found value; None for containers and JSON null."""
    if isinstance(node, ET.Element):
        return (node.text or "").strip() if len(node) == 0 else None
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int | float | str):
        return str(node).strip()
    return None


def _norm(value: Scalar) -> str:
    return (("true" if value else "false") if isinstance(value, bool) else str(value)).casefold()


def _passes(test: Rule, text: str) -> Tri:
    if test.equals is not None:
        return text.casefold() in {_norm(v) for v in test.wanted}
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if test.above is not None:
        return number > test.above
    assert test.below is not None  # the validator asked for exactly one test
    return number < test.below


def _any(results: Sequence[Tri]) -> Tri:
    return True if True in results else None if None in results else False


def _all(results: Sequence[Tri]) -> Tri:
    return False if False in results else None if None in results else True


def _judge(test: Rule, found: list[Any]) -> Tri:
    if test.exists is not None:
        return bool(found) == test.exists
    if not found:
        return test.missing
    unknown = {_norm(v) for v in test.unknown}
    results: list[Tri] = []
    for node in found:
        text = _text(node)
        known = text is not None and text.casefold() not in unknown
        results.append(_passes(test, text) if known and text is not None else None)
    return _any(results) if test.match == "any" else _all(results)


def _evaluate(profile: RoomProfile, rule: Rule, parsed: Mapping[str, Any]) -> Tri:
    if rule.path is not None:
        document = rule.document or profile.first_document
        if document not in parsed:
            return None  # no document, no answer: unknown even where `missing` is set
        return _judge(rule, _find(profile.format, parsed[document], rule.path))
    results = [_evaluate(profile, part, parsed) for part in rule.parts]
    return _any(results) if rule.any_ else _all(results)


def decode(profile: RoomProfile, documents: Mapping[str, bytes]) -> RoomReading:
    """The room as the codec's documents describe it; documents absent here read unknown."""
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for name, doc in profile.documents.items():
        if name not in documents:
            continue  # the caller knows (and says) why it has none
        try:
            root = _parse(profile.format, documents[name])
        except _Malformed as exc:
            problems.append(f"{name}: {exc}")
            continue
        if doc.expect is not None and not _find(profile.format, root, doc.expect):
            problems.append(f"{name}: no {doc.expect} in the answer; is it a {profile.profile}?")
            continue
        parsed[name] = root
    values: dict[str, Tri] = {
        field: _evaluate(profile, rule, parsed) for field, rule in profile.readings.items()
    }
    # An answer proves the codec is reachable, unless the profile reads that from a relay's
    # document (a cloud health API answers for a device that may be offline).
    answered = any(name in documents for name in profile.documents)
    values.setdefault("codec_reachable", True if answered else None)
    error = "; ".join(problems)[:500] or None
    return RoomReading(error=error, **values)


# --- loading ------------------------------------------------------------------------


def load_room_profile(path: Path | str) -> RoomProfile:
    """Load and validate one room profile; raise RoomProfileError naming the key and the fix."""
    return load_profile_file(
        path, RoomProfile, RoomProfileError, what="room profile", suffix=".yaml"
    )


def load_room_profile_by_name(name: str, search_dirs: Sequence[Path] | None = None) -> RoomProfile:
    """Load ``<name>.yaml`` from the first search dir that has it (default ROOM_PROFILES_DIR)."""
    return find_profile(
        name,
        search_dirs if search_dirs is not None else [ROOM_PROFILES_DIR],
        suffix=".yaml",
        error_cls=RoomProfileError,
        load=load_room_profile,
        example="cisco-roomos",
        what="room profile",
    )
