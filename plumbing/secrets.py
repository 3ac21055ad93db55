"""Secrets referenced from config: inline, from an environment variable, or from a file.

A secret never prints: ``repr`` and ``str`` show ``<secret>``, and so do config dumps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

REDACTED = "<secret>"


class SecretRef(BaseModel):
    """Exactly one of ``value`` (inline), ``env`` (variable name) or ``file`` (path)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: SecretStr | None = None
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("value", "env", "file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'value', 'env' (an environment variable name) or "
                f"'file' (a path whose content is the secret); got {given or 'none'}"
            )
        return self

    def reveal(self) -> str:
        """The secret itself; raises ValueError naming the variable or file when it is absent."""
        if self.value is not None:
            return self.value.get_secret_value()
        if self.env is not None:
            found = os.environ.get(self.env)
            if found is None:
                raise ValueError(f"environment variable {self.env} is not set")
            return found
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from None

    def __repr__(self) -> str:
        where = f"env={self.env}" if self.env else f"file={self.file}" if self.file else REDACTED
        return f"SecretRef({where})"

    __str__ = __repr__


_FIX_FILE = (
    "Fix: create it, readable by the user this runs as (under systemd, LoadCredential= in "
    "the unit hands a file only root reads over in /run/credentials/<unit>/)"
)
_FIX_ENV = "Fix: set it in this process's environment (under systemd, Environment= or a drop-in)"


def unreadable_secrets(value: Any, key: str = "") -> list[str]:
    """Every secret in a loaded config (a model, nested) that cannot be read now, one line
    each, ``key: why. Fix: …``: for a command to refuse to start on, naming the key, rather
    than fail where the secret is first used."""
    if isinstance(value, SecretRef):
        try:
            value.reveal()
        except ValueError as exc:
            return [f"{key}: {exc}. {_FIX_FILE if value.file is not None else _FIX_ENV}"]
        return []
    prefix = f"{key}." if key else ""
    if isinstance(value, BaseModel):
        return [
            problem
            for name in type(value).model_fields
            for problem in unreadable_secrets(getattr(value, name), prefix + name)
        ]
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in unreadable_secrets(item, f"{key}.{i}")]
    if isinstance(value, dict):
        return [p for k, item in value.items() for p in unreadable_secrets(item, prefix + str(k))]
    return []
