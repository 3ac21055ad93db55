"""Config loading that fails at start with the key, the bad value and the fix.

Shared by the agent, the collector and the policy loader: every YAML config in
kienco is a pydantic model loaded through :func:`load_yaml_model`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# What to do about the commonest pydantic error types, in words an operator can act on.
_FIXES: dict[str, str] = {
    "extra_forbidden": "remove it, or check its spelling against the documented keys",
    "missing": "add this key",
    "string_pattern_mismatch": "use a lowercase slug: letters a-z, digits, '.', '_' or '-'",
    "literal_error": "use one of the allowed values",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "int_type": "use a whole number",
    "float_type": "use a number",
    "bool_type": "use true or false",
    "string_type": "use text (quote it in YAML)",
    "url_parsing": "use a URL like mqtt://host:1883",
    "too_short": "add at least one",
}


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is the whole message for the operator."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid configuration\n{lines}")


def check_url(value: str, *schemes: str, port: str = "port") -> str:
    """``value`` if it is a URL of one of ``schemes`` with a host; ValueError saying the forms."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError("use " + " or ".join(f"{scheme}://host:{port}" for scheme in schemes))
    if parts.username is not None or parts.password is not None:
        # Nothing logs in with them, and the url is logged: a password there would be printed.
        raise ValueError(
            "a url carries no user or password here (they are not used to log in, and the url "
            "is logged). Fix: remove them from the url; give 'username' and "
            "'password: {file: …}' beside it"
        )
    return value


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem: ``key.path: message (got VALUE). Fix: …``."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"]
        fix = _FIXES.get(err["type"], "")
        got = "" if err["type"] == "missing" else f" (got {_short(err.get('input'))})"
        problems.append(f"{loc}: {message}{got}" + (f". Fix: {fix}" if fix else ""))
    return problems


# "scheme://user:password@" in a value shown back: the password never is.
_URL_PASSWORD = re.compile(r"(://[^/@\s]*?:)[^/@\s]*@")


def _short(value: Any) -> str:
    text = _URL_PASSWORD.sub(r"\1<secret>@", repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read ``path`` as YAML and validate it as ``model``; raise ConfigError on any problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    return parse_yaml_model(text, model, source=source)


def parse_yaml_model(text: str, model: type[M], *, source: str) -> M:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["the top level must be a mapping of keys to values"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_validation_error(exc)) from None
