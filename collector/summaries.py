"""The periodic summaries: the fleet every minute, hardened-station compliance every 5 min.

The collector's sweeper asks :meth:`Summaries.due` on each tick; it answers the
points of whichever summary is due (``collector/history.py`` builds them). Compliance
counts the inventory's stations, so without an inventory only the fleet is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.history import compliance_points, fleet_points
from collector.inventory import Inventory
from collector.line_protocol import Point
from contract.wire import Status
from rules import Policy, SiteSnapshot
from rules.compliance import build_report

__all__ = ["Summaries", "SummaryClock"]


@dataclass(slots=True)
class SummaryClock:
    """Due at once, then every ``every_s``."""

    every_s: float
    next_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + timedelta(seconds=self.every_s)
        return True


class Summaries:
    """Decides which summaries are due and builds their points. Called from one thread."""

    def __init__(
        self,
        policy: Policy,
        inventory: Inventory,
        *,
        fleet_every_s: float,
        compliance_every_s: float,
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.fleet = SummaryClock(fleet_every_s)
        self.compliance = SummaryClock(compliance_every_s)

    def due(
        self,
        now: datetime,
        sites: Callable[[], Iterable[tuple[SiteSnapshot, Status]]],
    ) -> list[Point]:
        """The points of every summary due at ``now``; ``sites`` is read only if one is."""
        points: list[Point] = []
        fleet_due = self.fleet.due(now)
        compliance_due = len(self.inventory) > 0 and self.compliance.due(now)
        if not (fleet_due or compliance_due):
            return points
        judged = list(sites())
        if fleet_due:
            points += fleet_points(judged, self.policy, now)
        if compliance_due:
            snapshots = {snapshot.site: snapshot for snapshot, _ in judged}
            for province in sorted(self.inventory.by_province):
                report = build_report(
                    snapshots, self.inventory, self.policy, now, province=province
                )
                points += compliance_points(report, now)
        return points
