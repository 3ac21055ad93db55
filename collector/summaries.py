"""The periodic summaries: the fleet every minute, hardened-station compliance every 5 min.

With the fleet, each minute, an ``attention`` point per site that needs a NOC's eyes
(off mains, silent, or not ready), so a dashboard opened on the whole country reads the
few thousand sites in trouble instead of every site's ``readiness`` series (which costs
InfluxDB 1.6 seconds at ~100 000 sites, benchmarks/influx_series.py); likewise the
sites losing packets (``link_worst``) and the boxes not keeping time (``clock_wrong``,
``collector/clocks.py``). Which sites are
on that list is saved whenever it changes (``collector/attention_store.py``), so after a
restart a site that left it meanwhile still gets its point saying so.

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

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.attention_store import AttentionStore
from collector.clocks import clock_points
from collector.history import (
    COMPLIANCE_EVERY_S,
    FLEET_EVERY_S,
    compliance_points,
    fleet_points,
    worst_link_points,
)
from collector.inventory import Inventory
from collector.line_protocol import Point
from collector.points import time_ns
from collector.readiness import verdict_points
from collector.risk import RiskLevelOf, no_risk
from contract.wire import Status
from rules import Policy, SiteSnapshot
from rules.compliance import build_report

__all__ = ["Summaries", "SummaryClock", "attention_points", "needs_attention"]

log = logging.getLogger("kienco.collector")

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


def needs_attention(status: Status) -> bool:
    """Off mains (or its power state unknown: silent) or not ready."""
    return status.station_state != "up_commercial" or status.verdict == "not_ready"


def attention_points(
    sites: Iterable[tuple[SiteSnapshot, Status]], stamp: datetime, listed_before: set[str]
) -> tuple[list[Point], set[str]]:
    """An ``attention`` point per site that :func:`needs_attention`, stamped ``stamp``: the
    tags and fields of its ``readiness`` point, and ``listed`` = true. A site listed at the
    slot before and not now gets one more point, without ``listed``: its newest
    ``attention`` point then says it left the list (a panel drops rows with no
    ``listed``). Returns the points and the sites listed now. ``listed_before`` comes
    from the previous slot, or after a restart from the saved list (:class:`Summaries`)."""
    points: list[Point] = []
    listed: set[str] = set()
    at_ns = time_ns(stamp)
    for snapshot, status in sites:
        now_listed = needs_attention(status)
        if not now_listed and snapshot.site not in listed_before:
            continue
        readiness = verdict_points(snapshot, status, stamp, findings=False)[0]
        fields = dict(readiness.fields)
        if now_listed:
            fields["listed"] = True
            listed.add(snapshot.site)
        points.append(Point("attention", readiness.tags, fields, at_ns))
    return points, listed


class Summaries:
    """Decides which summaries are due and builds their points. Called from one thread.

    With ``saved_list`` (a path), the attention list starts from the one saved there and
    is saved again whenever it changes; without, it starts empty."""

    def __init__(
        self,
        policy: Policy,
        inventory: Inventory,
        saved_list: Path | None = None,
        *,
        risk_level: RiskLevelOf = no_risk,
    ) -> None:
        self.policy = policy
        self.risk_level = risk_level  # silent by the window the verdicts are judged by
        self.inventory = inventory
        self.fleet = SummaryClock(FLEET_EVERY_S)
        self.compliance = SummaryClock(COMPLIANCE_EVERY_S)
        self.store = None if saved_list is None else AttentionStore(saved_list)
        self.listed: set[str] = set() if self.store is None else self.store.load()
        self._on_disk = frozenset(self.listed)  # what the file holds, as far as we know
        self._save_failed = False

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
            risk = self.risk_level
            points += fleet_points(judged, self.policy, now, stamp=fleet_slot, risk_level=risk)
            points += worst_link_points(judged, self.policy, now, fleet_slot, risk_level=risk)
            points += clock_points(judged, self.policy, now, fleet_slot, risk_level=risk)
            attention, listed = attention_points(judged, fleet_slot, self.listed)
            # Saved with those that just left: their points without ``listed`` are only
            # queued yet, so a restart (even a crash) gives them one more, the same again.
            self._save(self.listed | listed)
            self.listed = listed
            points += attention
        if compliance_slot is not None:
            snapshots = {snapshot.site: snapshot for snapshot, _ in judged}
            for province in sorted(self.inventory.by_province):
                report = build_report(
                    snapshots, self.inventory, self.policy, now, province=province
                )
                points += compliance_points(report, compliance_slot)
        return points

    def _save(self, sites: set[str]) -> None:
        """Save the list if it changed. A failure costs no points: logged once (until a
        save works again), and tried again at the next slot."""
        if self.store is None or sites == self._on_disk:
            return
        try:
            self.store.save(sites)
        except Exception as exc:
            if not self._save_failed:
                log.error(
                    "attention list not saved to %s (%s); retried each minute, logged once",
                    self.store.path,
                    exc,
                )
            self._save_failed = True
            return
        if self._save_failed:
            log.info("attention list saved to %s again", self.store.path)
        self._save_failed = False
        self._on_disk = frozenset(sites)
