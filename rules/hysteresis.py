"""No flapping: a verdict changes only after the new condition has held for the rule's ``hold_s``.

Pure: the caller keeps each site's :class:`Held` and passes it back with the next
evaluation. Exceptions flip at once, because an operator must see them at once:
losing the last path, losing a power source (mains: the station leaves
``up_commercial``; the last one: ``down_power``), freshness (which is
already a matter of time: stale after N intervals, offline when the Will fires),
and a new risk level for the province (a decision, not a flapping condition).
Recovery is held like any other change. A change has held once the site has differed
from what is shown for ``hold_s``, whatever it said meanwhile: the newest evaluation is
then shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from rules.engine import Evaluation
from rules.findings import RuleName

IMMEDIATE_CODES = frozenset({"path_all_down"})
IMMEDIATE_STATES = frozenset({"down_power", "down_damage"})

Signature = tuple[str, str, frozenset[tuple[str, str]]]


def signature(evaluation: Evaluation) -> Signature:
    """What makes two evaluations the same verdict for the people watching."""
    return (
        evaluation.verdict,
        evaluation.station_state,
        frozenset((f.rule, f.code) for f in evaluation.findings),
    )


@dataclass(frozen=True, slots=True)
class Held:
    """What is shown for a site, and a different verdict waiting out its hold, if any."""

    shown: Evaluation
    pending: Evaluation | None = None
    pending_since: datetime | None = None


def _immediate(before: Evaluation, after: Evaluation) -> bool:
    if after.risk_level != before.risk_level:
        return True  # a declared level is a decision, not a flapping condition
    if after.station_state in IMMEDIATE_STATES:
        return True
    if before.station_state == "up_commercial" and after.station_state != "up_commercial":
        return True  # mains lost (on battery or generator now): the NOC must see it at once
    if any(f.code in IMMEDIATE_CODES for f in after.findings):
        return True
    # Freshness is judged on time already: holding it again would only hide a silent site.
    return "freshness" in {f.rule for f in (*before.findings, *after.findings)}


def _hold_for(before: Evaluation, after: Evaluation, hold_s: Mapping[RuleName, float]) -> float:
    changed = {rule for rule, _ in signature(before)[2] ^ signature(after)[2]}
    return max((hold_s.get(rule, 0.0) for rule in changed), default=0.0)  # type: ignore[call-overload]


def debounce(
    held: Held | None,
    evaluation: Evaluation,
    hold_s: Mapping[RuleName, float],
    now: datetime,
) -> tuple[Held, float | None]:
    """The new state, and the seconds after which the pending change is due (or None)."""
    if held is None or signature(evaluation) == signature(held.shown):
        return Held(evaluation), None
    shown = held.shown
    if _immediate(shown, evaluation):
        return Held(evaluation), None
    hold = _hold_for(shown, evaluation, hold_s)
    if hold <= 0:
        return Held(evaluation), None
    # The hold runs from when the site first differed from what is shown, however the
    # difference is worded since: a hop alternately down and lossy, every report, is a
    # site degraded all along, not a new change at each report that never waits out its
    # hold (the old site shown as ready for ever). Only what is shown coming back
    # (above) ends the wait.
    since = held.pending_since if held.pending is not None and held.pending_since else now
    waited = (now - since).total_seconds()
    if waited >= hold:
        return Held(evaluation), None
    return Held(shown, evaluation, since), hold - waited
