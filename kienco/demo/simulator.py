"""The simulated fleet: sites with simple, documented physics that produce wire reports.

Physics, integrated in steps of at most one simulated minute; instant transitions
(generator start and stop, dark and back) are taken at the step boundaries:

- battery: while nothing feeds the site, charge falls at 100 % per full-charge runtime
  (UPS: ``full_load_runtime_h × 100 / load_pct``; DC plant: ``capacity_ah ×
  usable_fraction / load_a``); it rises back to 100 % in ``recharge_h`` when the grid
  or the generator feeds it. The runtime estimate is that runtime × charge.
- generator: starts ``start_delay_min`` after the grid fails (unless failed), burns
  ``burn_l_per_h`` (the rate at the site's constant load), stops when the grid returns
  or the tank is dry; a refuel (a technician's visit) fills it and clears a failure.
- dark: no grid, no generator, battery at 0 %. A dark site's agent is down: the
  orchestrator sends nothing for it (``is_dark``) and the rules see it go stale.
- links: a path is up unless the site is dark or damaged, one of its shared-risk groups
  is cut, its radio has no backup and the site has neither grid nor generator, or the
  site it rides on (``via_site``) is dark, damaged or cut off. Quality is typical of
  the media, worse in a storm (rain fade, congestion).

Noise comes from ``random.Random(f"{seed}:{site}:{seq}")``: a report depends only on
the seed, the site, its sequence number and the simulated state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from agent import __version__
from agent.meta import meta_message
from contract.wire import (
    HostReading,
    LinkReading,
    Media,
    Meta,
    PowerReading,
    Report,
    RoomReading,
    SiteKind,
)
from kienco.demo.scenario import Action, PathSpec, Scenario, SiteSpec, TimelineEvent

DEFAULT_MINUTES_PER_SECOND = 60.0  # 48 simulated hours in 48 s of demo
_STEP_MIN = 1.0
_LOW_PCT = 25.0

BatteryStatus = Literal["normal", "low", "depleted"]

Note = tuple[str, str]  # (Vietnamese, English)

_ACTIONS: dict[Action, Note] = {
    "mains_fail": ("mất điện lưới", "mains failed"),
    "mains_restore": ("có điện lưới trở lại", "mains restored"),
    "cut_srlg": ("đứt tuyến", "shared-risk group cut"),
    "repair_srlg": ("khắc phục tuyến", "shared-risk group repaired"),
    "generator_fail": ("máy phát hỏng", "generator failed"),
    "generator_refuel": ("tiếp nhiên liệu máy phát", "generator refuelled"),
    "codec_down": ("codec mất đăng ký", "codec lost registration"),
    "codec_up": ("codec đăng ký lại", "codec registered again"),
    "site_damage": ("trạm bị hư hại", "site damaged"),
    "site_restore": ("trạm được khôi phục", "site restored"),
    "storm_start": ("bão ảnh hưởng", "storm arrives"),
    "storm_end": ("bão đi qua", "storm passes"),
    "risk_level": ("cấp độ rủi ro", "risk level"),
    "clock_lost": (
        "đồng hồ hộp giám sát chạy chậm, không có NTP",
        "the edge box's clock is behind, no NTP in reach",
    ),
    "clock_ahead": (
        "đồng hồ hộp giám sát chạy nhanh, đặt tay, không có NTP",
        "the edge box's clock is ahead, set by hand, no NTP",
    ),
}


@dataclass(slots=True)
class _World:
    """What sites share: the clock, cut shared-risk groups, storms, each other."""

    minute: float = 0.0
    cut: set[str] = field(default_factory=set)
    storm: set[str] = field(default_factory=set)  # province or site slugs
    sites: dict[str, SimulatedSite] = field(default_factory=dict)


class SimulatedSite:
    """One site's simulated power, links and room; builds its meta and reports."""

    def __init__(self, spec: SiteSpec, world: _World, seed: int) -> None:
        self.spec = spec
        self._world = world
        self._seed = seed
        self.grid = True
        self.charge_pct = spec.battery.charge_pct
        generator = spec.generator
        self.fuel_l = generator.fuel_l if generator else 0.0
        self.generator_running = False
        self.generator_failed = False
        self.damaged = False
        self.clock_behind_s = (
            0.0  # the edge box's clock, behind (no NTP; < 0: ahead): its times too
        )
        self.codec_ok = True
        self.line_bads = 0
        self.outage_since_min: float | None = None
        self._gen_start_at: float | None = None
        self._low_said = False
        self._was_dark = False
        self._booted_min = -12 * 24 * 60.0  # the box had been up 12 days when the storm came

    @property
    def site(self) -> str:
        return self.spec.site

    @property
    def province(self) -> str:
        return self.spec.province

    @property
    def kind(self) -> SiteKind:
        return self.spec.kind

    @property
    def fed(self) -> bool:
        return self.grid or self.generator_running

    @property
    def on_battery(self) -> bool:
        return not self.fed and self.charge_pct > 0

    @property
    def is_dark(self) -> bool:
        """No power at all: the agent is down and sends nothing."""
        return not self.fed and self.charge_pct <= 0

    @property
    def in_storm(self) -> bool:
        return self.province in self._world.storm or self.site in self._world.storm

    @property
    def full_runtime_s(self) -> float:
        """Battery runtime from a full charge at the site's load."""
        b = self.spec.battery
        if b.role == "ups":
            return b.full_load_runtime_h * 100 / b.load_pct * 3600
        return b.capacity_ah * b.usable_fraction / b.load_a * 3600

    def path_up(self, path: PathSpec, *, follow_via: bool = True) -> bool:
        if self.is_dark or self.damaged or any(g in self._world.cut for g in path.srlg):
            return False
        if not path.radio_backup and not self.fed:
            return False
        if follow_via and path.via_site is not None:
            host = self._world.sites[path.via_site]
            backhaul = any(host.path_up(p, follow_via=False) for p in host.spec.paths)
            return not (host.is_dark or host.damaged) and backhaul
        return True

    @property
    def is_reachable(self) -> bool:
        """At least one path up: the agent's reports can leave the site."""
        return not self.is_dark and (
            not self.spec.paths or any(self.path_up(p) for p in self.spec.paths)
        )

    # -- timeline actions -------------------------------------------------------

    def set_grid(self, present: bool, minute: float) -> None:
        if present == self.grid:
            return
        self.grid = present
        if not present:
            self.line_bads += 1
            self._schedule_generator(minute)

    def fail_generator(self) -> None:
        self.generator_failed = True
        self.generator_running = False

    def refuel(self, litres: float | None, minute: float) -> None:
        generator = self.spec.generator
        assert generator is not None  # the scenario checks the target has one
        self.fuel_l = min(generator.tank_l, self.fuel_l + (litres or generator.tank_l))
        self.generator_failed = False
        if not self.grid and not self.generator_running:
            self._schedule_generator(minute)

    def _schedule_generator(self, minute: float) -> None:
        if self.spec.generator is not None:
            self._gen_start_at = minute + self.spec.generator.start_delay_min

    @property
    def next_generator_start(self) -> float | None:
        return self._gen_start_at

    # -- physics ----------------------------------------------------------------

    def settle(self, minute: float) -> list[Note]:
        """Take the instant transitions due at ``minute``: generator start/stop, dark/up."""
        notes: list[Note] = []
        if self.grid and self.generator_running:
            self.generator_running = False
            notes.append(("máy phát dừng, về điện lưới", "generator stopped, back on mains"))
        due = self._gen_start_at is not None and minute >= self._gen_start_at
        if due:
            self._gen_start_at = None
        if due and not self.grid:  # the grid may have come back during the start delay
            if self.generator_failed:
                notes.append(("máy phát không khởi động", "generator failed to start"))
            elif self.fuel_l <= 0:
                notes.append(("máy phát hết dầu, không chạy", "generator has no fuel"))
            else:
                self.generator_running = True
                notes.append(("máy phát đã chạy", "generator started"))
        if self.fed:
            self.outage_since_min = None
            self._low_said = False
        elif self.outage_since_min is None:
            self.outage_since_min = minute
        if self.is_dark and not self._was_dark:
            notes.append(("hết điện, trạm tắt", "out of power, site dark"))
        elif self._was_dark and not self.is_dark:
            self._booted_min = minute  # the agent boots again
            notes.append(("có điện, trạm hoạt động lại", "power back, site up"))
        self._was_dark = self.is_dark
        return notes

    def integrate(self, dt: float) -> list[Note]:
        """Run ``dt`` simulated minutes: burn fuel, charge or drain the battery."""
        notes: list[Note] = []
        fed, generator = self.fed, self.spec.generator
        if self.generator_running and generator is not None:
            burnt = generator.burn_l_per_h * dt / 60
            if burnt >= self.fuel_l:  # dry within the step: counted as fed for this step
                self.fuel_l = 0.0
                self.generator_running = False
                notes.append(("máy phát hết dầu, về ắc quy", "generator ran dry, on battery"))
            else:
                self.fuel_l -= burnt
        if fed:
            recharge_h = self.spec.battery.recharge_h
            self.charge_pct = min(100.0, self.charge_pct + dt * 100 / (recharge_h * 60))
        else:
            self.charge_pct = max(0.0, self.charge_pct - dt * 60 * 100 / self.full_runtime_s)
            if self.charge_pct < _LOW_PCT and not self._low_said:
                self._low_said = True
                notes.append(("ắc quy yếu (< 25 %)", "battery low (< 25 %)"))
        return notes

    # -- messages ---------------------------------------------------------------

    def meta(self, now: datetime, interval_s: float) -> Meta:
        return meta_message(
            self.spec, interval_s=interval_s, now=now, agent_version=f"{__version__}+sim"
        )

    def report(self, seq: int, now: datetime, interval_s: float) -> Report:
        """The readings at the current simulated state (callers skip dark sites)."""
        rng = random.Random(f"{self._seed}:{self.site}:{seq}")
        return Report(
            site=self.site,
            province=self.province,
            seq=seq,
            taken_at=now - timedelta(seconds=self.clock_behind_s),
            interval_s=interval_s,
            power=_power(self, rng),
            links=tuple(_link(p, self.path_up(p), self.in_storm, rng) for p in self.spec.paths),
            host=_host(self, self._seed, rng),
            room=_room(self),
        )

    @property
    def uptime_s(self) -> float:
        return max(0.0, (self._world.minute - self._booted_min) * 60)

    @property
    def on_battery_for_s(self) -> float | None:
        since = self.outage_since_min
        return None if since is None else max(0.0, (self._world.minute - since) * 60)


class Fleet:
    """The simulated sites and the scenario's timeline, on a compressed clock."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        minutes_per_second: float = DEFAULT_MINUTES_PER_SECOND,
        seed: int | None = None,
    ) -> None:
        if not minutes_per_second > 0:
            raise ValueError(f"minutes_per_second must be > 0 (got {minutes_per_second})")
        self.scenario = scenario
        self.minutes_per_second = minutes_per_second
        self._world = _World()
        seed = scenario.seed if seed is None else seed
        self.sites = tuple(SimulatedSite(spec, self._world, seed) for spec in scenario.sites)
        self._world.sites = {s.site: s for s in self.sites}
        self._timeline = scenario.timeline
        self._next_event = 0
        self._risk = {p: spec.risk_level for p, spec in scenario.provinces.items()}

    @property
    def minute(self) -> float:
        """Simulated minutes since the scenario's start."""
        return self._world.minute

    @property
    def sim_time(self) -> datetime:
        return self.scenario.start + timedelta(minutes=self.minute)

    @property
    def finished(self) -> bool:
        return self.minute >= self.scenario.duration_min

    @property
    def risk_levels(self) -> Mapping[str, int]:
        """Each province's current disaster risk level, for the rules."""
        return MappingProxyType(dict(self._risk))

    @property
    def cut_srlgs(self) -> frozenset[str]:
        return frozenset(self._world.cut)

    def site(self, site_id: str) -> SimulatedSite:
        return self._world.sites[site_id]

    def advance_to(self, elapsed_s: float) -> list[str]:
        """Run the simulation up to ``elapsed_s`` real seconds since the start."""
        return self.advance_to_minute(elapsed_s * self.minutes_per_second)

    def advance_to_minute(self, minute: float) -> list[str]:
        """Apply due events and integrate the physics up to ``minute``; return log lines."""
        notes = self._settle()
        while self.minute < minute:
            t = self.minute
            ends = [minute, math.floor(t + _STEP_MIN)]
            if self._next_event < len(self._timeline):
                ends.append(self._timeline[self._next_event].at_min)
            ends += [g for s in self.sites if (g := s.next_generator_start) is not None and g > t]
            end = min(e for e in ends if e > t)
            for s in self.sites:
                notes += [self._line(s.site, vi, en) for vi, en in s.integrate(end - t)]
            self._world.minute = end
            notes += self._settle()
        return notes

    def _settle(self) -> list[str]:
        """Apply the events due now, then each site's instant transitions."""
        notes: list[str] = []
        while (
            self._next_event < len(self._timeline)
            and self._timeline[self._next_event].at_min <= self.minute
        ):
            notes.append(self._apply(self._timeline[self._next_event]))
            self._next_event += 1
        for s in self.sites:
            notes += [self._line(s.site, vi, en) for vi, en in s.settle(self.minute)]
        return notes

    def _apply(self, event: TimelineEvent) -> str:
        target, minute = event.target, self.minute
        sites = [s for s in self.sites if target in (s.province, s.site)]
        vi, en = _ACTIONS[event.action]
        match event.action:
            case "mains_fail" | "mains_restore":
                for s in sites:
                    s.set_grid(event.action == "mains_restore", minute)
            case "cut_srlg":
                self._world.cut.add(target)
            case "repair_srlg":
                self._world.cut.discard(target)
            case "generator_fail":
                sites[0].fail_generator()
            case "generator_refuel":
                sites[0].refuel(event.litres, minute)
            case "codec_down" | "codec_up":
                sites[0].codec_ok = event.action == "codec_up"
            case "site_damage" | "site_restore":
                sites[0].damaged = event.action == "site_damage"
            case "clock_lost":
                assert event.behind_min is not None  # the scenario checks it
                sites[0].clock_behind_s = event.behind_min * 60
            case "clock_ahead":
                assert event.ahead_min is not None  # the scenario checks it
                sites[0].clock_behind_s = -event.ahead_min * 60
            case "storm_start":
                self._world.storm.add(target)
            case "storm_end":
                self._world.storm.discard(target)
            case "risk_level":
                assert event.level is not None  # the scenario checks it
                self._risk[target] = event.level
                vi, en = f"{vi} {event.level}", f"{en} {event.level}"
        province = self.scenario.provinces.get(target)
        line = self._line(province.name if province is not None else target, vi, en)
        if event.action in ("cut_srlg", "repair_srlg"):
            paths = [
                f"{s.site}/{p.path}" for s in self.sites for p in s.spec.paths if target in p.srlg
            ]
            line += f" [{', '.join(paths)}]"
        return line + (f" — {event.note}" if event.note else "")

    def _line(self, who: str, vi: str, en: str) -> str:
        return f"{self.sim_time:%d/%m %H:%M} {who}: {vi} / {en}"


# -- readings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Quality:
    """Typical quality of a media; a storm adds to it (rain fade, congestion)."""

    rtt_ms: float
    jitter_ms: float
    lost: int  # most probes lost of _PROBES in fair weather
    storm_rtt_ms: float
    storm_jitter_ms: float
    storm_lost: int


_PROBES = 100  # 1 % loss resolution, as a 15 s probe run would give
_QUALITY: dict[Media, _Quality] = {
    "fibre": _Quality(10, 1, 0, 0, 0.5, 0),
    "microwave": _Quality(15, 2, 0, 3, 6, 3),  # rain fade
    "vsat": _Quality(600, 15, 1, 40, 20, 6),  # geostationary: fails the 100 ms meeting limit
    "cellular": _Quality(60, 12, 1, 50, 25, 3),  # congestion as everyone calls home
    "copper": _Quality(20, 2, 0, 5, 3, 1),
    "other": _Quality(30, 5, 1, 10, 5, 2),
}


def _link(path: PathSpec, up: bool, storm: bool, rng: random.Random) -> LinkReading:
    rtt: float | None = None
    jitter: float | None = None
    loss, error = 100.0, "no probe got through"
    if up:
        q = _QUALITY[path.media]
        rtt = (path.rtt_ms or q.rtt_ms) * rng.uniform(0.92, 1.15)
        jitter = q.jitter_ms * rng.uniform(0.5, 1.5)
        lost = rng.randint(0, q.lost)
        if storm:
            rtt += q.storm_rtt_ms * rng.uniform(0.5, 1.0)
            jitter += q.storm_jitter_ms * rng.uniform(0.5, 1.0)
            lost += rng.randint(0, q.storm_lost)
        rtt, jitter, loss, error = round(rtt, 1), round(jitter, 1), 100.0 * lost / _PROBES, ""
    return LinkReading(
        path=path.path,
        media=path.media,
        provider=path.provider,
        srlg=path.srlg,
        up=up,
        rtt_ms=rtt,
        jitter_ms=jitter,
        loss_pct=loss,
        probes_sent=_PROBES,
        error=error or None,
    )


def _power(site: SimulatedSite, rng: random.Random) -> tuple[PowerReading, ...]:
    b, g = site.spec.battery, site.spec.generator
    charge = round(site.charge_pct, 1)
    status: BatteryStatus = "depleted" if charge <= 0 else "low" if charge < _LOW_PCT else "normal"
    runtime = round(site.full_runtime_s * site.charge_pct / 100, 1)
    if site.grid:
        input_v = round(rng.uniform(218, 232), 1)
    else:  # the ATS puts the generator on the input
        input_v = round(rng.uniform(224, 230), 1) if site.generator_running else 0.0
    alarms = int(site.on_battery) + int(status != "normal")
    if b.role == "ups":
        battery = PowerReading(
            device=b.device,
            profile=b.profile,
            mains_present=site.grid,
            on_battery=site.on_battery,
            battery_status=status,
            battery_charge_pct=charge,
            battery_runtime_s=65_535.0 if b.runtime_cap_on_line and site.fed else runtime,
            on_battery_for_s=site.on_battery_for_s,
            input_v=input_v,
            output_v=0.0 if site.is_dark else round(rng.uniform(219, 221), 1),
            load_pct=round(b.load_pct * rng.uniform(0.96, 1.04), 1),
            alarms_count=alarms,
            input_line_bads_count=site.line_bads,
        )
    else:
        # float charge on rectifiers; the string sags from 52 V to the 44 V cut-off
        dc_v = -53.5 if site.fed else -(44.0 + 8.0 * site.charge_pct / 100)
        load_a = 0.0 if site.is_dark else b.load_a * rng.uniform(0.97, 1.03)
        battery = PowerReading(
            device=b.device,
            profile=b.profile,
            mains_present=site.grid,
            on_battery=site.on_battery,
            battery_status=status,
            battery_charge_pct=charge,
            battery_runtime_s=runtime,
            battery_capacity_ah=b.capacity_ah,
            battery_voltage_v=0.0 if site.is_dark else round(-dc_v, 2),
            on_battery_for_s=site.on_battery_for_s,
            input_v=input_v,
            dc_voltage_v=0.0 if site.is_dark else round(dc_v, 2),
            dc_load_a=round(load_a, 1),
            load_pct=round(100 * load_a / b.rated_a, 1),
            load_w=round(-dc_v * load_a, 1),
            alarms_count=alarms,
            input_line_bads_count=site.line_bads,
        )
    if g is None:
        return (battery,)
    running = site.generator_running
    generator = PowerReading(
        device=g.device,
        profile=g.profile,
        mains_present=site.grid,
        on_generator=running,
        generator_running=running,
        fuel_l=round(site.fuel_l, 2),
        fuel_pct=round(100 * site.fuel_l / g.tank_l, 1),
        fuel_burn_l_per_h=g.burn_l_per_h,  # the controller's figure at the site's load
        load_pct=round(g.load_pct * rng.uniform(0.95, 1.05), 1) if running else 0.0,
        output_v=round(rng.uniform(228, 232), 1) if running else 0.0,
        alarms_count=int(site.generator_failed or site.fuel_l <= 0),
    )
    return (battery, generator)


def _host(site: SimulatedSite, seed: int, rng: random.Random) -> HostReading:
    box = random.Random(f"{seed}:{site.site}:host")  # per-box constants
    cpu, memory, disk = box.uniform(4, 12), box.uniform(28, 45), box.uniform(18, 40)
    shelter_c = 36.0 if site.fed else 47.0  # the air conditioning is off on battery
    return HostReading(
        cpu_pct=round(cpu + rng.uniform(0, 8), 1),
        memory_pct=round(memory + rng.uniform(-2, 2), 1),
        disk_pct=round(disk, 1),
        temperature_c=round(shelter_c + rng.uniform(-1.5, 1.5), 1),
        uptime_s=round(site.uptime_s, 1),
        # NTP keeps it within milliseconds; a box that lost its time says so (its kernel)
        clock_offset_ms=None if site.clock_behind_s else round(rng.gauss(0, 8), 1),
        clock_synced=not site.clock_behind_s,
        clock_max_error_ms=None if site.clock_behind_s else round(box.uniform(20, 400), 1),
    )


def _room(site: SimulatedSite) -> RoomReading | None:
    room = site.spec.room
    if room is None:
        return None
    return RoomReading(
        codec_reachable=True,
        # registration needs the codec's registrar: no path, no registration
        codec_registered=site.codec_ok and site.is_reachable,
        camera_ok=room.camera_ok,
        microphone_ok=room.microphone_ok,
        speaker_ok=room.speaker_ok,
        display_ok=room.display_ok,
        in_call=False,
    )
