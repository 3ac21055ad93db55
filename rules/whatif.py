"""What if the grid fails in a province at a given time? The autonomy rules run forward.

Pure: every site's current snapshot, the policy, ``now`` and the time mains are forced
off (``at``, not before ``now``) give

- when each site goes dark, from the view its verdict is judged from (``site_view``: the
  stale window at the province's risk level, its times set right when its agent's clock
  is proven behind): a site on mains lasts its backup from ``at`` — battery
  plus the fuel of a generator assumed to start (``rules/autonomy.py``, the same
  "if the grid fails now" hours the verdicts show); a site already off mains keeps
  its own time to dark from now; one already dark is dark now. A site that is silent,
  or whose autonomy cannot be computed, is *unknown*, never "holds";
- how many sites are dark by each hour of the horizon; a site whose time is only a floor
  (a source of unknown size, a generator's fuel not reported, counted as nothing) is
  not counted dark: it lasts at least that long, and may last days. Those are counted
  apart, by the hour their floor is reached (``floor_by_hour``). A site with a battery of
  unknown runtime beside a known one has a ceiling (``upper_bound``): dark by then at the
  latest, counted dark by that hour, never said to hold beyond it;
- which sites of the inventory never reported: they cannot be forecast, and are named
  (``never_reported``) so that no one takes the forecast for the whole register;
- which meeting points still hold a meeting of the given duration starting at
  ``at``: the meeting rule's own judgement for that meeting (power until it ends
  with margin if mains fail, paths, link quality, room), ``ready`` or ``degraded``;
- which areas lose all their hardened stations, and when the last one goes.

The model's tolerance, for a forecast checked against what happened
(``TOLERANCE_S`` and ``within_tolerance``): a generator takes a few minutes to start
and a battery's estimate is a figure at the last report, so a forecast time within
15 minutes, or 5 % of the time to dark, counts as right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from contract.wire import Reason, SiteKind, UtcTime, Verdict
from rules.autonomy import PowerMode, assess_power
from rules.compliance import ExpectedSite
from rules.engine import evaluate, site_view
from rules.policy import Policy
from rules.snapshot import SiteSnapshot

__all__ = [
    "TOLERANCE_S",
    "AreaForecast",
    "MeetingForecast",
    "SiteForecast",
    "WhatIf",
    "forecast",
    "within_tolerance",
]

TOLERANCE_S = 15 * 60
TOLERANCE_PCT = 5.0
Basis = Literal[
    "battery", "battery+generator", "generator", "dark", "silent", "no_power_data", "never_reported"
]


@dataclass(frozen=True, slots=True)
class SiteForecast:
    """One site with mains forced off at ``at``."""

    site: str
    province: str
    kind: SiteKind | None
    name: str | None
    operator: str | None
    area: str | None
    hardened: bool  # declared hardened or of the hardened class
    power_now: PowerMode
    basis: Basis
    dark_at: UtcTime | None  # None: unknown (see basis)
    lower_bound: bool = False  # a source of unknown size was counted as nothing
    # a battery of unknown runtime beside a known one may go first: dark by then at the
    # latest (the site's hours are its weakest battery's), not a time it holds to
    upper_bound: bool = False

    @property
    def known(self) -> bool:
        return self.dark_at is not None


@dataclass(frozen=True, slots=True)
class MeetingForecast:
    """A meeting point judged for a meeting of the given duration starting at ``at``."""

    site: str
    name: str | None
    verdict: Verdict
    holds: bool | None  # None: cannot tell (silent, power unknown)
    dark_at: UtcTime | None
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class AreaForecast:
    """An area's hardened stations: when the last one goes dark, if they all do."""

    area: str
    area_name: str | None
    stations: tuple[str, ...]
    dark: int  # of them dark within the horizon (a floor on their time is not counted)
    unknown: int  # of them whose time cannot be forecast, or is only a floor within it
    all_lost_at: UtcTime | None  # the last one dark, within the horizon; else None

    @property
    def loses_all(self) -> bool:
        return self.all_lost_at is not None


@dataclass(frozen=True, slots=True)
class WhatIf:
    province: str
    now: UtcTime
    at: UtcTime
    hours: float
    meeting_s: float
    sites: tuple[SiteForecast, ...]  # soonest dark first, unknown last
    dark_by_hour: tuple[int, ...]  # [h]: sites dark by at + h hours, h = 0 … hours
    meeting_points: tuple[MeetingForecast, ...]
    areas: tuple[AreaForecast, ...]
    # [h]: sites whose time is only a floor, reached by at + h hours: not known dark
    floor_by_hour: tuple[int, ...] = ()
    # sites of the province's inventory with no snapshot at all (one known from its meta
    # alone is in ``sites``, basis ``never_reported``)
    never_reported: tuple[str, ...] = ()

    @property
    def until(self) -> datetime:
        return self.at + timedelta(hours=self.hours)

    def dark_within(self) -> tuple[SiteForecast, ...]:
        """The sites forecast dark before the horizon ends (a floor is no forecast of dark)."""
        return tuple(
            s
            for s in self.sites
            if s.dark_at is not None and s.dark_at <= self.until and not s.lower_bound
        )

    def floors_within(self) -> tuple[SiteForecast, ...]:
        """The sites whose time is only a floor, reached before the horizon ends: they last
        at least that long; whether they go dark within it is not known."""
        return tuple(
            s
            for s in self.sites
            if s.dark_at is not None and s.dark_at <= self.until and s.lower_bound
        )


def _site(
    snapshot: SiteSnapshot, policy: Policy, now: datetime, at: datetime, risk_level: int
) -> SiteForecast:
    meta = snapshot.meta
    # the view its verdict is judged from: the stale window at the province's risk level,
    # its times set right when its agent's clock is proven behind
    view = site_view(snapshot, policy, now, risk_level=risk_level)

    def made(
        mode: PowerMode,
        basis: Basis,
        dark_at: datetime | None,
        lower: bool = False,
        upper: bool = False,
    ) -> SiteForecast:
        if lower and upper:  # neither a floor nor a ceiling: not known
            basis, dark_at, lower, upper = "no_power_data", None, False, False
        return SiteForecast(
            site=snapshot.site,
            province=snapshot.province,
            kind=snapshot.site_kind,
            name=meta.name if meta else None,
            operator=meta.operator if meta else None,
            area=meta.area if meta else None,
            # declared hardened, or of the hardened class (as compliance counts it)
            hardened=snapshot.hardened or snapshot.site_class == "hardened",
            power_now=mode,
            basis=basis,
            dark_at=dark_at,
            lower_bound=lower,
            upper_bound=upper,
        )

    if snapshot.last_report_at is None:  # known from its meta or the register alone
        return made("unknown", "never_reported", None)
    if not view.freshness.fresh:
        return made("unknown", "silent", None)
    thresholds = view.thresholds
    power = assess_power(view.current, thresholds.runtime, thresholds.generator, now)
    if power.mode == "down":
        return made("down", "dark", now)
    partial = power.battery_s is not None and any(b.seconds is None for b in power.batteries)
    if power.mode in ("battery", "generator"):  # mains already gone: its own clock runs
        if power.dark_in_s is None:
            return made(power.mode, "no_power_data", None)
        basis: Basis = "generator" if power.mode == "generator" else "battery"
        if power.mode == "battery" and power.generator_running:
            basis = "battery+generator"
        dark_at = now + timedelta(seconds=power.dark_in_s)
        return made(power.mode, basis, dark_at, power.lower_bound, partial)
    if power.backup_s is None:  # on mains (or not known) and no figure to go on
        return made(power.mode, "no_power_data", None)
    basis = "battery" if power.batteries else "generator"
    if power.batteries and power.generator_present:
        basis = "battery+generator"
    dark_at = at + timedelta(seconds=power.backup_s)
    return made(power.mode, basis, dark_at, power.lower_bound, partial)


def _meeting(
    snapshot: SiteSnapshot,
    site: SiteForecast,
    policy: Policy,
    now: datetime,
    at: datetime,
    meeting_s: float,
    risk_level: int,
) -> MeetingForecast:
    judged = evaluate(
        snapshot,
        policy,
        now,
        risk_level=risk_level,
        meeting_duration_s=meeting_s,
        meeting_starts_at=at,
    )
    holds: bool | None = judged.verdict in ("ready", "degraded")
    if judged.verdict == "unknown":
        holds = None
    reasons = tuple(f.to_reason() for f in judged.findings if f.severity != "info")
    return MeetingForecast(snapshot.site, site.name, judged.verdict, holds, site.dark_at, reasons)


def _areas(
    sites: Iterable[SiteForecast],
    names: Mapping[str, str | None],
    listed: Mapping[str, tuple[str, str | None]],
    until: datetime,
) -> tuple[AreaForecast, ...]:
    """Hardened stations per area; a listed one that never reported, whose time to dark
    within the horizon is only a floor, or beyond it only a ceiling, counts as unknown."""
    by_area: dict[str, list[SiteForecast | None]] = {}
    seen: set[str] = set()
    for s in sites:
        # a station the register lists as hardened is one, whatever its meta says
        if s.site in listed or (s.hardened and s.kind == "station"):
            area = listed.get(s.site, (s.area or "?", None))[0]
            by_area.setdefault(area, []).append(s)
            seen.add(s.site)
    for site, (area, _) in listed.items():
        if site not in seen:
            by_area.setdefault(area, []).append(None)
    found = []
    for area, stations in sorted(by_area.items()):
        timed = [(s, s.dark_at) for s in stations if s is not None and s.dark_at is not None]
        # a time that is only a floor (a source of unknown size counted as nothing) says
        # the station lasts at least that long: beyond the horizon it holds; within it,
        # whether it goes dark is not known
        dark = [at for s, at in timed if at <= until and not s.lower_bound]
        holds = [at for s, at in timed if at > until and not s.upper_bound]
        unknown = len(stations) - len(dark) - len(holds)
        lost_at = max(dark) if dark and len(dark) == len(stations) else None
        found.append(
            AreaForecast(
                area=area,
                area_name=names.get(area),
                stations=tuple(sorted(s.site for s in stations if s is not None)),
                dark=len(dark),
                unknown=unknown,
                all_lost_at=lost_at,
            )
        )
    return tuple(found)


def forecast(
    snapshots: Iterable[SiteSnapshot],
    policy: Policy,
    now: datetime,
    *,
    province: str,
    at: datetime | None = None,
    hours: float = 12.0,
    meeting_s: float | None = None,
    risk_level: Callable[[str], int] = lambda _p: 0,
    hardened_listed: Iterable[ExpectedSite] = (),
    inventory: Iterable[ExpectedSite] = (),
) -> WhatIf:
    """Mains forced off in ``province`` at ``at`` (default and earliest: ``now``).

    ``hardened_listed``: the inventory's hardened stations of the province, so an area
    whose station never reported is not taken for one that holds. ``inventory``: the
    whole register (its hardened stations count as ``hardened_listed``); a site of the
    province it lists that never reported is named in ``never_reported``.
    """
    if now.tzinfo is None or (at is not None and at.tzinfo is None):
        raise ValueError("now and at must be timezone-aware")
    if not 0 < hours <= 24 * 14:
        raise ValueError(f"hours must be > 0 and at most 14 days, got {hours}")
    start = max(at or now, now)
    duration = meeting_s if meeting_s is not None else policy.meeting.duration_s
    if duration <= 0:
        raise ValueError(f"meeting_s must be > 0, got {meeting_s}")
    mine = [s for s in snapshots if s.province == province]
    level = risk_level(province)
    sites = [(snapshot, _site(snapshot, policy, now, start, level)) for snapshot in mine]
    ordered = sorted(
        (f for _, f in sites),
        key=lambda f: (f.dark_at is None, f.dark_at or now, f.site),
    )
    steps = int(hours) + (0 if float(hours).is_integer() else 1)
    marks = [
        min(start + timedelta(hours=h), start + timedelta(hours=hours)) for h in range(steps + 1)
    ]

    def count(floor: bool) -> tuple[int, ...]:
        return tuple(
            sum(
                1
                for f in ordered
                if f.dark_at is not None and f.lower_bound is floor and f.dark_at <= mark
            )
            for mark in marks
        )

    meetings = tuple(
        sorted(
            (
                _meeting(snapshot, f, policy, now, start, duration, level)
                for snapshot, f in sites
                if snapshot.site_kind == "meeting_point"
            ),
            key=lambda m: (m.holds is not False, m.holds is None, m.site),
        )
    )
    names = {s.meta.area: s.meta.area_name for s in mine if s.meta is not None and s.meta.area}
    register = [e for e in (*hardened_listed, *inventory) if e.province == province]
    listed = {e.site: (e.area, e.area_name) for e in register if e.hardened and e.kind == "station"}
    # a site with a snapshot and no report yet (its meta, its Will) is in ``sites``, silent
    known = {s.site for s in mine}
    never = sorted({e.site for e in register if e.site not in known})
    names.update({area: name for area, name in listed.values() if name})
    until = start + timedelta(hours=hours)
    return WhatIf(
        province=province,
        now=now,
        at=start,
        hours=hours,
        meeting_s=duration,
        sites=tuple(ordered),
        dark_by_hour=count(False),
        meeting_points=meetings,
        areas=_areas(ordered, names, listed, until),
        floor_by_hour=count(True),
        never_reported=tuple(never),
    )


def within_tolerance(forecast_at: datetime, seen_at: datetime, since: datetime) -> bool:
    """A forecast dark time against the one seen: within 15 min, or 5 % of the time to dark."""
    error = abs((forecast_at - seen_at).total_seconds())
    span = max(0.0, (seen_at - since).total_seconds())
    return error <= max(TOLERANCE_S, span * TOLERANCE_PCT / 100)
