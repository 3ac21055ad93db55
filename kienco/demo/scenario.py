"""A storm scenario for the demo: provinces, sites with their power and paths, a timeline.

The scenario is data (``yagi.yaml``), validated at load like every kienco config: a
typo, an unknown action or a timeline target that names nothing fails with the key,
the value and the fix (:mod:`plumbing.config_errors`). Times are simulated minutes since
``start``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from agent.config import BatteryModel
from contract.wire import HumanName, Media, SiteIdentity, Slug
from plumbing.config_errors import load_yaml_model

SCENARIO_FILE = Path(__file__).with_name("yagi.yaml")

Positive = Annotated[float, Field(gt=0)]
Minutes = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpsSpec(_Strict):
    """An AC UPS: runtime at full load from a full battery, linear in load."""

    role: Literal["ups"]
    device: Slug
    profile: str = "ups-mib"
    full_load_runtime_h: Positive
    load_pct: Annotated[float, Field(ge=10, le=100)]  # below 10 % vendors' estimates are noise
    recharge_h: Positive = 6.0
    charge_pct: Annotated[float, Field(ge=0, le=100)] = 100.0
    # Some firmware reports 65 535 s on line (a 16-bit cap): the rules must ignore it.
    runtime_cap_on_line: bool = False
    # What the site config declares of this battery (announced in meta): the rules'
    # estimate when the UPS's own figure is ignored. None: the hours are unknown then.
    battery: BatteryModel | None = None


class RectifierSpec(_Strict):
    """A -48 V DC plant with a battery string: rated Ah at a constant DC load."""

    role: Literal["rectifier"]
    device: Slug
    profile: str = "sim-dc-plant"
    capacity_ah: Positive
    load_a: Positive
    rated_a: Positive = 100.0
    usable_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8  # same default as the rules
    recharge_h: Positive = 8.0
    charge_pct: Annotated[float, Field(ge=0, le=100)] = 100.0


class GeneratorSpec(_Strict):
    """A diesel set with an automatic start: tank, fuel at the start, burn at the site's load."""

    role: Literal["generator"]
    device: Slug
    profile: str = "sim-genset"
    tank_l: Positive
    fuel_l: Annotated[float, Field(ge=0)]
    burn_l_per_h: Positive
    start_delay_min: Minutes = 2.0
    load_pct: Annotated[float, Field(ge=1, le=110)] = 60.0


DeviceSpec = Annotated[UpsSpec | RectifierSpec | GeneratorSpec, Field(discriminator="role")]


class PathSpec(_Strict):
    path: Slug
    media: Media
    provider: Slug | None = None
    srlg: tuple[Slug, ...] = ()
    rtt_ms: Positive | None = None  # default: typical for the media
    # False: the radio sits on an unprotected feed and drops when the grid does.
    radio_backup: bool = True
    # The path rides on another simulated site (a cellular path through that BTS).
    via_site: Slug | None = None


class RoomSpec(_Strict):
    codec: Annotated[str, Field(min_length=1, max_length=64)]
    camera_ok: bool = True
    microphone_ok: bool = True
    speaker_ok: bool = True
    display_ok: bool = True


class SiteSpec(SiteIdentity, _Strict):
    """A simulated site: its identity (contract.wire.SiteIdentity), devices, paths, room."""

    name: HumanName
    devices: tuple[DeviceSpec, ...]
    paths: tuple[PathSpec, ...] = ()
    room: RoomSpec | None = None

    @model_validator(mode="after")
    def _shape(self) -> SiteSpec:
        batteries = [d for d in self.devices if not isinstance(d, GeneratorSpec)]
        generators = [d for d in self.devices if isinstance(d, GeneratorSpec)]
        if len(batteries) != 1 or len(generators) > 1:
            raise ValueError("devices: give exactly one ups or rectifier and at most one generator")
        for gen in generators:
            if gen.fuel_l > gen.tank_l:
                raise ValueError(f"devices: fuel_l {gen.fuel_l} exceeds tank_l {gen.tank_l}")
        ids = [d.device for d in self.devices] + [p.path for p in self.paths]
        if len(set(ids)) != len(ids):
            raise ValueError(f"devices/paths: ids must be unique (got {ids})")
        if (self.kind == "meeting_point") != (self.room is not None):
            raise ValueError("room: give a room for a meeting_point, and only for one")
        if self.site_class == "hardened" and not self.hardened:
            raise ValueError("hardened: a site_class hardened site must say hardened: true")
        return self

    @property
    def battery(self) -> UpsSpec | RectifierSpec:
        return next(d for d in self.devices if not isinstance(d, GeneratorSpec))

    @property
    def generator(self) -> GeneratorSpec | None:
        return next((d for d in self.devices if isinstance(d, GeneratorSpec)), None)


class ProvinceSpec(_Strict):
    name: HumanName
    risk_level: Annotated[int, Field(ge=0, le=5)] = 0


Action = Literal[
    "mains_fail",
    "mains_restore",
    "cut_srlg",
    "repair_srlg",
    "generator_fail",
    "generator_refuel",
    "codec_down",
    "codec_up",
    "site_damage",
    "site_restore",
    "storm_start",
    "storm_end",
    "risk_level",
    "clock_lost",
    "clock_ahead",
]

# What each action's target must name.
_TARGETS: dict[str, tuple[str, ...]] = {
    "mains_fail": ("province", "site"),
    "mains_restore": ("province", "site"),
    "cut_srlg": ("srlg",),
    "repair_srlg": ("srlg",),
    "generator_fail": ("generator site",),
    "generator_refuel": ("generator site",),
    "codec_down": ("meeting point",),
    "codec_up": ("meeting point",),
    "site_damage": ("site",),
    "site_restore": ("site",),
    "storm_start": ("province", "site"),
    "storm_end": ("province", "site"),
    "risk_level": ("province",),
    "clock_lost": ("site",),
    "clock_ahead": ("site",),
}


class TimelineEvent(_Strict):
    at_min: Minutes
    action: Action
    target: Slug
    level: Annotated[int, Field(ge=0, le=5)] | None = None  # risk_level only
    litres: Positive | None = None  # generator_refuel only; default: fill the tank
    behind_min: Positive | None = None  # clock_lost only: how far its clock steps back
    ahead_min: Positive | None = None  # clock_ahead only: how far ahead its clock is set
    note: Annotated[str, Field(max_length=300)] | None = None

    @model_validator(mode="after")
    def _level(self) -> TimelineEvent:
        if (self.action == "risk_level") != (self.level is not None):
            raise ValueError("level: give level (0-5) with action risk_level, and only there")
        if self.litres is not None and self.action != "generator_refuel":
            raise ValueError("litres: only for action generator_refuel")
        if (self.action == "clock_lost") != (self.behind_min is not None):
            raise ValueError(
                "behind_min: give behind_min (minutes) with action clock_lost, and only there"
            )
        if (self.action == "clock_ahead") != (self.ahead_min is not None):
            raise ValueError(
                "ahead_min: give ahead_min (minutes) with action clock_ahead, and only there"
            )
        return self


class Scenario(_Strict):
    name: HumanName
    description: str = ""
    start: AwareDatetime
    duration_min: Positive
    seed: int = 0
    provinces: dict[Slug, ProvinceSpec]
    sites: tuple[SiteSpec, ...]
    timeline: tuple[TimelineEvent, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        ids = [s.site for s in self.sites]
        if len(set(ids)) != len(ids):
            raise ValueError(f"sites: each site id must be unique (got {ids})")
        for i, site in enumerate(self.sites):
            if site.province not in self.provinces:
                raise ValueError(
                    f"sites.{i}.province: {site.province!r} is not under provinces "
                    f"(defined: {sorted(self.provinces)})"
                )
            for j, path in enumerate(site.paths):
                if path.via_site is not None and path.via_site not in ids:
                    raise ValueError(
                        f"sites.{i}.paths.{j}.via_site: {path.via_site!r} names no site"
                    )
        names = self._target_names()
        last = 0.0
        for i, event in enumerate(self.timeline):
            if event.at_min < last:
                raise ValueError(
                    f"timeline.{i}.at_min: {event.at_min} is earlier than the event before; "
                    "keep the timeline in time order"
                )
            if event.at_min > self.duration_min:
                raise ValueError(
                    f"timeline.{i}.at_min: {event.at_min} is after duration_min {self.duration_min}"
                )
            last = event.at_min
            kinds = _TARGETS[event.action]
            if not any(event.target in names[k] for k in kinds):
                raise ValueError(
                    f"timeline.{i}.target: {event.target!r} names no {' or '.join(kinds)} "
                    f"(action {event.action}); fix the slug or add it to the scenario"
                )
        return self

    def _target_names(self) -> dict[str, set[str]]:
        return {
            "province": set(self.provinces),
            "site": {s.site for s in self.sites},
            "srlg": {g for s in self.sites for p in s.paths for g in p.srlg},
            "generator site": {s.site for s in self.sites if s.generator is not None},
            "meeting point": {s.site for s in self.sites if s.room is not None},
        }


def load_scenario(path: Path | None = None) -> Scenario:
    """Load and validate a scenario (default: the shipped Typhoon Yagi); raise ConfigError."""
    return load_yaml_model(path or SCENARIO_FILE, Scenario)
