"""Planned meetings: a point is ready for *this* meeting only with a recent, passed rehearsal.

A provincial checklist asks for a test call passed before the session (DOMAIN.md,
"rehearsal"); a rehearsal older than the policy's limit *when the meeting starts* no
longer counts. Its age is judged at the start: one that counts now but will be too old
by then says so (``rehearsal_stale_at_start``, rehearse again), and one that counted at
the start keeps counting until the meeting ends. Pure: the caller passes the point's
evaluation for the meeting and its latest rehearsal.
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
    site: str,
    rehearsal: Rehearsal | None,
    *,
    now: datetime,
    starts_at: datetime,
    max_age_s: float,
) -> Finding | None:
    if rehearsal is None:
        numbers = {"max_age_s": max_age_s}
        return Finding(
            "rehearsal", site, "warning", "rehearsal_missing", numbers, impact="degrades"
        )
    age = max(0.0, (now - rehearsal.at).total_seconds())
    at_start = max(0.0, (starts_at - rehearsal.at).total_seconds())
    if at_start > max_age_s:
        if age > max_age_s or now >= starts_at:
            numbers = {"age_s": age, "max_age_s": max_age_s}
            code = "rehearsal_stale"
        else:
            numbers = {"age_s": age, "age_at_start_s": at_start, "max_age_s": max_age_s}
            code = "rehearsal_stale_at_start"
        return Finding("rehearsal", site, "warning", code, numbers, impact="degrades")
    if not rehearsal.passed:
        labels = {"problems": "; ".join(rehearsal.problems) or "?"}
        return Finding(
            "rehearsal", site, "critical", "rehearsal_failed", {"age_s": age}, labels=labels
        )
    return None


def for_meeting(
    evaluation: Evaluation,
    rehearsal: Rehearsal | None,
    *,
    now: datetime,
    starts_at: datetime,
    max_age_s: float,
) -> Evaluation:
    """The point's evaluation for the meeting starting at ``starts_at``, with its
    rehearsal judged in.

    A point that is silent stays ``unknown`` with its freshness reason only.
    """
    if any(f.rule == "freshness" and f.effect == "unknown" for f in evaluation.findings):
        return evaluation
    extra = rehearsal_finding(
        evaluation.site, rehearsal, now=now, starts_at=starts_at, max_age_s=max_age_s
    )
    if extra is None:
        return evaluation
    findings = (*evaluation.findings, extra)
    return replace(evaluation, findings=findings, verdict=verdict_of(findings))
