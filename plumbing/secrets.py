"""Secrets referenced from config: inline, from an environment variable, or from a file.

A secret never prints: ``repr`` and ``str`` show ``<secret>``, and so do config dumps.
"""

from __future__ import annotations

import os
from pathlib import Path

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
