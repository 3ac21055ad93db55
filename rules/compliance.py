"""Hardened-station compliance: does each area have its compliant hardened stations?

Pure: no I/O, no clock; ``now`` is passed in. What is judged, and from what:

- **declared capability** for the links: a fibre path and a second SRLG-disjoint
  path, from the paths the site declares in its meta (plus any its newest reports
  carry, with the shared-risk groups of both, via ``rules.paths``; a path it stopped
  reporting and no longer declares is gone), whether up or down right
  now: a fibre cut in a storm does not make a station non-compliant, a station
  built with one fibre does. With ``require_fibre`` the independent set must
  include a fibre path;
- **the fuel in the tank now** for power: battery + generator autonomy from the
  newest readings (``rules.autonomy``), against ``min_autonomy_h`` (a battery of unknown
  hours beside a known one leaves the batteries counted as nothing: the site's battery
  hours are its weakest battery's, which is not known). A generator
  whose autonomy cannot be computed fails (``generator_autonomy_unknown``): the
  ministry asks whether stations *truly* meet the standard. A generator whose
  controller says stopped while mains are gone and the site runs on battery did not
  start: its fuel is not counted (``generator_not_started``), only the battery left;
- **current state** only for ``silent`` (stale or offline, ``rules.freshness``).

Stations count from the inventory (the ministry's register), by its area and its
``hardened`` flag; a station that never reported is ``unknown`` and counts as
missing. A reporting site absent from the inventory is listed apart and counts
nowhere. ``missing = max(0, required - compliant)``.

Carriers (post-Yagi: every locality has >= ``required_carriers``) are those **seen up
now** on the area's paths: the ``provider`` of every link up in the current reports of
the area's fresh sites (hardened or not). The inventory's operators are listed apart
(``carriers``); one of them no path of the area shows up now is named
``carriers_inventory_only``: on paper, not seen. An area **meets** the requirement only
when it has its compliant stations *and* its carriers seen up (``stations_meet`` and
``carriers_ok``): the report lists both rules, so a verdict that ignored one would read
as both met. ``required_carriers: 0`` leaves the carriers out of the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from contract.wire import Media, SiteKind, UtcTime
from rules import freshness, texts
from rules.autonomy import assess_power
from rules.compliance_policy import AreaLevel, CompliancePolicy, Settings, settings_of
from rules.paths import PathInfo, assess_paths, max_independent
from rules.policy import Policy
from rules.snapshot import SiteSnapshot
from rules.texts import Lang

__all__ = [
    "AreaCompliance",
    "CompliancePolicy",
    "ComplianceReport",
    "Criterion",
    "ExpectedSite",
    "Settings",
    "StationCompliance",
    "StationStatus",
    "build_report",
    "settings_of",
    "station_compliance",
]

StationStatus = Literal["compliant", "non_compliant", "unknown"]


class ExpectedSite(Protocol):
    """A site of the inventory, as the rules need it (``collector.inventory.InventorySite``)."""

    @property
    def site(self) -> str: ...
    @property
    def kind(self) -> SiteKind: ...
    @property
    def name(self) -> str | None: ...
    @property
    def operator(self) -> str | None: ...
    @property
    def province(self) -> str: ...
    @property
    def province_name(self) -> str | None: ...
    @property
    def area(self) -> str: ...
    @property
    def area_name(self) -> str | None: ...
    @property
    def hardened(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Criterion:
    """One failed criterion: a stable ``code``; ``text_key`` picks the wording."""

    code: str
    numbers: Mapping[str, float | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    text_key: str | None = None

    def text(self, lang: Lang) -> str:
        return texts.render(self.text_key or self.code, lang, self.numbers, self.labels)


@dataclass(frozen=True, slots=True)
class StationCompliance:
    site: str
    name: str | None
    province: str
    area: str
    area_name: str | None
    operator: str | None
    declared_hardened: bool
    in_inventory: bool
    status: StationStatus
    failed: tuple[Criterion, ...] = ()
    autonomy_h: float | None = None
    independent_paths: int | None = None
    last_report_at: UtcTime | None = None

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.failed)

    @property
    def silent(self) -> bool:
        return "silent" in self.codes


@dataclass(frozen=True, slots=True)
class AreaCompliance:
    area: str
    area_name: str | None
    required: int
    stations: tuple[StationCompliance, ...]  # the hardened stations the inventory declares
    carriers: tuple[str, ...]  # operators with a station here in the inventory
    carriers_live: tuple[str, ...]  # ... of which one station reports now
    required_carriers: int
    # providers of the paths the area's fresh sites report up now (what the verdict counts)
    carriers_up: tuple[str, ...] = ()
    # paths up now that name no provider: a carrier the verdict cannot count (the site's
    # path config lacks ``provider``), said so that "no carrier" is not read as none there
    paths_up_unnamed: int = 0

    def _count(self, status: StationStatus) -> int:
        return sum(1 for s in self.stations if s.status == status)

    @property
    def declared(self) -> int:
        return len(self.stations)

    @property
    def compliant(self) -> int:
        return self._count("compliant")

    @property
    def non_compliant(self) -> int:
        return self._count("non_compliant")

    @property
    def never_reported(self) -> int:
        return self._count("unknown")

    @property
    def missing(self) -> int:
        return max(0, self.required - self.compliant)

    @property
    def stations_meet(self) -> bool:
        return self.compliant >= self.required

    @property
    def carriers_ok(self) -> bool:
        return len(self.carriers_up) >= self.required_carriers

    @property
    def carriers_inventory_only(self) -> tuple[str, ...]:
        """The inventory's operators here that no path of the area shows up now."""
        return tuple(c for c in self.carriers if c not in self.carriers_up)

    @property
    def meets(self) -> bool:
        """Its compliant stations and its carriers seen up: both rules the report lists."""
        return self.stations_meet and self.carriers_ok


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    province: str
    province_name: str | None
    generated_at: UtcTime
    settings: Settings
    areas: tuple[AreaCompliance, ...]
    unlisted: tuple[StationCompliance, ...]  # reporting, absent from the inventory

    @property
    def stations(self) -> tuple[StationCompliance, ...]:
        return tuple(s for a in self.areas for s in a.stations)

    def total(self, what: Literal["declared", "compliant", "non_compliant", "missing"]) -> int:
        return sum(int(getattr(a, what)) for a in self.areas)

    @property
    def never_reported(self) -> int:
        return sum(a.never_reported for a in self.areas)

    @property
    def silent(self) -> int:
        return sum(1 for s in self.stations if s.silent)

    @property
    def areas_meeting(self) -> int:
        return sum(1 for a in self.areas if a.meets)

    @property
    def carriers(self) -> tuple[str, ...]:
        """The inventory's operators, in every area."""
        return tuple(sorted({c for a in self.areas for c in a.carriers}))

    @property
    def carriers_up(self) -> tuple[str, ...]:
        """The carriers seen up now on a path of the province's sites."""
        return tuple(sorted({c for a in self.areas for c in a.carriers_up}))


# --- one station


def _anchored(paths: Sequence[PathInfo], require_fibre: bool) -> int:
    """Size of the largest SRLG-disjoint set, holding a fibre path if one is required."""
    fibres = [p for p in paths if p.media == "fibre"]
    if not require_fibre or not fibres:
        return len(max_independent(paths))
    best = 0
    for fibre in fibres:
        rest = [p for p in paths if p is not fibre and not p.srlg & fibre.srlg]
        best = max(best, 1 + len(max_independent(rest)))
    return best


def _shared_pair(paths: Sequence[PathInfo]) -> dict[str, str] | None:
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            common = a.srlg & b.srlg
            if common:
                return {"a": a.path, "b": b.path, "srlg": min(common)}
    return None


def _known_paths(snapshot: SiteSnapshot) -> list[PathInfo]:
    """Every path the site declares or reports, with the groups of both, taken as up."""
    media: dict[str, Media] = {}
    groups: dict[str, set[str]] = {}
    for decl in snapshot.meta.paths if snapshot.meta is not None else ():
        media[decl.path] = decl.media
        groups[decl.path] = set(decl.srlg)
    for name, (link, _) in snapshot.links.items():
        media.setdefault(name, link.media)  # the declaration wins: it is the capability
        groups.setdefault(name, set()).update(link.srlg)
    return [PathInfo(name, media[name], frozenset(groups[name]), True) for name in sorted(media)]


def _path_criteria(snapshot: SiteSnapshot, settings: Settings) -> tuple[list[Criterion], int]:
    # declared capability, not the state now (see the module docstring)
    paths = _known_paths(snapshot)
    failed: list[Criterion] = []
    has_fibre = any(p.media == "fibre" for p in paths)
    if settings.require_fibre and not has_fibre:
        failed.append(Criterion("no_fibre_path", {"declared": len(paths)}))
    independent = _anchored(paths, settings.require_fibre)
    required = settings.required_independent_paths
    if independent < required:
        numbers = {"independent": independent, "declared": len(paths), "required": required}
        pair = _shared_pair(paths)
        key = None if pair is None else "no_second_independent_path_shared"
        failed.append(Criterion("no_second_independent_path", numbers, pair or {}, key))
    return failed, independent


def _power_criteria(
    snapshot: SiteSnapshot, policy: Policy, settings: Settings, now: datetime
) -> tuple[list[Criterion], float | None]:
    power = assess_power(snapshot, policy.runtime_trust, policy.generator, now)
    declared = snapshot.meta is not None and any(
        d.role == "generator" for d in snapshot.meta.devices
    )
    required_h = settings.min_autonomy_h
    battery_h = None if power.battery_s is None else power.battery_s / 3600
    if not (power.generator_present or declared):
        return [Criterion("no_generator", {"required_h": required_h})], battery_h
    if power.mode in ("battery", "down") and power.generator_running is False:
        # mains are gone and the controller says the set is stopped: it did not start.
        # Its fuel is no autonomy the station has now (a failed start may not be fixed
        # before the battery runs out), so only the battery left counts
        left_h = None if power.dark_in_s is None else power.dark_in_s / 3600
        numbers = {
            "battery_h": left_h,
            "generator_h": None if power.generator_s is None else power.generator_s / 3600,
            "required_h": required_h,
        }
        key = {
            (True, True): "generator_not_started",
            (False, True): "generator_not_started_no_battery",
            (True, False): "generator_not_started_no_fuel",
            (False, False): "generator_not_started_no_battery_no_fuel",
        }[(left_h is not None, power.generator_s is not None)]
        return [Criterion("generator_not_started", numbers, text_key=key)], left_h
    if power.generator_s is None:
        numbers = {"battery_h": battery_h, "required_h": required_h, "tightened_at_level": None}
        target = {"target": "station:hardened"}  # the ministry's standard, whatever the risk
        return [Criterion("generator_autonomy_unknown", numbers, target)], None
    generator_h = power.generator_s / 3600
    # a battery of unknown hours beside a known one may be the weakest: the known hours
    # are at most what the batteries give, so only the fuel is counted as known
    partial = any(b.seconds is None for b in power.batteries)
    total_h = generator_h + (0.0 if partial else battery_h or 0.0)
    if total_h < required_h:
        numbers = {"autonomy_h": total_h, "generator_h": generator_h, "required_h": required_h}
        return [Criterion("generator_autonomy_short", numbers)], total_h
    return [], total_h


def _station(
    snapshot: SiteSnapshot | None,
    expected: ExpectedSite | None,
    status: StationStatus,
    failed: Sequence[Criterion],
    autonomy_h: float | None = None,
    independent: int | None = None,
) -> StationCompliance:
    """The identity from the inventory; from the meta for a site absent from it."""
    judged = (status, tuple(failed), autonomy_h, independent)
    last = None if snapshot is None else snapshot.last_report_at
    if expected is not None:
        return StationCompliance(
            expected.site, expected.name, expected.province, expected.area,
            expected.area_name, expected.operator, expected.hardened, True, *judged, last,
        )  # fmt: skip
    assert snapshot is not None  # station_compliance checks one of them is given
    meta = snapshot.meta
    if meta is None:
        return StationCompliance(
            snapshot.site, None, snapshot.province, "?", None, None, False, False, *judged, last
        )
    return StationCompliance(
        snapshot.site, meta.name, snapshot.province, meta.area or "?", meta.area_name,
        meta.operator, meta.hardened, False, *judged, last,
    )  # fmt: skip


def _judge(
    snapshot: SiteSnapshot | None,
    expected: ExpectedSite | None,
    policy: Policy,
    settings: Settings,
    now: datetime,
) -> StationCompliance:
    failed = [] if expected is not None else [Criterion("not_in_inventory")]
    if snapshot is None or snapshot.last_report_at is None:
        failed.append(Criterion("never_reported"))
        return _station(snapshot, expected, "unknown", failed)
    meta = snapshot.meta
    if expected is None and (meta is None or not meta.hardened):
        return _station(snapshot, expected, "non_compliant", failed)
    fresh = freshness.check(snapshot, policy.freshness, now)
    if not fresh.fresh:
        key = "silent_offline" if snapshot.online is False else None
        numbers = {
            "age_s": fresh.age_s,
            "stale_after_s": freshness.stale_after_s(snapshot, policy.freshness),
        }
        failed.append(Criterion("silent", numbers, text_key=key))
    elif fresh.clock_shift_s:  # its agent's clock proven behind: its times set right
        snapshot = snapshot.shifted(fresh.clock_shift_s)
    if meta is None:
        failed.append(Criterion("meta_missing"))
    elif not meta.hardened and meta.site_class != "hardened":
        failed.append(Criterion("not_declared_hardened"))
    # a power device that stopped answering must not keep its last fuel level, nor a
    # path the site stopped reporting (gone from its config: a tower that fell, a
    # contract ended) count as capability for ever: the collector keeps every path a
    # site ever reported. A path its meta still declares counts, reported or not.
    current = snapshot.current(freshness.stale_after_s(snapshot, policy.freshness))
    power, autonomy_h = _power_criteria(current, policy, settings, now)
    paths, independent = _path_criteria(current, settings)
    failed += power + paths
    status: StationStatus = "non_compliant" if failed else "compliant"
    return _station(snapshot, expected, status, failed, autonomy_h, independent)


def station_compliance(
    snapshot: SiteSnapshot | None,
    inventory_site: ExpectedSite | None,
    policy: Policy,
    now: datetime,
    *,
    compliance: CompliancePolicy | None = None,
) -> StationCompliance:
    """Judge one hardened station; ``inventory_site=None`` for a site not in the inventory."""
    if snapshot is None and inventory_site is None:
        raise ValueError("give the snapshot, the inventory site or both")
    return _judge(snapshot, inventory_site, policy, settings_of(policy, compliance), now)


# --- a province


@dataclass(slots=True)
class _Area:
    name: str | None
    stations: list[StationCompliance] = field(default_factory=list)
    carriers: set[str] = field(default_factory=set)
    live: set[str] = field(default_factory=set)
    up: set[str] = field(default_factory=set)
    unnamed: int = 0


def _paths_up(snapshot: SiteSnapshot, policy: Policy) -> tuple[set[str], int]:
    """The providers of the paths a fresh site has up in its current readings, and how
    many paths up name none. Up as the verdict counts it (``rules.paths``): not a path
    reported up with no probe sent, nor one losing more than the usable share."""
    current = snapshot.current(freshness.stale_after_s(snapshot, policy.freshness))
    judged = assess_paths(current, usable_loss_pct=policy.multipath.usable_loss_pct)
    up = [current.links[p.path][0] for p in judged.up if p.path in current.links]
    return {link.provider for link in up if link.provider}, sum(1 for x in up if not x.provider)


def build_report(
    snapshots: Mapping[str, SiteSnapshot],
    inventory: Iterable[ExpectedSite],
    policy: Policy,
    now: datetime,
    *,
    province: str,
    area_level: AreaLevel | None = None,
    compliance: CompliancePolicy | None = None,
    policy_source: str = "rules/default-policy.yaml",
    expected_areas: Mapping[str, str] | None = None,
) -> ComplianceReport:
    """The compliance of every area of ``province`` at ``now``.

    ``expected_areas`` (slug → name) lists areas that must appear even where the
    inventory holds no station: otherwise an area is known only through its sites.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    settings = settings_of(policy, compliance, source=policy_source, area_level=area_level)
    areas = {slug: _Area(name) for slug, name in (expected_areas or {}).items()}
    listed: set[str] = set()
    province_name: str | None = None
    for item in inventory:
        listed.add(item.site)  # listed in any province: not "absent from the inventory"
        if item.province != province or item.kind not in settings.kinds:
            continue
        province_name = province_name or item.province_name
        by_area = settings.area_level == "area"
        key = item.area if by_area else item.province
        acc = areas.setdefault(key, _Area(item.area_name if by_area else item.province_name))
        acc.name = acc.name or (item.area_name if by_area else item.province_name)
        snap = snapshots.get(item.site)
        live = False
        if item.hardened:
            judged = _judge(snap, item, policy, settings, now)
            acc.stations.append(judged)
            live = judged.last_report_at is not None and not judged.silent
        elif snap is not None:
            live = freshness.check(snap, policy.freshness, now).fresh
        if live and snap is not None:
            providers, unnamed = _paths_up(snap, policy)
            acc.up |= providers
            acc.unnamed += unnamed
        if item.operator:
            acc.carriers.add(item.operator)
            if live:
                acc.live.add(item.operator)
    unlisted = [
        _judge(snap, None, policy, settings, now)
        for site, snap in snapshots.items()
        if site not in listed and snap.province == province
    ]
    return ComplianceReport(
        province=province,
        province_name=province_name,
        generated_at=now,
        settings=settings,
        areas=tuple(
            AreaCompliance(
                area=slug,
                area_name=acc.name,
                required=settings.required_per_area,
                stations=tuple(sorted(acc.stations, key=lambda s: s.site)),
                carriers=tuple(sorted(acc.carriers)),
                carriers_live=tuple(sorted(acc.live)),
                required_carriers=settings.required_carriers,
                carriers_up=tuple(sorted(acc.up)),
                paths_up_unnamed=acc.unnamed,
            )
            for slug, acc in sorted(areas.items())
        ),
        unlisted=tuple(sorted(unlisted, key=lambda s: s.site)),
    )
