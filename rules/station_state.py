"""Station state in the FCC DIRS vocabulary: in service by power source, out by cause.

``down_power`` (battery depleted while on battery) before ``down_transport`` (every
path known and down), then ``up_generator`` / ``up_battery`` / ``up_commercial``.
``down_damage`` is in the vocabulary but no reading reports damage yet. A stale site
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


def check(ctx: RuleContext) -> tuple[Finding, ...]:
    if ctx.power.mode != "down":
        return ()
    numbers = {"battery_s": ctx.power.battery_s, "dark_in_s": ctx.power.dark_in_s}
    return (ctx.finding("station_state", "critical", "power_down", numbers),)
