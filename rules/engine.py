"""``evaluate(snapshot, policy, now)``: every rule that applies, one verdict, no I/O.

Order and suppression (a parent fault raises one finding, not a cascade):

1. freshness: a stale, offline or never-seen site is ``unknown`` with the freshness
   finding alone — nothing else about it is current; a site whose agent's clock is
   proven behind (``clock_corrected``, rules/freshness.py) has its times set right;
2. the site's readings older than the stale window are dropped (``SiteSnapshot.current``);
3. power and paths are assessed once and handed to every rule of the site's kind;
4. a site whose power is down keeps only its power finding; a site whose last path
   is down keeps one transport finding (``path_all_down``) and no link-quality or
   other multipath findings.

Hold times (``hold_s``) are policy data for the caller, which keeps the history that
hysteresis needs; this function is stateless.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from contract.wire import SiteKind, StationState, Status, Verdict
from plumbing.untrusted import shown_name
from rules import backup_power, freshness, link_quality, meeting, multipath, station_state
from rules.autonomy import PowerAssessment, assess_power
from rules.context import RuleContext
from rules.findings import Finding, RuleName, verdict_of
from rules.paths import PathAssessment, assess_paths
from rules.policy import Policy
from rules.snapshot import SiteSnapshot
from rules.thresholds import Thresholds, effective

Rule = Callable[[RuleContext], tuple[Finding, ...]]
RULES: Mapping[RuleName, Rule] = MappingProxyType(
    {
        "station_state": station_state.check,
        "backup_power": backup_power.check,
        "multipath": multipath.check,
        "link_quality": link_quality.check,
        "meeting": meeting.check,
    }
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    site: str
    site_kind: SiteKind | None
    verdict: Verdict
    station_state: StationState
    findings: tuple[Finding, ...]
    evaluated_at: datetime
    risk_level: int = 0
    backup_hours: float | None = None
    dark_in_s: float | None = None
    independent_paths_up: int | None = None


def _suppress(
    findings: list[Finding], power: PowerAssessment, paths: PathAssessment
) -> list[Finding]:
    if power.mode == "down":
        return [f for f in findings if f.rule in ("freshness", "station_state")]
    if paths.all_down:
        return [
            f
            for f in findings
            if f.rule != "link_quality" and (f.rule != "multipath" or f.code == "path_all_down")
        ]
    return findings


def site_thresholds(snapshot: SiteSnapshot, policy: Policy, risk_level: int = 0) -> Thresholds:
    """The thresholds the site is judged by: its kind's and class's, at this risk level."""
    kind: SiteKind = snapshot.site_kind or "station"
    return effective(policy, kind, snapshot.site_class, risk_level, hardened=snapshot.hardened)


def site_freshness(
    snapshot: SiteSnapshot, policy: Policy, now: datetime, *, risk_level: int = 0
) -> freshness.FreshnessResult:
    """Whether the site is fresh, stale or offline at ``now``, by the window :func:`evaluate`
    judges it by (a risk step may shorten it): what a summary or list that leaves silent
    sites out must ask, so it never counts as live a site whose verdict says silent."""
    return _freshness(snapshot, site_thresholds(snapshot, policy, risk_level), now)


def _freshness(
    snapshot: SiteSnapshot, thresholds: Thresholds, now: datetime
) -> freshness.FreshnessResult:
    return freshness.check(
        snapshot,
        thresholds.freshness,
        now,
        tightened_at_level=thresholds.tightened_at("stale_intervals"),
    )


@dataclass(frozen=True, slots=True)
class SiteView:
    """What a site is judged from at ``now``: its thresholds at the risk level, its
    freshness, and its readings as :func:`evaluate` reads them (times set right when its
    agent's clock is proven behind; readings older than the stale window dropped)."""

    thresholds: Thresholds
    freshness: freshness.FreshnessResult
    current: SiteSnapshot


def site_view(
    snapshot: SiteSnapshot, policy: Policy, now: datetime, *, risk_level: int = 0
) -> SiteView:
    """The view :func:`evaluate` judges a site from: what any forecast or report that reads
    a site's power or paths must start from, so it never says other than its verdict."""
    thresholds = site_thresholds(snapshot, policy, risk_level)
    fresh = _freshness(snapshot, thresholds, now)
    if fresh.fresh and fresh.clock_shift_s:  # its agent's clock proven behind: set right
        snapshot = snapshot.shifted(fresh.clock_shift_s)
    current = snapshot.current(freshness.stale_after_s(snapshot, thresholds.freshness))
    return SiteView(thresholds, fresh, current)


def evaluate(
    snapshot: SiteSnapshot,
    policy: Policy,
    now: datetime,
    *,
    risk_level: int = 0,
    meeting_duration_s: float | None = None,
    meeting_starts_at: datetime | None = None,
) -> Evaluation:
    """Judge one site at ``now`` (timezone-aware) at the province's risk level (0–5).

    A planned meeting is ``meeting_starts_at`` (default: now) for ``meeting_duration_s``
    (default: the policy's); meeting points are judged for it (``rules/meeting.py``).
    """
    if not 0 <= risk_level <= 5:
        raise ValueError(f"risk_level must be 0 (none) to 5, got {risk_level}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if meeting_duration_s is not None and meeting_duration_s <= 0:
        raise ValueError(f"meeting_duration_s must be > 0, got {meeting_duration_s}")
    if meeting_starts_at is not None and meeting_starts_at.tzinfo is None:
        raise ValueError("meeting_starts_at must be timezone-aware")
    view = site_view(snapshot, policy, now, risk_level=risk_level)
    thresholds, fresh, current = view.thresholds, view.freshness, view.current
    if not fresh.fresh:
        return Evaluation(
            site=snapshot.site,
            site_kind=snapshot.site_kind,
            verdict="unknown",
            station_state="unknown",
            findings=fresh.findings,
            evaluated_at=now,
            risk_level=risk_level,
        )

    power = assess_power(current, thresholds.runtime, thresholds.generator, now)
    paths = assess_paths(current, usable_loss_pct=thresholds.usable_loss_pct)
    ctx = RuleContext(
        snapshot=current,
        thresholds=thresholds,
        now=now,
        power=power,
        paths=paths,
        meeting_duration_s=meeting_duration_s or thresholds.meeting.duration_s,
        meeting_starts_at=meeting_starts_at or now,
    )
    findings = list(fresh.findings)
    if snapshot.meta is None:
        findings.append(ctx.finding("freshness", "warning", "meta_missing", impact="unknown"))
    for name, rule in RULES.items():
        if name in thresholds.rules:
            findings.extend(rule(ctx))
    findings = _suppress(findings, power, paths)
    return Evaluation(
        site=snapshot.site,
        site_kind=snapshot.site_kind,
        verdict=verdict_of(findings),
        station_state=station_state.derive(power, paths),
        findings=tuple(findings),
        evaluated_at=now,
        risk_level=risk_level,
        backup_hours=None if power.backup_s is None else power.backup_s / 3600,
        dark_in_s=power.dark_in_s,
        independent_paths_up=len(paths.independent) if paths.paths else None,
    )


def to_status(evaluation: Evaluation, snapshot: SiteSnapshot) -> Status:
    """The retained status message the collector publishes for this evaluation; the newest
    report's time set right when the agent's clock was proven behind (what the site was
    judged by: a reader must not see a site judged fresh 10 min after its last report)."""
    last_report_at = snapshot.last_report_at
    corrected = freshness.corrected_by_s(evaluation.findings)
    if corrected is not None and last_report_at is not None:
        last_report_at += timedelta(seconds=corrected)
    return Status(
        site=snapshot.site,
        province=snapshot.province,
        site_kind=snapshot.site_kind,
        # a name that shows nothing names nobody: every face falls back to the site's id
        name=shown_name(snapshot.meta.name) if snapshot.meta else None,
        verdict=evaluation.verdict,
        station_state=evaluation.station_state,
        evaluated_at=evaluation.evaluated_at,
        risk_level=evaluation.risk_level,
        backup_hours=evaluation.backup_hours,
        dark_in_s=evaluation.dark_in_s,
        independent_paths_up=evaluation.independent_paths_up,
        last_report_at=last_report_at,
        reasons=tuple(f.to_reason() for f in evaluation.findings),
    )
