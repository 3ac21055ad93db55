"""``GET /api/v1/whatif/grid-off``: the forecast of rules/whatif.py over the collector's sites.

    GET /api/v1/whatif/grid-off?province=hp[&at=2024-09-07T14:00:00+07:00][&hours=12]
                               [&meeting_s=10800]

``at`` (ISO 8601 with its offset; default now, never before now) is when mains are
forced off in the province; ``hours`` the horizon (default 12); ``meeting_s`` the
meeting the province's points must hold from ``at`` (default the policy's). Read-only:
it changes nothing, so it needs no token.
"""

from __future__ import annotations

import re
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from collector.api import Reply, json_reply
from contract.wire import SLUG_PATTERN
from rules.whatif import WhatIf, forecast

if TYPE_CHECKING:
    from collector.service import Collector

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
    return at


def whatif_reply(c: Collector, query: dict[str, str]) -> Reply:
    unknown = sorted(set(query) - set(PARAMS))
    province = query.get("province", "")
    try:
        if unknown:
            raise BadQuery(f"unknown parameter {unknown}; use {list(PARAMS)}")
        if not re.fullmatch(SLUG_PATTERN, province):
            raise BadQuery("give province=<code>, e.g. province=hp")
        at = _at(query)
        hours = _number(query, "hours", 0, MAX_HOURS) or 12.0
        meeting_s = _number(query, "meeting_s", 0, 7 * 86_400)
    except BadQuery as exc:
        return json_reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
    snapshots = c.states.all()
    if not any(s.province == province for s in snapshots):
        known = sorted({s.province for s in snapshots})
        error = f"no site in province {province!r}; the collector knows: {', '.join(known)}"
        return json_reply(HTTPStatus.NOT_FOUND, {"error": error})
    judged = forecast(
        snapshots,
        c.policy,
        c.clock(),
        province=province,
        at=at,
        hours=hours,
        meeting_s=meeting_s,
        risk_level=c.risk_of,
        hardened_listed=c.inventory,
    )
    return HTTPStatus.OK, WHATIF_JSON.dump_json(judged)
