"""``GET /api/v1/whatif/grid-off``: the forecast of rules/whatif.py over the collector's sites.

    GET /api/v1/whatif/grid-off?province=hp[&at=2024-09-07T14:00:00+07:00][&hours=12]
                               [&meeting_s=10800]

``at`` (ISO 8601 with its offset; default now, never before now) is when mains are
forced off in the province; ``hours`` the horizon (default 12); ``meeting_s`` the
meeting the province's points must hold from ``at`` (default the policy's). A read:
whoever may read the province (collector/endpoints.py answers it, by role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter

from contract.wire import SLUG_PATTERN
from rules.whatif import WhatIf

__all__ = ["MAX_HOURS", "PARAMS", "WHATIF_JSON", "BadQuery", "WhatIfQuery", "parse_query"]

WHATIF_JSON: TypeAdapter[WhatIf] = TypeAdapter(WhatIf)
PARAMS = ("province", "at", "hours", "meeting_s")
MAX_HOURS = 14 * 24


class BadQuery(ValueError):
    """A query the forecast cannot take; the message says what to send instead."""


def _number(query: dict[str, str], key: str, low: float, high: float) -> float | None:
    text = query.get(key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadQuery(f"{key}={text!r} is not a number") from None
    if not low < value <= high:
        raise BadQuery(f"{key}={text!r}: give more than {low:g} and at most {high:g}")
    return value


def _at(query: dict[str, str]) -> datetime | None:
    text = query.get("at")
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text.replace(" ", "+"))  # a '+' in a query reads as ' '
    except ValueError:
        example = "e.g. 2024-09-07T14:00:00+07:00"
        raise BadQuery(f"at={text!r}: give an ISO 8601 time, {example}") from None
    if at.tzinfo is None:
        raise BadQuery(f"at={text!r} has no offset: add one, e.g. +07:00 for Vietnam time")
    return at.astimezone(UTC)  # times are kept in UTC: the forecast's too


@dataclass(frozen=True, slots=True)
class WhatIfQuery:
    province: str
    at: datetime | None
    hours: float
    meeting_s: float | None


def parse_query(query: dict[str, str]) -> WhatIfQuery:
    """The forecast asked for; BadQuery saying what to send instead."""
    unknown = sorted(set(query) - set(PARAMS))
    province = query.get("province", "")
    if unknown:
        raise BadQuery(f"unknown parameter {unknown}; use {list(PARAMS)}")
    if not re.fullmatch(SLUG_PATTERN, province):
        raise BadQuery("give province=<code>, e.g. province=hp")
    return WhatIfQuery(
        province,
        _at(query),
        _number(query, "hours", 0, MAX_HOURS) or 12.0,
        _number(query, "meeting_s", 0, 7 * 86_400),
    )
