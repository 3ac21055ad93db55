"""Decode and validate one MQTT message against the wire contract; never raises."""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from contract.topics import SiteTopic, TopicError
from contract.wire import Event, Meta, Report, State, Status

if TYPE_CHECKING:
    from collector.config import Limits

Accepted = Report | Event | Meta | State
_MODELS: dict[str, type[Report] | type[Event] | type[Meta] | type[State]] = {
    "report": Report,
    "event": Event,
    "meta": Meta,
    "state": State,
}

REJECT_REASONS = (
    "oversized",
    "bad_topic",
    "invalid_json",
    "schema",
    "site_mismatch",
    "future_timestamp",
    "site_limit",  # collector/admission.py: the province already has its maximum of sites
)


@dataclass(frozen=True, slots=True)
class Decoded:
    topic: SiteTopic
    message: Accepted


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str  # one of REJECT_REASONS
    detail: str
    # future_timestamp: the message, valid but for its time, and how far ahead it is (s)
    ahead: Decoded | None = None
    ahead_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Ignored:
    """Our own status and command messages come back through the ``#`` filter."""

    topic: SiteTopic


# Topics parsed before (a site sends on the same few every time; a SiteTopic is a
# value): a dict look-up instead of a split and two regular expressions. Cleared when full.
_topics: dict[str, SiteTopic] = {}
_TOPICS_MAX = 100_000


def decode_within(
    limits: Limits, topic: str, payload: bytes, now: datetime
) -> Decoded | Rejected | Ignored:
    """:func:`decode` under the collector's configured ``limits``."""
    return decode(
        topic,
        payload,
        now=now,
        max_bytes=limits.max_payload_bytes,
        future_tolerance_s=limits.future_tolerance_s,
    )


def decode(
    topic: str,
    payload: bytes,
    *,
    now: datetime,
    max_bytes: int,
    future_tolerance_s: float,
) -> Decoded | Rejected | Ignored:
    if len(payload) > max_bytes:
        return Rejected("oversized", f"{len(payload)} bytes > limit {max_bytes}")
    parsed = _topics.get(topic)
    if parsed is None:
        try:
            parsed = SiteTopic.parse(topic)
        except TopicError as exc:
            return Rejected("bad_topic", str(exc))
        if len(_topics) >= _TOPICS_MAX:
            _topics.clear()
        _topics[topic] = parsed
    if parsed.kind in ("status", "command"):
        return Ignored(parsed)
    model = _MODELS[parsed.kind]
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            return Rejected("invalid_json", errors[0]["msg"][:500])
        return Rejected("schema", _describe(errors))
    twice = duplicate_key(payload, message)
    if twice is not None:
        return Rejected("invalid_json", twice)
    if message.site != parsed.site or message.province != parsed.province:
        return Rejected(
            "site_mismatch",
            f"payload says {message.province}/{message.site}, topic says "
            f"{parsed.province}/{parsed.site}",
        )
    stamped = _timestamp(message)
    if stamped - now > timedelta(seconds=future_tolerance_s):
        ahead_s = (stamped - now).total_seconds()
        return Rejected(
            "future_timestamp",
            f"stamped {stamped.isoformat()}, {ahead_s:.0f} s ahead of "
            f"the collector (tolerance {future_tolerance_s:.0f} s): check the agent's clock",
            ahead=Decoded(parsed, message),
            ahead_s=ahead_s,
        )
    return Decoded(parsed, message)


def duplicate_key(payload: bytes, message: BaseModel) -> str | None:
    """Why ``payload`` (which validated as ``message``) is ambiguous, or None.

    JSON leaves a key given twice in one object undefined: pydantic keeps the last
    one, another consumer of the broker may read the first (``site`` or ``seq`` twice
    is two different messages). pydantic cannot tell, so this looks, cheaply first:
    once blanks are removed, each key is exactly one ``":`` in the payload, and any
    other ``":`` lies inside a string; each distinct key is one field in the fields
    set of the models built from it (``extra="forbid"``: no other key gets through).
    So if the ``":`` count equals the fields set, no key is given twice. Otherwise
    (a ``\\":`` in a text, or a duplicate) the standard parser looks at every
    object. Cost (benchmarks/codec.py, 1.1 kB reports, shared 2-core box): the count
    3.6–6 µs a report where ``model_validate_json`` takes 12–18 µs in the same run,
    about 1 % of what a report costs the collector end to end; the exact parse
    21–26 µs, only for a payload whose text holds ``\\":``.
    """
    # Blanks removed, a key and its colon meet; removing them elsewhere can only add
    # matches (then the exact look decides), never hide a key. Agents send compact JSON
    # (no blank outside a text): then there is nothing to remove, and no copy to make.
    compact = not (b" " in payload or b"\n" in payload or b"\t" in payload or b"\r" in payload)
    colons = (payload if compact else payload.translate(None, b" \t\r\n")).count(b'":')
    if colons == _keys_given(message):
        return None
    try:
        json.loads(payload, object_pairs_hook=_each_key_once)
    except _GivenTwice as twice:
        return f"key {twice.key!r} given twice in one object: readers disagree on its value"
    except (ValueError, RecursionError) as exc:  # pydantic took it; the standard parser not
        return f"not standard JSON: {exc}"[:500]
    return None


class _GivenTwice(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _GivenTwice(key)
            seen.add(key)
    return found


_NESTED: dict[type[BaseModel], tuple[str, ...]] = {}


def _holds_model(annotation: Any) -> bool:
    # Module-level, not a closure in _nested_fields: a recursive closure refers to itself
    # through its cell, a cycle that collector/heap.py could freeze alive (heap.audit).
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in typing.get_args(annotation))


def _nested_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` that may hold models (each one a JSON object)."""
    return tuple(n for n, info in model.model_fields.items() if _holds_model(info.annotation))


def _keys_given(message: BaseModel) -> int:
    """How many keys the JSON of ``message`` had, counting each distinct key once."""
    given = message.__pydantic_fields_set__  # model_fields_set, without the property
    count = len(given)
    names = _NESTED.get(type(message))
    if names is None:
        names = _NESTED[type(message)] = _nested_fields(type(message))
    for name in names:
        if name in given:
            value = getattr(message, name)
            if type(value) is tuple:
                for item in value:
                    if isinstance(item, BaseModel):
                        count += _keys_given(item)
            elif isinstance(value, BaseModel):
                count += _keys_given(value)
    return count


def _timestamp(message: Accepted) -> datetime:
    return message.taken_at if isinstance(message, Report) else message.at


def _describe(errors: list[ErrorDetails]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return ("; ".join(parts) + more)[:1000]


__all__ = [
    "REJECT_REASONS",
    "Accepted",
    "Decoded",
    "Ignored",
    "Rejected",
    "Status",
    "decode",
    "duplicate_key",
]
