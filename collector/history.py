"""What the collector writes for the dashboards, besides each message's own points. Pure.

The wire messages become points in ``collector/points.py``; verdicts in
``collector/readiness.py``. This module adds what a Grafana panel cannot compute
from those with InfluxQL alone:

=================  =========================  ==============================================
measurement        tags                       fields
=================  =========================  ==============================================
fleet              province, kind, operator   sites; a count per verdict and per station
                                              state; ``paths_<media>`` / ``paths_<media>_up``;
                                              generators, fuel_pct_sum, fuel_pct_min;
                                              boxes not keeping time: ``clock_wrong``,
                                              ``clock_unsynced``, ``clock_<finding>``
attention          site, province, kind,      a site off mains, silent or not ready, each
                   operator                   minute: its ``readiness`` fields and
                                              ``listed``; one point without ``listed`` when
                                              it leaves the list (collector/summaries.py)
link_worst         site, province, kind,      a site whose newest fresh readings lose packets
                   operator                   on a path, each minute: its worst path's
                                              loss_pct, path, up, rtt_ms, media, provider
clock_wrong        site, province, kind,      a site whose box does not keep time, each
                   operator                   minute: synced, reason, behind_s, ahead_s,
                                              off_s, name (collector/clocks.py)
compliance         province, area             declared, compliant, non_compliant, missing,
                                              never_reported, required, meets, carriers…,
                                              ``failed_<criterion>`` counts
compliance_province province                  the same counts, summed over the province's areas
compliance_station site, province, area,      status, status_code, failed, failed_vi,
                   operator                   failed_en, name, autonomy_h, independent_paths
meeting            province, meeting          title, duration_s, points, created_by
rehearsal          site, province, kind,      meeting, passed, problems, problems_vi
                   operator
=================  =========================  ==============================================

``fleet``, ``attention``, ``link_worst`` and ``clock_wrong`` (every minute) and
``compliance`` (every 5 minutes) are written on a timer, so a site that has gone silent is
still counted, as ``unknown``: a query over the per-site points would lose it the moment
its points stop.
``link_worst`` is the NOC's "worst paths" table at national scale: ``TOP`` over the
last 15 min of ~300 000 ``link`` series costs InfluxDB 1.6 seconds, over the few sites
losing packets a fraction of it (docs/capacity.md). A ``meeting``
point is stamped with the meeting's *start*: "the next meetings" is a time range.

Numeric codes let a state timeline colour a verdict and ``max()`` pick the worst
of an interval: the higher, the worse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import get_args

from collector.clocks import CLOCK_COUNTS, clock_wrong
from collector.line_protocol import FieldValue, Point
from collector.points import site_point_tags, site_tags, time_ns
from collector.risk import RiskLevelOf, no_risk
from contract.wire import LinkReading, Media, StationState, Status, Verdict
from rules import Policy, SiteSnapshot, site_freshness
from rules.compliance import ComplianceReport, StationStatus
from rules.rehearsal import Rehearsal

__all__ = [
    "COMPLIANCE_COUNTS",
    "COMPLIANCE_CRITERIA",
    "COMPLIANCE_EVERY_S",
    "FLEET_EVERY_S",
    "FLEET_FIELDS",
    "MEDIA",
    "STATE_CODES",
    "STATION_STATUS_CODES",
    "VERDICT_CODES",
    "compliance_points",
    "fleet_points",
    "meeting_point",
    "one_line",
    "rehearsal_point",
    "worst_link_points",
]

FLEET_EVERY_S = 60
COMPLIANCE_EVERY_S = 300
"""Fixed, not configured: a dashboard turns a sum of summaries into a count per summary
with them (kienco/dashboards/common.py)."""

VERDICT_CODES: Mapping[Verdict, int] = {"ready": 0, "degraded": 1, "unknown": 2, "not_ready": 3}
STATE_CODES: Mapping[StationState, int] = {
    "up_commercial": 0,
    "up_generator": 1,
    "up_battery": 2,
    "unknown": 3,
    "down_transport": 4,
    "down_power": 5,
    "down_damage": 6,
}
STATION_STATUS_CODES: Mapping[StationStatus, int] = {
    "compliant": 0,
    "unknown": 1,
    "non_compliant": 2,
}
MEDIA: tuple[Media, ...] = get_args(Media)

# Every failed criterion rules/compliance.py can give for a listed station: each gets a
# ``failed_<code>`` count, zero included, so a panel's columns never come and go.
COMPLIANCE_CRITERIA: tuple[str, ...] = (
    "never_reported",
    "silent",
    "meta_missing",
    "not_declared_hardened",
    "no_generator",
    "generator_autonomy_unknown",
    "generator_autonomy_short",
    "generator_not_started",
    "no_fibre_path",
    "no_second_independent_path",
)


def one_line(text: str) -> str:
    """Free text on one line: line protocol cannot carry a line break."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


# --- the fleet, per province, kind and operator ------------------------------------


def _state_field(state: StationState) -> str:
    return "state_unknown" if state == "unknown" else state


def _empty_counts() -> dict[str, int]:
    counts = {"sites": 0}
    counts.update((verdict, 0) for verdict in VERDICT_CODES)
    counts.update((_state_field(state), 0) for state in STATE_CODES)
    for media in MEDIA:
        counts[f"paths_{media}"] = 0
        counts[f"paths_{media}_up"] = 0
    counts["generators"] = 0  # fuel levels known (fresh), for a mean across the fleet
    counts.update((name, 0) for name in CLOCK_COUNTS)  # boxes not keeping time
    return counts


FUEL_FIELDS = ("fuel_pct_sum", "fuel_pct_min")  # floats; the minimum only when one is known
FLEET_FIELDS: tuple[str, ...] = (*_empty_counts(), *FUEL_FIELDS)
"""Every field of a ``fleet`` point (all integers)."""

COMPLIANCE_COUNTS: tuple[str, ...] = (
    "declared",
    "compliant",
    "non_compliant",
    "never_reported",
    "missing",
    "required",
    "meets",
    "carriers",
    "carriers_live",
    "carriers_up",
    "carriers_required",
    *(f"failed_{code}" for code in COMPLIANCE_CRITERIA),
)
"""The integer fields of a ``compliance`` point (it also has ``carrier_list``, the
inventory's operators, ``carrier_up_list``, the carriers seen up now, and ``area_name``)."""


def fleet_points(
    sites: Iterable[tuple[SiteSnapshot, Status]],
    policy: Policy,
    at: datetime,
    *,
    stamp: datetime | None = None,
    risk_level: RiskLevelOf = no_risk,
) -> list[Point]:
    """One ``fleet`` point per (province, kind, operator): how many sites in each state at
    ``at``, stamped ``stamp`` (default ``at``). A site is silent by the window its verdict
    is judged by (at its province's ``risk_level``).

    A path counts as declared when the site declares or reports it, and as up when its
    newest reading says so and the site is not silent (a silent site's paths are unknown).
    A box not keeping time counts in ``clock_wrong``, and in ``clock_unsynced`` and each
    of the rules' clock findings that say so (collector/clocks.py).
    """
    groups: dict[tuple[str, str, str | None], dict[str, int]] = {}
    fuel: dict[tuple[str, str, str | None], list[float]] = {}
    for snapshot, status in sites:
        meta = snapshot.meta
        key = (snapshot.province, *site_tags(snapshot))
        counts = groups.get(key)
        if counts is None:
            counts = groups[key] = _empty_counts()
        counts["sites"] += 1
        counts[status.verdict] += 1
        counts[_state_field(status.station_state)] += 1
        media: dict[str, Media] = {p.path: p.media for p in meta.paths} if meta else {}
        for path, (link, _) in snapshot.links.items():
            media.setdefault(path, link.media)
        level = risk_level(snapshot.province)
        fresh = site_freshness(snapshot, policy, at, risk_level=level).fresh
        wrong = clock_wrong(snapshot, status, policy, at, risk_level=level)
        if wrong is not None:
            counts["clock_wrong"] += 1
            counts["clock_unsynced"] += wrong.unsynced
            if wrong.reason is not None:
                counts[wrong.reason] += 1
        for path, medium in media.items():
            counts[f"paths_{medium}"] += 1
            held = snapshot.links.get(path)
            if fresh and held is not None and held[0].up:
                counts[f"paths_{medium}_up"] += 1
        levels = fuel.setdefault(key, [])
        if fresh:
            levels += [r.fuel_pct for r, _ in snapshot.power.values() if r.fuel_pct is not None]
    at_ns = time_ns(stamp or at)
    points = []
    for group, counts in sorted(groups.items(), key=lambda item: (*item[0][:2], item[0][2] or "")):
        levels = fuel[group]
        fields = _as_fields({**counts, "generators": len(levels)})
        fields["fuel_pct_sum"] = float(sum(levels))
        fields["fuel_pct_min"] = float(min(levels)) if levels else None
        province, kind, operator = group
        tags = {"province": province, "kind": kind, "operator": operator}
        points.append(Point.make("fleet", tags, fields, at_ns))
    return points


def worst_link_points(
    sites: Iterable[tuple[SiteSnapshot, Status]],
    policy: Policy,
    at: datetime,
    stamp: datetime,
    *,
    risk_level: RiskLevelOf = no_risk,
) -> list[Point]:
    """A ``link_worst`` point per site losing packets now, stamped ``stamp``: of its paths'
    newest readings, the one with the most loss (``loss_pct`` > 0), with the site's
    ``readiness`` tags. A silent site is left out (its paths are unknown; ``attention``
    lists it), as is a site with no loss or no loss figure. Sampled each minute: a
    site reporting faster shows its newest reading at each minute."""
    points: list[Point] = []
    at_ns = time_ns(stamp)
    for snapshot, _ in sites:
        worst: LinkReading | None = None
        for link, _taken in snapshot.links.values():
            loss = link.loss_pct
            if loss is not None and loss > 0 and (worst is None or loss > (worst.loss_pct or 0)):
                worst = link
        if (
            worst is None
            or not site_freshness(
                snapshot, policy, at, risk_level=risk_level(snapshot.province)
            ).fresh
        ):
            continue
        tags = site_point_tags(snapshot)
        fields: dict[str, FieldValue | None] = {
            "loss_pct": float(worst.loss_pct or 0),
            "path": worst.path,
            "up": worst.up,
            "rtt_ms": None if worst.rtt_ms is None else float(worst.rtt_ms),
            "media": worst.media,
            "provider": worst.provider,
        }
        points.append(Point.make("link_worst", tags, fields, at_ns))
    return points


def _as_fields(counts: Mapping[str, int]) -> dict[str, FieldValue | None]:
    return dict(counts)


# --- hardened-station compliance, per area and per station ------------------------------


def compliance_points(report: ComplianceReport, at: datetime) -> list[Point]:
    """A ``compliance`` point per area of the report, a ``compliance_station`` per station,
    and the province's totals (``compliance_province``: its trend over days reads a few
    dozen series, not thousands of communes)."""
    at_ns = time_ns(at)
    points: list[Point] = []
    totals = dict.fromkeys(COMPLIANCE_COUNTS, 0)
    for area in report.areas:
        failed = dict.fromkeys(COMPLIANCE_CRITERIA, 0)
        for station in area.stations:
            for code in station.codes:
                failed[code] = failed.get(code, 0) + 1
        fields: dict[str, FieldValue | None] = {
            "declared": area.declared,
            "compliant": area.compliant,
            "non_compliant": area.non_compliant,
            "never_reported": area.never_reported,
            "missing": area.missing,
            "required": area.required,
            "meets": int(area.meets),
            "carriers": len(area.carriers),
            "carriers_live": len(area.carriers_live),
            # the carriers the area's verdict counts: seen up now on its sites' paths
            "carriers_up": len(area.carriers_up),
            "carrier_up_list": ", ".join(area.carriers_up),
            "carriers_required": area.required_carriers,
            "carrier_list": ", ".join(area.carriers),
            "area_name": None if area.area_name is None else one_line(area.area_name),
        }
        fields.update((f"failed_{code}", count) for code, count in failed.items())
        for name in COMPLIANCE_COUNTS:
            totals[name] += int(fields.get(name) or 0)
        tags = {"province": report.province, "area": area.area}
        points.append(Point.make("compliance", tags, fields, at_ns))
        for station in area.stations:
            station_tags = {**tags, "site": station.site, "operator": station.operator}
            station_fields: dict[str, FieldValue | None] = {
                "status": station.status,
                "status_code": STATION_STATUS_CODES[station.status],
                "failed": ",".join(station.codes),
                "failed_vi": one_line("; ".join(c.text("vi") for c in station.failed)),
                "failed_en": one_line("; ".join(c.text("en") for c in station.failed)),
                "name": None if station.name is None else one_line(station.name),
                "autonomy_h": station.autonomy_h,
                "independent_paths": station.independent_paths,
            }
            points.append(Point.make("compliance_station", station_tags, station_fields, at_ns))
    if report.areas:
        province: dict[str, FieldValue | None] = dict(totals)
        points.append(
            Point.make("compliance_province", {"province": report.province}, province, at_ns)
        )
    return points


# --- meetings and rehearsals ------------------------------------------------------------


def meeting_point(
    meeting_id: str,
    title: str,
    starts_at: datetime,
    duration_s: float,
    points: Sequence[str],
    *,
    province: str | None,
    created_by: str,
) -> Point:
    """The planned meeting, stamped at its start (so "the next meetings" is a time range)."""
    return Point.make(
        "meeting",
        {"province": province, "meeting": meeting_id},
        {
            "title": one_line(title),
            "duration_s": float(duration_s),
            "points": len(points),
            "created_by": one_line(created_by),
        },
        time_ns(starts_at),
    )


def rehearsal_point(
    meeting_id: str, province: str, rehearsal: Rehearsal, snapshot: SiteSnapshot | None
) -> Point:
    """One point's pre-meeting check; ``problems_vi`` are the rehearsal's own texts.
    Tagged with what is fixed with the site (``site_tags``), as its ``readiness``."""
    kind, operator = site_tags(snapshot)
    return Point.make(
        "rehearsal",
        {"site": rehearsal.site, "province": province, "kind": kind, "operator": operator},
        {
            "meeting": meeting_id,
            "passed": rehearsal.passed,
            "problems": len(rehearsal.problems),
            "problems_vi": one_line(" • ".join(rehearsal.problems)),
        },
        time_ns(rehearsal.at),
    )
