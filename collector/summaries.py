"""The periodic summaries: the fleet every minute, hardened-station compliance every 5 min.

The collector's sweeper asks :meth:`Summaries.due` on each tick; it answers the
points of whichever summary is due (``collector/history.py`` builds them). Compliance
counts the inventory's stations, so without an inventory only the fleet is written.

Each summary is stamped with the start of its slot (whole multiples of its period
since the epoch), never twice in one slot: every collector shard stamps the same
minute alike, so a dashboard sums one minute's points across series and gets the
fleet at that minute, exactly, with no query nested in another (which InfluxDB 1.6
runs slowly, see benchmarks/dashboards.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collector.history import (
    COMPLIANCE_EVERY_S,
    FLEET_EVERY_S,
    compliance_points,
    fleet_points,
)
from collector.inventory import Inventory
from collector.line_protocol import Point
from contract.wire import Status
from rules import Policy, SiteSnapshot
from rules.compliance import build_report

__all__ = ["Summaries", "SummaryClock"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class SummaryClock:
    """Due once per slot of ``every_s`` (at once, then at each new slot): the slot's start."""

    every_s: float
    last_slot: datetime | None = None

    def due(self, now: datetime) -> datetime | None:
        slots = (now - _EPOCH) // timedelta(seconds=self.every_s)
        slot = _EPOCH + slots * timedelta(seconds=self.every_s)
        if slot == self.last_slot:
            return None
        self.last_slot = slot
        return slot


class Summaries:
    """Decides which summaries are due and builds their points. Called from one thread."""

    def __init__(self, policy: Policy, inventory: Inventory) -> None:
        self.policy = policy
        self.inventory = inventory
        self.fleet = SummaryClock(FLEET_EVERY_S)
        self.compliance = SummaryClock(COMPLIANCE_EVERY_S)

    def due(
        self,
        now: datetime,
        sites: Callable[[], Iterable[tuple[SiteSnapshot, Status]]],
    ) -> list[Point]:
        """The points of every summary due at ``now``; ``sites`` is read only if one is."""
        points: list[Point] = []
        fleet_slot = self.fleet.due(now)
        compliance_slot = self.compliance.due(now) if len(self.inventory) else None
        if fleet_slot is None and compliance_slot is None:
            return points
        judged = list(sites())
        if fleet_slot is not None:
            points += fleet_points(judged, self.policy, now, stamp=fleet_slot)
        if compliance_slot is not None:
            snapshots = {snapshot.site: snapshot for snapshot, _ in judged}
            for province in sorted(self.inventory.by_province):
                report = build_report(
                    snapshots, self.inventory, self.policy, now, province=province
                )
                points += compliance_points(report, compliance_slot)
        return points
