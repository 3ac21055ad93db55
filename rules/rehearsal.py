"""Planned meetings: a point is ready for *this* meeting only with a recent, passed rehearsal.

A provincial checklist asks for a test call passed before the session (DOMAIN.md,
"rehearsal"); a rehearsal older than the policy's limit no longer counts. Pure:
the caller passes the point's evaluation for the meeting and its latest rehearsal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from rules.engine import Evaluation
from rules.findings import Finding, verdict_of


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """The result of a pre-meeting check at one point."""

    site: str
    at: datetime
    passed: bool
    problems: tuple[str, ...] = ()  # what failed, in words (already in the checker's language)


def rehearsal_finding(
    site: str, rehearsal: Rehearsal | None, *, now: datetime, max_age_s: float
) -> Finding | None:
    if rehearsal is None:
        numbers = {"max_age_s": max_age_s}
        return Finding(
            "rehearsal", site, "warning", "rehearsal_missing", numbers, impact="degrades"
        )
    age = max(0.0, (now - rehearsal.at).total_seconds())
    if age > max_age_s:
        numbers = {"age_s": age, "max_age_s": max_age_s}
        return Finding("rehearsal", site, "warning", "rehearsal_stale", numbers, impact="degrades")
    if not rehearsal.passed:
        labels = {"problems": "; ".join(rehearsal.problems) or "?"}
        return Finding(
            "rehearsal", site, "critical", "rehearsal_failed", {"age_s": age}, labels=labels
        )
    return None


def for_meeting(
    evaluation: Evaluation, rehearsal: Rehearsal | None, *, now: datetime, max_age_s: float
) -> Evaluation:
    """The point's evaluation for the meeting, with its rehearsal judged in.

    A point that is silent stays ``unknown`` with its freshness reason only.
    """
    if any(f.rule == "freshness" and f.effect == "unknown" for f in evaluation.findings):
        return evaluation
    extra = rehearsal_finding(evaluation.site, rehearsal, now=now, max_age_s=max_age_s)
    if extra is None:
        return evaluation
    findings = (*evaluation.findings, extra)
    return replace(evaluation, findings=findings, verdict=verdict_of(findings))
