"""Decode and validate one MQTT message against the wire contract; never raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from contract.topics import SiteTopic, TopicError
from contract.wire import Event, Meta, Report, State, Status

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


@dataclass(frozen=True, slots=True)
class Ignored:
    """Our own status and command messages come back through the ``#`` filter."""

    topic: SiteTopic


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
    try:
        parsed = SiteTopic.parse(topic)
    except TopicError as exc:
        return Rejected("bad_topic", str(exc))
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
    if message.site != parsed.site or message.province != parsed.province:
        return Rejected(
            "site_mismatch",
            f"payload says {message.province}/{message.site}, topic says "
            f"{parsed.province}/{parsed.site}",
        )
    stamped = _timestamp(message)
    if stamped - now > timedelta(seconds=future_tolerance_s):
        return Rejected(
            "future_timestamp",
            f"stamped {stamped.isoformat()}, {(stamped - now).total_seconds():.0f} s ahead of "
            f"the collector (tolerance {future_tolerance_s:.0f} s): check the agent's clock",
        )
    return Decoded(parsed, message)


def _timestamp(message: Accepted) -> datetime:
    return message.taken_at if isinstance(message, Report) else message.at


def _describe(errors: list[ErrorDetails]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return ("; ".join(parts) + more)[:1000]


__all__ = ["REJECT_REASONS", "Accepted", "Decoded", "Ignored", "Rejected", "Status", "decode"]
