"""Backup power hours: how long the site runs if the grid fails now, against its class.

With the grid present the hours are "if the grid failed now": battery plus the fuel
of an idle generator (assumed to start). A site's battery hours are its weakest
battery's: where one battery's hours are unknown beside another's, the known hours
hold only if it feeds nothing else, which nothing says; enough hours by the known ones
are then said as not known for that battery (``backup_hours_partial``, verdict
unknown), never ``ready``; on battery, the time left the same (``on_battery_partial``).
With the grid gone they are what is left from now (``dark_in_s``); a generator that
is not running is not counted then, and says so. With the grid gone and the generator's
state not read, while no battery device says it is discharging, the source is unknown
and so are the hours: said as that (``power_source_unknown``), never as on generator.
How autonomy is estimated, and why
a vendor runtime may be ignored, is in ``rules/autonomy.py``.

Where the ``meeting`` rule also runs (meeting points), the hours are judged against
the meeting (from now or its start, to its end) by that rule; this one then reports
only the power state (a generator that failed to start still warns) and the
per-device notes, so one shortfall never gives two reasons.
"""

from __future__ import annotations

from rules.autonomy import BatteryEstimate, PowerAssessment
from rules.context import RuleContext, hours
from rules.findings import Finding, severity_for_hours


def _numbers(ctx: RuleContext) -> dict[str, float | None]:
    p, target = ctx.power, ctx.thresholds.backup
    weakest = _weakest(p)
    return {
        "backup_h": hours(p.backup_s),
        "required_h": target.warn_below_h,
        "critical_h": target.critical_below_h,
        "dark_in_s": p.dark_in_s,
        "battery_s": p.battery_s,
        "battery_h": hours(p.battery_s),
        "generator_s": p.generator_s,
        "battery_ups_s": weakest.ups_s if weakest else None,
        "battery_model_s": weakest.model_s if weakest else None,
        "battery_slope_s": weakest.slope_s if weakest else None,
        # 1 when the discharge trend was more pessimistic than the UPS/model estimate
        "slope_used": (1.0 if weakest.basis == "slope" else 0.0) if weakest else None,
        "burn_assumed": 1.0 if p.burn_assumed else 0.0,
        "lower_bound": 1.0 if p.lower_bound else 0.0,
        # the risk level, when it raised this site's target (said in the texts)
        "tightened_at_level": ctx.thresholds.tightened_at("backup"),
    }


def _target(ctx: RuleContext) -> dict[str, str]:
    """Whose target the texts name ("a hardened station needs 72 h"); none at meeting
    points, whose hours the meeting rule judges against the meeting."""
    judged_by_meeting = "meeting" in ctx.thresholds.rules
    return {"target": "" if judged_by_meeting else ctx.thresholds.backup_for}


def _weakest(p: PowerAssessment) -> BatteryEstimate | None:
    known = [b for b in p.batteries if b.seconds is not None]
    return min(known, key=lambda b: b.seconds or 0.0) if known else None


def _unmodelled(p: PowerAssessment) -> BatteryEstimate | None:
    """The first battery whose hours are unknown only for lack of a model in the site config."""
    return next((b for b in p.batteries if b.unknown_for_lack_of_model), None)


def _partly_unknown(p: PowerAssessment) -> BatteryEstimate | None:
    """A battery of unknown hours beside one whose hours are known, if any. The site's
    battery hours are its weakest battery's: the known ones' hold only if this one feeds
    nothing the site needs, which nothing here says."""
    if p.battery_s is None:
        return None
    return next((b for b in p.batteries if b.seconds is None), None)


def _battery_unknown(p: PowerAssessment) -> bool:
    return bool(p.batteries) and p.battery_s is None


def _device_notes(ctx: RuleContext, named: str | None) -> list[Finding]:
    """Per-device notes; ``named`` is a device the main finding already speaks of."""
    notes: list[Finding] = []
    ratio = ctx.thresholds.runtime.optimistic_ratio
    for device, error in ctx.power.errors:
        labels = {"device": device, "error": error}
        notes.append(ctx.finding("backup_power", "warning", "power_probe_error", labels=labels))
    for b in ctx.power.batteries:
        numbers = {"runtime_s": b.ups_raw_s, "model_s": b.model_s, "estimate_s": b.seconds}
        labels = {"device": b.device}
        if b.unknown_for_lack_of_model:
            if b.device != named:
                # the hours stay unknown (the main finding says what that does); the fix
                code = "battery_model_missing"
                notes.append(
                    ctx.finding("backup_power", "warning", code, numbers, labels, impact="none")
                )
        elif b.basis == "bypass":
            # the hours count it 0 (rules/autonomy.py); this says why, and what to check
            notes.append(ctx.finding("backup_power", "warning", "ups_on_bypass", labels=labels))
        elif b.ups_untrusted:
            code = "runtime_untrusted" if b.seconds is not None else "runtime_untrusted_no_charge"
            notes.append(ctx.finding("backup_power", "info", code, numbers, labels))
        if b.ups_s is not None and b.slope_s is not None and b.slope_s < ratio * b.ups_s:
            notes.append(
                ctx.finding(
                    "backup_power",
                    "info",
                    "battery_estimate_optimistic",
                    {"ups_s": b.ups_s, "slope_s": b.slope_s, "ratio_pct": ratio * 100},
                    {"device": b.device},
                )
            )
    return notes


def _grid_gone(ctx: RuleContext) -> Finding | None:
    p, target = ctx.power, ctx.thresholds.backup
    if p.mode == "down":
        return None  # station_state says it, once
    numbers = _numbers(ctx)
    if p.dark_in_s is None:
        if p.mode == "generator":
            code = "on_generator_fuel_unknown"
            return ctx.finding("backup_power", "warning", code, numbers, impact="unknown")
        if p.generator_present and p.generator_running is False:
            # the generator should have started: said first, the fix is to start it
            code = "on_battery_generator_stopped_runtime_unknown"
            return ctx.finding("backup_power", "warning", code, numbers, impact="unknown")
        missing = _unmodelled(p)
        if missing is not None:
            code, labels = "on_battery_no_model", {"device": missing.device}
            return ctx.finding("backup_power", "warning", code, numbers, labels, impact="unknown")
        code = "on_battery_runtime_unknown"
        return ctx.finding("backup_power", "warning", code, numbers, impact="unknown")
    severity = severity_for_hours(p.dark_in_s / 3600, target.warn_below_h, target.critical_below_h)
    if "meeting" in ctx.thresholds.rules:
        severity = "info"  # the hours are judged against the meeting, to its end, by that rule
    if p.mode == "generator":
        if p.generator_s is None:
            return ctx.finding("backup_power", "warning", "on_generator_fuel_unknown", numbers)
        return ctx.finding("backup_power", severity, "on_generator", numbers, _target(ctx))
    if p.generator_present and p.generator_running is False:
        # it should have started: that is an alarm even with hours of battery left
        return ctx.finding(
            "backup_power",
            "critical" if severity == "critical" else "warning",
            "on_battery_generator_stopped",
            numbers,
            _target(ctx),
        )
    unknown = _partly_unknown(p)
    if unknown is not None and severity == "info":
        # the time left is the known batteries'; one of unknown time may go first
        labels = {"device": unknown.device, "known": ", ".join(
            b.device for b in p.batteries if b.seconds is not None)}  # fmt: skip
        code = "on_battery_partial"
        return ctx.finding("backup_power", "warning", code, numbers, labels, impact="unknown")
    code = "on_battery" if p.generator_present else "on_battery_no_generator"
    return ctx.finding("backup_power", severity, code, numbers, _target(ctx))


def _grid_present(ctx: RuleContext) -> Finding | None:
    p, target = ctx.power, ctx.thresholds.backup
    if p.backup_s is not None and p.backup_s / 3600 >= target.warn_below_h:
        unknown = _partly_unknown(p)
        if unknown is None:
            return None  # enough, even if the generator's part of it is not known
        # enough by the batteries known; one more whose hours are not known may be the
        # weakest: not "ready" on the strength of the others (short is said as short:
        # an unknown battery can only make the hours fewer)
        known = ", ".join(b.device for b in p.batteries if b.seconds is not None)
        labels = {"device": unknown.device, "known": known}
        code = "backup_hours_partial"
        if unknown.unknown_for_lack_of_model:
            code = "backup_hours_partial_no_model"
        numbers = _numbers(ctx)
        return ctx.finding("backup_power", "warning", code, numbers, labels, impact="unknown")
    numbers = _numbers(ctx)  # made only for a finding
    if p.backup_s is None or _battery_unknown(p):
        # Unknown is said as unknown: a battery of unknown size is never judged short.
        missing = _unmodelled(p)
        if missing is not None:
            code, labels = "backup_hours_unknown_no_model", {"device": missing.device}
            return ctx.finding("backup_power", "warning", code, numbers, labels, impact="unknown")
        return ctx.finding("backup_power", "warning", "backup_hours_unknown", impact="unknown")
    backup_h = p.backup_s / 3600
    if p.lower_bound and p.generator_present and p.generator_s is None:
        code = "generator_autonomy_unknown"
        return ctx.finding("backup_power", "warning", code, numbers, _target(ctx))
    severity = severity_for_hours(backup_h, target.warn_below_h, target.critical_below_h)
    code = "backup_hours_critical" if severity == "critical" else "backup_hours_short"
    return ctx.finding("backup_power", severity, code, numbers, _target(ctx))


def check(ctx: RuleContext) -> tuple[Finding, ...]:
    judged_by_meeting = "meeting" in ctx.thresholds.rules
    if not ctx.power.has_data:
        if judged_by_meeting:
            return ()
        return (ctx.finding("backup_power", "warning", "backup_hours_unknown", impact="unknown"),)
    main: Finding | None = None
    if ctx.power.source_unknown:
        # said at meeting points too: it is the power state, not an hours judgement
        numbers = {"battery_s": ctx.power.battery_s, "generator_s": ctx.power.generator_s}
        code = "power_source_unknown"
        main = ctx.finding("backup_power", "warning", code, numbers, impact="unknown")
    elif ctx.power.mode in ("battery", "generator", "down"):
        main = _grid_gone(ctx)
    elif not judged_by_meeting:
        main = _grid_present(ctx)
    # a main finding that names a device says its fix; on_battery_partial leaves it to the note
    named = None if main is None or main.code == "on_battery_partial" else main.labels.get("device")
    notes = _device_notes(ctx, named)
    return tuple(([main] if main is not None else []) + notes)
