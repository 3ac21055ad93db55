"""The what-if forecast checked against the simulation it forecasts.

The demo's fleet (kienco/demo/simulator.py) runs the Yagi scenario; its reports are
folded into snapshots the way the collector folds them, up to a minute *before*
mains fail in a province; ``rules.whatif.forecast`` is asked "mains off in that
province at the minute they do fail"; then the simulation runs on and records the
minute each site really goes dark. Used by tests/test_whatif.py and
benchmarks/whatif_yagi.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kienco.demo.scenario import Scenario, load_scenario
from kienco.demo.simulator import Fleet
from rules import Policy, SiteSnapshot, load_policy
from rules.whatif import WhatIf, forecast, within_tolerance

INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Row:
    site: str
    predicted: datetime | None  # dark within the horizon, by the forecast
    seen: datetime | None  # dark within the horizon, in the simulation
    within: bool  # both, and the times agree within the model's tolerance

    @property
    def error_s(self) -> float | None:
        if self.predicted is None or self.seen is None:
            return None
        return (self.predicted - self.seen).total_seconds()


@dataclass(frozen=True, slots=True)
class Comparison:
    province: str
    at: datetime
    hours: float
    whatif: WhatIf
    rows: tuple[Row, ...]

    @property
    def predicted(self) -> set[str]:
        return {r.site for r in self.rows if r.predicted is not None}

    @property
    def seen(self) -> set[str]:
        return {r.site for r in self.rows if r.seen is not None}


def observe(fleet: Fleet, snapshots: dict[str, SiteSnapshot], seq: list[int]) -> None:
    """Every reachable, powered site reports now; its report is folded in."""
    now = fleet.sim_time
    for site in fleet.sites:
        if site.is_dark or not site.is_reachable:
            continue  # nothing arrives from it
        seq[0] += 1
        held = snapshots.get(site.site) or SiteSnapshot(site=site.site, province=site.province)
        held = held.with_meta(site.meta(now, INTERVAL_S))
        report = site.report(seq[0], now, INTERVAL_S)
        snapshots[site.site] = held.with_report(report, received_at=now)


def compare(
    province: str,
    fail_minute: float,
    *,
    hours: float,
    taken_minute: float,
    meeting_s: float = 3 * 3600,
    scenario: Scenario | None = None,
    policy: Policy | None = None,
) -> Comparison:
    """Forecast at ``taken_minute`` (before mains fail) for mains off at ``fail_minute``."""
    scenario = scenario or load_scenario()
    policy = policy or load_policy()
    fleet = Fleet(scenario)
    snapshots: dict[str, SiteSnapshot] = {}
    seq = [0]
    for minute in range(max(0, int(taken_minute) - 20), int(taken_minute) + 1):
        fleet.advance_to_minute(minute)  # 20 minutes of reports: a discharge history too
        observe(fleet, snapshots, seq)
    at = scenario.start + timedelta(minutes=fail_minute)
    judged = forecast(
        snapshots.values(),
        policy,
        fleet.sim_time,
        province=province,
        at=at,
        hours=hours,
        meeting_s=meeting_s,
        risk_level=lambda p: fleet.risk_levels.get(p, 0),
    )
    until = judged.until
    seen: dict[str, datetime] = {}
    minute = int(taken_minute)
    while fleet.sim_time < until:
        minute += 1
        fleet.advance_to_minute(minute)
        for site in fleet.sites:
            if site.province == province and site.is_dark and site.site not in seen:
                seen[site.site] = fleet.sim_time
    predicted = {s.site: s.dark_at for s in judged.dark_within() if s.dark_at is not None}
    rows = []
    for name in sorted(set(predicted) | set(seen)):
        p, s = predicted.get(name), seen.get(name)
        ok = p is not None and s is not None and within_tolerance(p, s, at)
        rows.append(Row(name, p, s, ok))
    return Comparison(province, at, hours, judged, tuple(rows))
