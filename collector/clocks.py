"""Which boxes do not keep time: the ``fleet`` summary's clock counts and the per-minute
``clock_wrong`` list. Pure.

After a typhoon, edge boxes reboot with no RTC and no NTP in reach: their readings are
stamped by a clock that is not kept, and the technician must give the box a time source.
A box's clock is *not kept* when either says so:

- the box itself: its newest host reading says ``clock_synced`` false (the kernel, as
  ``timedatectl`` judges it), while the site is heard (fresh, or its messages arrive
  within its stale window, as a box whose clock is behind is: its reports look old;
  not once its Will said it went offline).
  A silent site is not listed (it is ``unknown`` in the fleet: nothing is current);
  an agent that does not say (``clock_synced`` null: older agents, not Linux) is not
  counted by this half;
- the rules: its status carries ``clock_behind`` (its reports keep coming, each as
  old), ``clock_corrected`` (proven behind, its times set right), ``clock_ahead`` or
  ``clock_ahead_refused`` (so far ahead its reports are refused: rules/freshness.py),
  whatever the box says.

The ``clock_wrong`` list exists because the per-site alternative is slow: the newest
host reading of every site reads every ``host`` series, 103 400 nationally, 3.5–4.6 s
for InfluxDB 1.6; the list of the few boxes not keeping time, 0.01–0.03 s
(docs/capacity.md), as ``link_worst`` does for the worst paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from collector.line_protocol import FieldValue, Point
from collector.points import site_point_tags, time_ns
from collector.risk import RiskLevelOf, no_risk
from contract.wire import Status
from plumbing.untrusted import one_line
from rules import Policy, SiteSnapshot, site_freshness, site_thresholds
from rules.freshness import stale_after_s

__all__ = ["CLOCK_COUNTS", "CLOCK_REASONS", "ClockWrong", "clock_points", "clock_wrong"]

CLOCK_REASONS: tuple[str, ...] = (
    "clock_behind",
    "clock_corrected",
    "clock_ahead",
    "clock_ahead_refused",
)
"""The rules' findings that a site's clock is wrong (rules/freshness.py)."""

CLOCK_COUNTS: tuple[str, ...] = ("clock_wrong", "clock_unsynced", *CLOCK_REASONS)
"""The ``fleet`` point's clock counts: boxes not keeping time (either half), those whose
box says so, and those with each of the rules' findings (a box may be in several)."""


@dataclass(frozen=True, slots=True)
class ClockWrong:
    """Why one box's clock is not kept, and how far off it is known to be."""

    synced: bool | None  # what the box's newest host reading says
    reason: str | None  # the rules' finding (CLOCK_REASONS), if any
    behind_s: float | None = None
    ahead_s: float | None = None

    @property
    def unsynced(self) -> bool:
        return self.synced is False

    @property
    def off_s(self) -> float:
        """How far off it is known to be (0: not known, only that it is not kept)."""
        return max(self.behind_s or 0.0, self.ahead_s or 0.0)


def _heard(snapshot: SiteSnapshot, policy: Policy, at: datetime, risk_level: int) -> bool:
    if snapshot.online is False:  # its Will fired: offline, whatever came just before
        return False
    if site_freshness(snapshot, policy, at, risk_level=risk_level).fresh:
        return True
    seen = snapshot.last_seen_at
    if seen is None:
        return False
    window = stale_after_s(snapshot, site_thresholds(snapshot, policy, risk_level).freshness)
    return (at - seen).total_seconds() <= window


def clock_wrong(
    snapshot: SiteSnapshot, status: Status, policy: Policy, at: datetime, *, risk_level: int = 0
) -> ClockWrong | None:
    """Why the site's box does not keep time at ``at``, or None: it does, or nobody says."""
    reason = next((r for r in status.reasons if r.code in CLOCK_REASONS), None)
    host = snapshot.host
    synced = None if host is None else host[0].clock_synced
    if reason is None and not (synced is False and _heard(snapshot, policy, at, risk_level)):
        return None
    numbers = {} if reason is None else reason.numbers
    return ClockWrong(
        synced=synced,
        reason=None if reason is None else reason.code,
        behind_s=numbers.get("behind_s"),
        ahead_s=numbers.get("ahead_s"),
    )


def clock_points(
    sites: Iterable[tuple[SiteSnapshot, Status]],
    policy: Policy,
    at: datetime,
    stamp: datetime,
    *,
    risk_level: RiskLevelOf = no_risk,
) -> list[Point]:
    """A ``clock_wrong`` point per site whose box does not keep time at ``at``, stamped
    ``stamp``, with the site's ``readiness`` tags: ``synced`` (the box's word),
    ``reason`` (the rules' finding), ``behind_s`` / ``ahead_s`` and ``off_s`` (the
    larger, 0 when not known: a panel's TOP orders by it), ``name``. Sampled each
    minute; a site that keeps time again has no more points (a panel reads the last
    minutes)."""
    points: list[Point] = []
    at_ns = time_ns(stamp)
    for snapshot, status in sites:
        wrong = clock_wrong(snapshot, status, policy, at, risk_level=risk_level(snapshot.province))
        if wrong is None:
            continue
        fields: dict[str, FieldValue | None] = {
            "off_s": float(wrong.off_s),
            "synced": wrong.synced,
            "reason": wrong.reason,
            "behind_s": None if wrong.behind_s is None else float(wrong.behind_s),
            "ahead_s": None if wrong.ahead_s is None else float(wrong.ahead_s),
            "name": one_line(status.name) if status.name else None,
        }
        points.append(Point.make("clock_wrong", site_point_tags(snapshot), fields, at_ns))
    return points
