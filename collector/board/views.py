"""What each page shows, worked out from the collector's verdicts and sites. Pure: no I/O.

The routes (collector/board/routes.py) fetch the parts, keep what the viewer may
see, and hand them here; the templates only lay out what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collector.meetings import Meeting, MeetingStatus
from contract.wire import LinkReading, PowerReading, Status
from rules import SiteSnapshot
from rules.freshness import corrected_by_s
from rules.paths import measured_up
from rules.rehearsal import Rehearsal

__all__ = [
    "DARK_SOON_S",
    "DARK_STATES",
    "VERDICT_ORDER",
    "DeviceLine",
    "MeetingView",
    "PathLine",
    "ProvinceLine",
    "SiteLine",
    "SiteView",
    "meeting_view",
    "overview",
    "province_lines",
    "site_view",
    "verdict_counts",
]

VERDICT_ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}
"""Worst first."""
STATE_ORDER = {
    "down_power": 0,
    "down_damage": 1,
    "down_transport": 2,
    "up_battery": 3,
    "unknown": 4,
    "up_generator": 5,
    "up_commercial": 6,
}
DARK_STATES = frozenset({"down_power", "down_damage"})
"""A station without power: dark to the network, whatever its links."""
DARK_SOON_S = 2 * 3600
"""The overview's horizon: on battery or generator, dark within 2 h."""

SnapshotOf = Callable[[str], SiteSnapshot | None]


def verdict_counts(statuses: Iterable[Status]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICT_ORDER, 0)
    for status in statuses:
        counts[status.verdict] += 1
    return counts


def dark_at(status: Status) -> datetime | None:
    """When a site on battery or generator goes dark, as its last judgement said."""
    if status.dark_in_s is None:
        return None
    return status.evaluated_at + timedelta(seconds=status.dark_in_s)


# --- overview -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProvinceLine:
    """One province on the overview."""

    province: str
    risk_level: int
    sites: int = 0
    points: int = 0  # meeting points
    points_ready: int = 0
    stations: int = 0
    on_battery: int = 0
    on_generator: int = 0
    dark: int = 0
    dark_soon: int = 0  # stations on battery or generator, dark within DARK_SOON_S
    silent: int = 0  # stations whose state is not known: silent, or never heard
    cut_off: int = 0  # stations up on power, every path down: out of service (transport)
    rooms: int = 0  # power rooms: what they feed goes dark with them
    rooms_dark: int = 0
    rooms_on_backup: int = 0  # on battery or generator
    rooms_dark_soon: int = 0  # on battery or generator, dark within DARK_SOON_S
    rooms_silent: int = 0
    verdicts: Mapping[str, int] = field(default_factory=dict)

    @property
    def points_ready_share(self) -> float:
        return self.points_ready / self.points if self.points else 1.0

    @property
    def out(self) -> int:
        """Stations and power rooms out of service now: dark, or (stations) cut off."""
        return self.dark + self.cut_off + self.rooms_dark

    def worst_first(self) -> tuple[object, ...]:
        # A station not heard from may be dark: a province whose stations all fell silent
        # (its transport cut, its bridge down) is not a quiet one. A station cut off from
        # transport serves nobody, as a dark one; a power room dark darkens what it feeds.
        return (
            -self.out,
            -(self.dark_soon + self.rooms_dark_soon),
            self.points_ready_share,
            -(self.silent + self.rooms_silent),
            -(self.on_battery + self.rooms_on_backup),
            -self.verdicts.get("not_ready", 0),
            -self.risk_level,
            self.province,
        )


def overview(
    statuses: Iterable[Status], risk: Mapping[str, int], now: datetime
) -> list[ProvinceLine]:
    """Per province: N/M meeting points ready; stations on battery, on generator, dark,
    dark within 2 h, cut off from transport, not known (silent); power rooms dark, on
    battery or generator (dark within 2 h), not known; and its risk level; worst first."""
    tally: dict[str, dict[str, int]] = {}
    verdicts: dict[str, dict[str, int]] = {}
    soon = now + timedelta(seconds=DARK_SOON_S)
    for s in statuses:
        t = tally.setdefault(s.province, dict.fromkeys(_TALLIES, 0))
        v = verdicts.setdefault(s.province, dict.fromkeys(VERDICT_ORDER, 0))
        v[s.verdict] += 1
        t["sites"] += 1
        if s.site_kind == "meeting_point":
            t["points"] += 1
            t["points_ready"] += s.verdict == "ready"
            continue
        if s.site_kind == "power_room":
            _tally_room(t, s, soon)
            continue
        if s.site_kind != "station":
            continue
        t["stations"] += 1
        t["silent"] += s.verdict == "unknown"
        state = s.station_state
        if state == "up_battery":
            t["on_battery"] += 1
        elif state == "up_generator":
            t["on_generator"] += 1
        elif state in DARK_STATES:
            t["dark"] += 1
        elif state == "down_transport":
            t["cut_off"] += 1
        # off mains (a time to dark is given only then), cut off or not: going dark
        at = dark_at(s)
        if state not in DARK_STATES and at is not None and at <= soon:
            t["dark_soon"] += 1
    lines = [
        ProvinceLine(province=p, risk_level=risk.get(p, 0), verdicts=verdicts[p], **t)
        for p, t in tally.items()
    ]
    return sorted(lines, key=ProvinceLine.worst_first)


def _tally_room(t: dict[str, int], s: Status, soon: datetime) -> None:
    """A power room: dark, on battery or generator (dark within 2 h), or not known. Its
    links are not what it is for: its state is its power's."""
    t["rooms"] += 1
    state = s.station_state
    if s.verdict == "unknown":
        t["rooms_silent"] += 1
    elif state in DARK_STATES:
        t["rooms_dark"] += 1
    elif state in ("up_battery", "up_generator") or s.dark_in_s is not None:
        # off mains, its links down or not (a time to dark is given only off mains)
        t["rooms_on_backup"] += 1
        at = dark_at(s)
        t["rooms_dark_soon"] += at is not None and at <= soon


_TALLIES = (
    "sites",
    "points",
    "points_ready",
    "stations",
    "on_battery",
    "on_generator",
    "dark",
    "dark_soon",
    "silent",
    "cut_off",
    "rooms",
    "rooms_dark",
    "rooms_on_backup",
    "rooms_dark_soon",
    "rooms_silent",
)


# --- a province -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteLine:
    """One site on its province's page."""

    status: Status
    paths_up: int | None
    paths_declared: int | None
    dark_at: datetime | None

    def worst_first(self) -> tuple[object, ...]:
        s = self.status
        never = datetime.max.replace(tzinfo=s.evaluated_at.tzinfo)
        return (
            VERDICT_ORDER[s.verdict],
            STATE_ORDER.get(s.station_state, 9),
            self.dark_at or never,
            s.site,
        )


def paths_of(snapshot: SiteSnapshot | None) -> tuple[int | None, int | None]:
    """(paths up now, paths declared); None where the site has not said."""
    if snapshot is None:
        return None, None
    declared = len(snapshot.meta.paths) if snapshot.meta is not None else None
    if not snapshot.links:
        return None, declared
    # as the rules count them: a reading with no probe sent measured nothing
    up = sum(1 for reading, _ in snapshot.links.values() if measured_up(reading))
    return up, declared if declared is not None else len(snapshot.links)


def province_lines(statuses: Iterable[Status], snapshot_of: SnapshotOf) -> list[SiteLine]:
    lines = []
    for status in statuses:
        up, declared = paths_of(snapshot_of(status.site))
        lines.append(SiteLine(status, up, declared, dark_at(status)))
    return sorted(lines, key=SiteLine.worst_first)


# --- a site ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceLine:
    device: str
    role: str | None
    profile: str | None
    reading: PowerReading | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class PathLine:
    path: str
    media: str
    provider: str | None
    srlg: tuple[str, ...]
    reading: LinkReading | None
    at: datetime | None

    @property
    def up(self) -> bool | None:
        """Up or down as measured; unknown without a reading or with no probe sent."""
        return None if self.reading is None else measured_up(self.reading)


@dataclass(frozen=True, slots=True)
class SiteView:
    status: Status
    snapshot: SiteSnapshot
    devices: tuple[DeviceLine, ...]
    paths: tuple[PathLine, ...]
    paths_up: int | None
    paths_declared: int | None
    dark_at: datetime | None


def site_view(status: Status, snapshot: SiteSnapshot) -> SiteView:
    """The declared devices and paths with what each reported last (and any the site
    reports without declaring them); their times set right as the site was judged, when
    its agent's clock was proven behind (``clock_corrected``)."""
    corrected = corrected_by_s(status.reasons)
    if corrected is not None:
        snapshot = snapshot.shifted(corrected)
    meta = snapshot.meta
    devices: list[DeviceLine] = []
    declared_devices = {d.device: d for d in meta.devices} if meta is not None else {}
    for name in [*declared_devices, *(d for d in snapshot.power if d not in declared_devices)]:
        decl = declared_devices.get(name)
        reading, at = snapshot.power.get(name, (None, None))
        devices.append(
            DeviceLine(
                name,
                decl.role if decl is not None else None,
                (decl.profile if decl is not None else None)
                or (reading.profile if reading else None),
                reading,
                at,
            )
        )
    paths: list[PathLine] = []
    declared_paths = {p.path: p for p in meta.paths} if meta is not None else {}
    for name in [*declared_paths, *(p for p in snapshot.links if p not in declared_paths)]:
        link, seen = snapshot.links.get(name, (None, None))
        said = declared_paths.get(name) or link  # the declaration, else what it reports
        assert said is not None
        paths.append(PathLine(name, said.media, said.provider, said.srlg, link, seen))
    up, declared = paths_of(snapshot)
    return SiteView(status, snapshot, tuple(devices), tuple(paths), up, declared, dark_at(status))


# --- a meeting ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeetingView:
    meeting: Meeting
    points: tuple[Status, ...]  # judged for this meeting, worst first
    rehearsals: Mapping[str, Rehearsal]
    evaluated_at: datetime

    @property
    def starts_at(self) -> datetime:
        return self.meeting.starts_at

    @property
    def ends_at(self) -> datetime:
        return self.meeting.starts_at + timedelta(seconds=self.meeting.duration_s)

    @property
    def ready(self) -> int:
        return sum(1 for p in self.points if p.verdict == "ready")

    @property
    def total(self) -> int:
        return len(self.points)

    @property
    def unready(self) -> tuple[Status, ...]:
        return tuple(p for p in self.points if p.verdict != "ready")

    @property
    def ready_points(self) -> tuple[Status, ...]:
        return tuple(p for p in self.points if p.verdict == "ready")

    def rehearsal_results(
        self,
    ) -> tuple[list[tuple[Status, Rehearsal]], list[tuple[Status, Rehearsal]], int]:
        """(failed, passed, how many points have none), each point's latest rehearsal."""
        failed: list[tuple[Status, Rehearsal]] = []
        passed: list[tuple[Status, Rehearsal]] = []
        for point in self.points:
            rehearsal = self.rehearsals.get(point.site)
            if rehearsal is not None:
                (passed if rehearsal.passed else failed).append((point, rehearsal))
        return failed, passed, self.total - len(failed) - len(passed)

    def phase(self, now: datetime) -> tuple[str, float]:
        """("starts_in" | "started_ago" | "ended", seconds)."""
        if now < self.starts_at:
            return "starts_in", (self.starts_at - now).total_seconds()
        if now < self.ends_at:
            return "started_ago", (now - self.starts_at).total_seconds()
        return "ended", (now - self.ends_at).total_seconds()


def meeting_view(judged: MeetingStatus, rehearsals: Mapping[str, Rehearsal]) -> MeetingView:
    points = tuple(sorted(judged.points, key=lambda s: (VERDICT_ORDER[s.verdict], s.site)))
    return MeetingView(judged.meeting, points, rehearsals, judged.evaluated_at)
