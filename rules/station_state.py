"""Station state in the FCC DIRS vocabulary: in service by power source, out by cause.

``down_power`` (battery depleted while on battery) before ``down_transport`` (every
path known and down), then ``up_generator`` / ``up_battery`` / ``up_commercial``.
``down_damage`` is in the vocabulary but no reading reports damage yet.
A battery device flat on battery while another device of the site still sees mains is
said as that: its input failed (breaker, cable, rectifier), not the mains
(``power_down_input_failed``, naming both); the state stays ``down_power``, as what it
feeds is dark and which loads those are is not known. A UPS that says its output is off
(``power_output_off``, naming it) is ``down_power`` too, whatever the mains and the
other devices say: what it feeds is dark. A stale site
is ``unknown``: the engine does not ask this rule about it.
"""

from __future__ import annotations

from contract.wire import StationState
from rules.autonomy import PowerAssessment
from rules.context import RuleContext
from rules.findings import Finding
from rules.paths import PathAssessment

_UP: dict[str, StationState] = {
    "commercial": "up_commercial",
    "generator": "up_generator",
    "battery": "up_battery",
}


def derive(power: PowerAssessment, paths: PathAssessment) -> StationState:
    if power.mode == "down":
        return "down_power"
    if paths.all_down:
        return "down_transport"
    return _UP.get(power.mode, "unknown")


def _flat_beside_mains(ctx: RuleContext) -> tuple[str, str] | None:
    """A battery device on battery and flat while another device of the site reports
    mains present: (the flat one, the one seeing mains). Not a mains failure but that
    device's input (its breaker, its cable, its rectifier); what it feeds is dark."""
    readings = [r for r, _ in ctx.snapshot.power.values()]
    on_battery = {r.device for r in readings if r.on_battery is True}
    flat = sorted(
        b.device for b in ctx.power.batteries if b.device in on_battery and b.seconds == 0
    )
    mains = sorted(r.device for r in readings if r.mains_present is True and r.device not in flat)
    return (flat[0], mains[0]) if flat and mains else None


def _output_off(ctx: RuleContext) -> str | None:
    """The first device whose output is off (UPS-MIB none, APC off or sleeping, NUT OFF)."""
    off = sorted(r.device for r, _ in ctx.snapshot.power.values() if r.output_off is True)
    return off[0] if off else None


def check(ctx: RuleContext) -> tuple[Finding, ...]:
    if ctx.power.mode != "down":
        return ()
    numbers = {"battery_s": ctx.power.battery_s, "dark_in_s": ctx.power.dark_in_s}
    off = _output_off(ctx)
    if off is not None:
        labels = {"device": off}
        return (ctx.finding("station_state", "critical", "power_output_off", numbers, labels),)
    beside = _flat_beside_mains(ctx)
    if beside is not None:
        labels = {"device": beside[0], "mains_device": beside[1]}
        return (
            ctx.finding("station_state", "critical", "power_down_input_failed", numbers, labels),
        )
    return (ctx.finding("station_state", "critical", "power_down", numbers),)
