"""The thresholds that hold for one site: its kind and class, tightened by the risk level.

Each threshold the province's risk level made stricter is named in ``tightened``, so
that the reasons can say so ("… needs 72 h at risk level 4").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from contract.wire import SiteClass, SiteKind
from rules.findings import RuleName
from rules.policy import (
    BackupTarget,
    BackupTargets,
    FreshnessPolicy,
    GeneratorPolicy,
    LinkQualityPolicy,
    MeetingPolicy,
    Policy,
    RuntimeTrust,
)

Tightenable = Literal["backup", "required_paths", "stale_intervals", "meeting_margin"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    site_kind: SiteKind
    site_class: SiteClass
    risk_level: int
    rules: frozenset[RuleName]
    freshness: FreshnessPolicy
    backup: BackupTarget
    runtime: RuntimeTrust
    generator: GeneratorPolicy
    required_paths: int
    preferred_media: int
    usable_loss_pct: float
    link: LinkQualityPolicy
    meeting: MeetingPolicy
    hold_s: Mapping[RuleName, float]
    # who the backup target is for, as the texts name it: "station:hardened" (the
    # site's own kind and class, before any risk level raised its target)
    backup_for: str = ""
    tightened: frozenset[Tightenable] = frozenset()

    def tightened_at(self, what: Tightenable) -> float | None:
        """The risk level, if it made this threshold stricter; else None (said nowhere)."""
        return float(self.risk_level) if what in self.tightened else None


_CACHE: dict[tuple[int, str, str, int, bool], tuple[Policy, Thresholds]] = {}


def effective(
    policy: Policy,
    site_kind: SiteKind,
    site_class: SiteClass,
    risk_level: int = 0,
    *,
    hardened: bool = False,
) -> Thresholds:
    """The thresholds for a site of this kind and class at this risk level (0 = none).

    Pure, and asked for at every evaluation: the answer is remembered per policy
    object (policies are frozen), so it is computed once per combination.
    """
    key = (id(policy), site_kind, site_class, risk_level, hardened)
    held = _CACHE.get(key)
    if held is not None and held[0] is policy:
        return held[1]
    if len(_CACHE) > 4096:
        _CACHE.clear()
    found = _effective(policy, site_kind, site_class, risk_level, hardened=hardened)
    _CACHE[key] = (policy, found)
    return found


def _effective(
    policy: Policy,
    site_kind: SiteKind,
    site_class: SiteClass,
    risk_level: int = 0,
    *,
    hardened: bool = False,
) -> Thresholds:
    """The thresholds for a site of this kind and class at this risk level (0 = none).

    Risk steps apply in order of ``min_level``; each step at or below the level that
    names this kind overrides what the previous ones set where it is stricter, never where
    it would loosen: a higher level is never judged more leniently than a lower one. A site
    declared hardened is held to the stricter of its class target and the hardened target.
    """
    kind = getattr(policy.kinds, site_kind)
    freshness = policy.freshness
    meeting = policy.meeting
    cls = site_class
    required_paths = policy.multipath.required_paths
    if kind.required_paths is not None:
        required_paths = kind.required_paths
    base_paths, base_freshness, base_meeting = required_paths, freshness, meeting
    targets = policy.backup_power.targets
    for step in policy.risk:
        if step.min_level > risk_level or site_kind not in step.kinds:
            continue
        # a step only ever tightens: what it would loosen (a class with a lower target, a
        # longer stale window, a smaller margin) keeps what the lower levels hold
        cls = _stricter_class(targets, cls, step.class_as.get(cls, cls))
        if step.required_paths is not None:
            required_paths = max(required_paths, step.required_paths)
        if step.stale_intervals is not None and step.stale_intervals < freshness.stale_intervals:
            freshness = freshness.model_copy(update={"stale_intervals": step.stale_intervals})
        if step.meeting_margin_pct is not None and step.meeting_margin_pct > meeting.margin_pct:
            meeting = meeting.model_copy(update={"margin_pct": step.meeting_margin_pct})

    backup, _ = _backup(targets, site_kind, cls, hardened)
    own, own_name = _backup(targets, site_kind, site_class, hardened)
    tightened: set[Tightenable] = set()
    if backup != own:
        tightened.add("backup")
    if required_paths > base_paths:
        tightened.add("required_paths")
    if freshness.stale_intervals < base_freshness.stale_intervals:
        tightened.add("stale_intervals")
    if meeting.margin_pct > base_meeting.margin_pct:
        tightened.add("meeting_margin")

    preferred = policy.multipath.preferred_media
    if kind.preferred_media is not None:
        preferred = kind.preferred_media
    hold: dict[RuleName, float] = {
        "freshness": freshness.hold_s,
        "station_state": 0.0,  # losing the last path or power flips at once
        "backup_power": policy.backup_power.hold_s,
        "multipath": policy.multipath.hold_s,
        "link_quality": policy.link_quality.hold_s,
        "meeting": meeting.hold_s,
    }
    return Thresholds(
        site_kind=site_kind,
        site_class=cls,
        risk_level=risk_level,
        rules=frozenset(kind.rules),
        freshness=freshness,
        backup=backup,
        runtime=policy.runtime_trust,
        generator=policy.generator,
        required_paths=required_paths,
        preferred_media=preferred,
        usable_loss_pct=policy.multipath.usable_loss_pct,
        link=policy.link_quality,
        meeting=meeting,
        hold_s=MappingProxyType(hold),
        backup_for=f"{site_kind}:{own_name}",
        tightened=frozenset(tightened),
    )


def _stricter_class(targets: BackupTargets, held: SiteClass, mapped: SiteClass) -> SiteClass:
    """``mapped`` when its backup target asks no less than ``held``'s; else ``held``."""
    now, then = targets.for_class(held), targets.for_class(mapped)
    if then.warn_below_h >= now.warn_below_h and then.critical_below_h >= now.critical_below_h:
        return mapped
    return held


def _backup(
    targets: BackupTargets, site_kind: SiteKind, cls: SiteClass, hardened: bool
) -> tuple[BackupTarget, str]:
    """The backup target of a site, and the class it is the target of."""
    if site_kind == "meeting_point":
        return targets.meeting_point, "meeting_point"
    backup, name = targets.for_class(cls), cls
    if hardened and targets.hardened.warn_below_h > backup.warn_below_h:
        return targets.hardened, "hardened"  # a site declared hardened is held to it
    return backup, name
