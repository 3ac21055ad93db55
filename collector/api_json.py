"""The API's JSON: one encoder for the answers built by hand (not through a model).

A time in them is a ``datetime`` until here, and is written by
:func:`contract.wire.utc_text`, the function pydantic's models write theirs with
(``UtcTime``): every time the API, /healthz and the CLI's JSON write has one form,
``2026-12-07T07:00:00Z``.
"""

from __future__ import annotations

import json
from datetime import datetime

from contract.wire import utc_text

__all__ = ["api_json"]


def api_json(payload: object) -> bytes:
    """``payload`` as UTF-8 JSON, each ``datetime`` in it written by ``utc_text``."""
    return json.dumps(payload, ensure_ascii=False, default=_value).encode()


def _value(value: object) -> str:
    if isinstance(value, datetime):
        return utc_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON: give the API a str, number or time")
