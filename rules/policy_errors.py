"""Policy errors that say what to fix: the key path, the bad value and the fix.

``PolicyError(ValueError)`` carries ``source`` and ``problems`` (one ``Problem`` per
bad key); ``problems_from`` turns a pydantic ``ValidationError`` into problems,
suggesting the nearest known key for a typo.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    value: object
    message: str
    fix: str

    def __str__(self) -> str:
        value = "" if self.value is MISSING else f" = {self.value!r}"
        return f"{self.key}{value}: {self.message}; fix: {self.fix}"


MISSING: object = object()  # a problem with no value to show


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` lists each bad key."""

    def __init__(self, source: str, problems: tuple[Problem, ...]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"policy {source} is not valid:\n{lines}")


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        inner = None if info is None else _model_in(info.annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


_TYPE_FIXES = {
    "float": "write a number",
    "int": "write a whole number",
    "bool": "write true or false",
    "string": "write a text value",
    "list": "write a list, e.g. [a, b]",
    "tuple": "write a list, e.g. [a, b]",
    "dict": "write a mapping of key: value",
    "model": "write a mapping of key: value",
}


def _problem(error: ErrorDetails, root: type[BaseModel]) -> Problem:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = error["type"]
    message = error["msg"]
    value = error.get("input", MISSING)
    if kind == "extra_forbidden":
        known = _keys_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
        return Problem(key, value, "unknown key", f"{hint} (known keys: {', '.join(known)})")
    if kind == "missing":
        return Problem(key, MISSING, "required key is missing", "add it")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return Problem(key, value, "not an allowed value", f"use one of {expected}")
    if kind.endswith("_parsing") or kind.endswith("_type"):
        expected = kind.split("_")[0]
        return Problem(key, value, message, _TYPE_FIXES.get(expected, "write the expected type"))
    if kind == "value_error":
        text, _, fix = message.removeprefix("Value error, ").partition("; fix: ")
        return Problem(key, MISSING, text, fix or "see the message")
    if message.startswith("Input should be "):
        return Problem(
            key, value, message, "use a value " + message.removeprefix("Input should be ")
        )
    return Problem(key, value, message, "see the message")


def problems_from(exc: ValidationError, root: type[BaseModel]) -> tuple[Problem, ...]:
    return tuple(_problem(error, root) for error in exc.errors())
