"""How long a site's power lasts: battery autonomy, generator autonomy, the power mode.

Battery autonomy of one device, in seconds from the reading:

1. the UPS's own runtime estimate, when plausible: not a vendor cap (65 535), not
   ≤ 0 while on line, not above ``max_plausible_s``, not at a load below
   ``min_load_pct`` (where vendors are known to be wrong: NUT issues 1740, 731, 983,
   2765);
2. otherwise a model from the charge, which is deliberately simple:
   - DC plant: ``capacity_ah × charge × usable_fraction ÷ dc_load_a``, from what the
     plant reports;
   - UPS: ``full_load_runtime_s × charge ÷ load``, with the full-load runtime the
     site config gives for *that* battery (``meta.devices[].battery``; runtime taken
     as inversely proportional to load, load floored at ``min_load_pct``, full load
     when not reported; real batteries do a little better at low load, so this errs
     short). Without one there is no model: no fleet-wide figure is ever assumed;
3. while on battery, the discharge trend over ``power_history``: a least-squares
   line of charge % against time, extended to 0 %.

The device's autonomy is the more pessimistic of (1 or 2) and (3); ``basis`` says
which one it was; with none of them it is unknown, and ``model_missing`` says when
a battery model in the site config would have given it. A UPS in bypass (its load on
the mains through the bypass: a fault, an overload, a maintenance switch) counts 0:
if the mains fails now its battery does not take over, whatever charge it holds.
A site's battery autonomy is that of its weakest battery device whose autonomy is known.
Generator autonomy is ``fuel_l ÷ fuel_burn_l_per_h`` (or the policy's assumed burn
rate, when set), the best generator's.

Every autonomy is counted up to ``LONGEST_S`` (366 days, the wire contract's longest
duration): beyond a year no verdict changes, and a figure divided by a near-zero
load, current or burn rate (a reading of 5e-324 L/h is valid on the wire) stays a
finite number instead of an infinity no text or status can hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contract.wire import BatteryDecl, PowerReading
from rules.policy import GeneratorPolicy, RuntimeTrust
from rules.snapshot import PowerSample, Sample, SiteSnapshot

PowerMode = Literal["commercial", "generator", "battery", "down", "unknown"]
LONGEST_S = 366 * 86_400.0
Basis = Literal["ups", "model", "slope", "depleted", "bypass", "none"]


@dataclass(frozen=True, slots=True)
class BatteryEstimate:
    device: str
    ups_raw_s: float | None  # what the device said
    ups_s: float | None  # the same, if plausible
    model_s: float | None
    slope_s: float | None
    seconds: float | None  # the one used: the most pessimistic available
    basis: Basis
    # no usable figure from the device, and no battery model in the site config
    # (one would give a figure from the charge): the fix is to set one
    model_missing: bool = False

    @property
    def ups_untrusted(self) -> bool:
        return self.ups_raw_s is not None and self.ups_s is None

    @property
    def unknown_for_lack_of_model(self) -> bool:
        return self.seconds is None and self.model_missing


@dataclass(frozen=True, slots=True)
class PowerAssessment:
    mode: PowerMode
    batteries: tuple[BatteryEstimate, ...] = ()
    battery_s: float | None = None
    generator_present: bool = False
    generator_running: bool | None = None
    generator_s: float | None = None
    burn_assumed: bool = False
    backup_s: float | None = None  # grid fails now; or, grid gone, what is left from now
    lower_bound: bool = False  # a source of unknown size was counted as 0
    dark_in_s: float | None = None  # grid gone: seconds from now until dark
    errors: tuple[tuple[str, str], ...] = ()
    has_data: bool = False
    # the mains reported absent, no battery device discharging, the generator's state not
    # read: which source carries the site is unknown, and so are its hours left
    source_unknown: bool = False


def plausible_runtime(reading: PowerReading, trust: RuntimeTrust) -> float | None:
    """The device's runtime estimate, or None when it is one of the known lies."""
    runtime = reading.battery_runtime_s
    if runtime is None:
        return None
    on_line = reading.on_battery is False or (
        reading.on_battery is None and reading.mains_present is True
    )
    for cap in trust.cap_values_s:
        if abs(runtime - cap) < 0.5:
            return None
    if runtime <= 0 and on_line and trust.zero_on_line_unknown:
        return None
    if runtime > trust.max_plausible_s:
        return None
    if reading.load_pct is not None and reading.load_pct < trust.min_load_pct:
        return None
    return runtime


def _dc_plant(reading: PowerReading) -> bool:
    return bool(reading.battery_capacity_ah and reading.dc_load_a)


def modelled_runtime(
    reading: PowerReading, trust: RuntimeTrust, battery: BatteryDecl | None = None
) -> float | None:
    """Runtime from the charge: the DC plant's own figures, or the site's battery model."""
    charge = reading.battery_charge_pct
    if charge is None:
        return None
    capacity, current = reading.battery_capacity_ah, reading.dc_load_a
    if capacity and current:
        ah_s = capacity * charge / 100 * trust.usable_fraction / abs(current) * 3600
        return min(ah_s, LONGEST_S)
    if battery is not None:
        # an unreported load is taken as full load: the shortest runtime, never a guess up
        load = max(100.0 if reading.load_pct is None else reading.load_pct, trust.min_load_pct)
        return min(battery.full_load_runtime_s * (charge / 100) * (100 / max(load, 1.0)), LONGEST_S)
    return None


def slope_runtime(samples: Sequence[Sample], trust: RuntimeTrust) -> float | None:
    """Seconds to 0 % from the newest sample, on the latest unbroken on-battery run."""
    run: list[tuple[float, float]] = []
    newest: datetime | None = None
    named = map(PowerSample._make, samples)
    for sample in sorted(named, key=lambda s: s.taken_at, reverse=True):
        if sample.on_battery is not True:
            break
        newest = newest or sample.taken_at
        if (newest - sample.taken_at).total_seconds() > trust.slope_window_s:
            break
        if sample.battery_charge_pct is not None:
            age = (newest - sample.taken_at).total_seconds()
            run.append((-age, sample.battery_charge_pct))
    if len(run) < trust.slope_min_samples:
        return None
    if run[0][0] - run[-1][0] < trust.slope_min_span_s:
        return None
    n = len(run)
    mean_t = sum(t for t, _ in run) / n
    mean_c = sum(c for _, c in run) / n
    var = sum((t - mean_t) ** 2 for t, _ in run)
    cov = sum((t - mean_t) * (c - mean_c) for t, c in run)
    slope = cov / var  # % per second; var > 0 since the span is > 0
    if slope >= 0:
        return None
    return min(run[0][1] / -slope, LONGEST_S)


def estimate_battery(
    reading: PowerReading,
    history: Sequence[Sample],
    trust: RuntimeTrust,
    battery: BatteryDecl | None = None,
) -> BatteryEstimate:
    ups = plausible_runtime(reading, trust)
    model = modelled_runtime(reading, trust, battery)
    slope = slope_runtime(history, trust) if reading.on_battery is True else None
    primary: tuple[float, Basis] | None = None
    if ups is not None:
        primary = (ups, "ups")
    elif model is not None:
        primary = (model, "model")
    options: list[tuple[float, Basis]] = [primary] if primary is not None else []
    if slope is not None:
        options.append((slope, "slope"))
    seconds: float | None = None
    basis: Basis = "none"
    if options:
        seconds, basis = min(options, key=lambda o: o[0])
    if reading.battery_status == "depleted":
        seconds, basis = 0.0, "depleted"
    elif reading.on_bypass is True and reading.on_battery is not True:
        seconds, basis = 0.0, "bypass"
    model_missing = (
        ups is None
        and battery is None
        and reading.battery_charge_pct is not None
        and not _dc_plant(reading)
    )
    return BatteryEstimate(
        reading.device, reading.battery_runtime_s, ups, model, slope, seconds, basis, model_missing
    )


def _is_battery(r: PowerReading) -> bool:
    return (
        r.battery_charge_pct is not None
        or r.battery_runtime_s is not None
        or r.on_battery is not None
        or r.battery_status is not None
    )


def _is_generator(r: PowerReading) -> bool:
    return r.generator_running is not None or r.on_generator is not None or r.fuel_l is not None


def _generator_hours(
    readings: Sequence[PowerReading], policy: GeneratorPolicy
) -> tuple[float | None, bool]:
    best: float | None = None
    assumed = False
    for r in readings:
        if r.fuel_l is None:
            continue
        burn, guessed = r.fuel_burn_l_per_h, False
        if not burn:
            burn, guessed = policy.assumed_burn_l_per_h, True
        if not burn:
            continue
        hours = min(r.fuel_l / burn, LONGEST_S / 3600)
        if best is None or hours > best:
            best, assumed = hours, guessed
    return best, assumed


def _mode(
    readings: Sequence[PowerReading],
    batteries: Sequence[BatteryEstimate],
    running: bool | None,
    gen_present: bool,
) -> PowerMode:
    if any(r.output_off is True for r in readings):
        return "down"  # a UPS says its output is off: what it feeds is dark
    on_battery = {r.device for r in readings if r.on_battery is True}
    mains = [r.mains_present for r in readings if r.mains_present is not None]
    if on_battery:
        dark = any(b.seconds == 0 for b in batteries if b.device in on_battery)
        return "down" if dark else "battery"
    # A running set whose own controller sees the grid gone carries the site, whatever a
    # UPS downstream of the transfer switch says of its input (the generator's voltage).
    feeding = any(r.generator_running is True and r.mains_present is False for r in readings)
    if any(r.on_generator is True for r in readings) or feeding or (running and not any(mains)):
        return "generator"
    if any(mains):
        return "commercial"
    if mains:  # mains reported absent, yet nothing says it is on battery
        if running is False:
            # the generator says it is stopped: what still feeds the site is its battery,
            # whether or not a battery device says so (unread, or not monitored)
            return "battery"
        if gen_present and any(r.on_battery is False for r in readings):
            # a battery device says its input is live, and not from the mains: from the
            # generator, whatever its unread controller would say
            return "generator"
        # The generator's state unread (or no generator) and nothing else says which
        # source carries the site. A generator that merely exists was taken as running:
        # the site said on generator, its fuel counted as hours left, while it may be on
        # a battery running out or already dark (``source_unknown``).
        return "unknown"
    if any(r.on_battery is False for r in readings):
        return "commercial"
    return "unknown"


def _sum(parts: Sequence[float | None]) -> tuple[float | None, bool]:
    known = [p for p in parts if p is not None]
    return (sum(known) if known else None), len(known) < len(parts)


def assess_power(
    snapshot: SiteSnapshot, trust: RuntimeTrust, generator: GeneratorPolicy, now: datetime
) -> PowerAssessment:
    readings = [r for r, _ in snapshot.power.values()]
    if not readings:
        return PowerAssessment(mode="unknown")
    newest = max(t for _, t in snapshot.power.values())
    age_s = max(0.0, (now - newest).total_seconds())
    models = {d.device: d.battery for d in snapshot.meta.devices} if snapshot.meta else {}
    batteries = tuple(
        estimate_battery(r, snapshot.power_history.get(r.device, ()), trust, models.get(r.device))
        for r in readings
        if _is_battery(r)
    )
    known = [b.seconds for b in batteries if b.seconds is not None]
    battery_s = min(known) if known else None
    declared = snapshot.meta is not None and any(
        d.role == "generator" for d in snapshot.meta.devices
    )
    gens = [r for r in readings if _is_generator(r)]
    gen_present = declared or bool(gens)
    flags = [r.generator_running for r in gens if r.generator_running is not None]
    running = True if any(flags) else (False if flags else None)
    gen_h, burn_assumed = _generator_hours(gens, generator)
    gen_s = None if gen_h is None else gen_h * 3600

    mode = _mode(readings, batteries, running, gen_present)
    mains = [r.mains_present for r in readings if r.mains_present is not None]
    source_unknown = mode == "unknown" and gen_present and bool(mains) and not any(mains)

    backup_s: float | None
    if source_unknown:
        # not "if the grid failed now": it has failed, and what is left depends on the
        # source nobody read (the battery's hours, or the fuel's as well)
        backup_s, lower = None, False
    elif mode == "down":
        backup_s, lower = 0.0, False
    elif mode == "battery":
        backup_s, lower = _sum([battery_s] + ([gen_s] if running else []))
    elif mode == "generator":
        backup_s, lower = _sum([gen_s, battery_s] if batteries else [gen_s])
    else:  # on the grid, or not known: hours if the grid fails now
        parts = ([battery_s] if batteries else []) + ([gen_s] if gen_present else [])
        backup_s, lower = _sum(parts) if parts else (None, False)
    dark_in_s: float | None = None
    if mode in ("battery", "generator", "down") and backup_s is not None:
        backup_s = max(0.0, backup_s - age_s)
        dark_in_s = backup_s
    errors = tuple((r.device, r.error) for r in readings if r.error)
    return PowerAssessment(
        mode=mode,
        batteries=batteries,
        battery_s=battery_s,
        generator_present=gen_present,
        generator_running=running,
        generator_s=gen_s,
        burn_assumed=burn_assumed,
        backup_s=backup_s,
        lower_bound=lower,
        dark_in_s=dark_in_s,
        errors=errors,
        has_data=True,
        source_unknown=source_unknown,
    )
