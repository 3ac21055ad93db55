"""Meeting readiness of a meeting point (điểm cầu): power for the meeting, room devices.

This rule checks what is particular to a meeting: power until it ends, with margin
(and the UPS bridge to the generator), and the room's devices. On the grid the need
is the meeting's (remaining) duration, as mains may fail when it starts; on
generator or battery it runs from now to the meeting's end. Paths and
link quality are the ``multipath`` and ``link_quality`` rules' findings; together they
give the verdict (``findings.verdict_of``): any blocking reason → ``not_ready``;
exactly one single point of failure (one independent path, UPS-only power, a short
UPS bridge) or one degradation, the rest fine → ``degraded``; two → ``not_ready``; a
check that cannot be made → ``unknown``. Every reason that applies is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from contract.wire import RoomReading
from rules.context import RuleContext, hours
from rules.findings import Finding
from rules.policy import RoomCheck

FAULT_CODES: Mapping[RoomCheck, str] = MappingProxyType(
    {
        "codec_reachable": "codec_unreachable",
        "codec_registered": "codec_not_registered",
        "camera_ok": "camera_fault",
        "microphone_ok": "microphone_fault",
        "speaker_ok": "speaker_fault",
        "display_ok": "display_fault",
    }
)


def _need(ctx: RuleContext) -> tuple[datetime, float]:
    """When the need for backup power starts, and how many seconds it lasts (with margin).

    On the grid, mains may fail at any moment of the meeting, the worst at its start
    (or now, once it has started): the whole remaining meeting. On generator or
    battery the site spends its reserve already: from now to the meeting's end.
    """
    margin = 1 + ctx.thresholds.meeting.margin_pct / 100
    ends_at = ctx.meeting_starts_at + timedelta(seconds=ctx.meeting_duration_s)
    on_backup = ctx.power.mode in ("battery", "generator")
    since = ctx.now if on_backup else max(ctx.meeting_starts_at, ctx.now)
    return since, max(0.0, (ends_at - since).total_seconds()) * margin


def _power_unknown(ctx: RuleContext, numbers: dict[str, float | None]) -> list[Finding]:
    return [ctx.finding("meeting", "warning", "meeting_power_unknown", numbers, impact="unknown")]


def _power(ctx: RuleContext) -> list[Finding]:
    p, meeting = ctx.power, ctx.thresholds.meeting
    if p.mode == "down":
        return []  # station_state says it, once
    since, needed_s = _need(ctx)
    if needed_s <= 0:
        return []  # the meeting is over
    ends_at = ctx.meeting_starts_at + timedelta(seconds=ctx.meeting_duration_s)
    numbers: dict[str, float | None] = {
        "needed_s": needed_s,
        "needed_h": needed_s / 3600,
        "duration_h": ctx.meeting_duration_s / 3600,
        "margin_pct": meeting.margin_pct,
        "tightened_at_level": ctx.thresholds.tightened_at("meeting_margin"),
        "backup_s": p.backup_s,
        "backup_h": hours(p.backup_s),
        "battery_s": p.battery_s,
        "generator_s": p.generator_s,
        "bridge_s": meeting.ups_bridge_min_s,
        # times as UTC epoch seconds; the texts show them in Vietnam time
        "needed_until_ts": since.timestamp() + needed_s,
        "ends_at_ts": ends_at.timestamp(),
        "backup_until_ts": None if p.backup_s is None else since.timestamp() + p.backup_s,
    }
    if p.backup_s is None or (p.lower_bound and p.backup_s < needed_s):
        return _power_unknown(ctx, numbers)
    if p.backup_s < needed_s:
        code = (
            "meeting_power_short"
            if p.mode in ("commercial", "unknown")
            else "meeting_power_runs_out"
        )
        return [ctx.finding("meeting", "critical", code, numbers)]
    # Enough by the batteries whose hours are known, with one whose hours are not beside
    # them: that one may be the weakest (the site's hours are its weakest battery's,
    # rules/backup_power.py), so what would pass on the strength of the others is not
    # known; what is short by the known ones alone is said short (it can only be shorter).
    partial = p.battery_s is not None and any(b.seconds is None for b in p.batteries)
    if not p.generator_present:
        if partial:
            return _power_unknown(ctx, numbers)
        return [ctx.finding("meeting", "warning", "meeting_power_ups_only", numbers, impact="spof")]
    if p.mode not in ("commercial", "unknown"):
        # the grid is gone and what is left covers the meeting
        return _power_unknown(ctx, numbers) if partial else []
    if p.battery_s is None:
        return [ctx.finding("meeting", "warning", "meeting_ups_bridge_unknown", numbers)]
    if p.battery_s < meeting.ups_bridge_min_s:
        code = "meeting_ups_bridge_short"
        return [ctx.finding("meeting", "warning", code, numbers, impact="spof")]
    return _power_unknown(ctx, numbers) if partial else []


def _devices(ctx: RuleContext) -> list[Finding]:
    if not ctx.thresholds.meeting.devices:
        return []  # the policy checks no room device (a point whose room is not monitored)
    held = ctx.snapshot.room
    if held is None:
        return [ctx.finding("meeting", "warning", "room_unknown", impact="unknown")]
    room: RoomReading = held[0]
    checks = ctx.thresholds.meeting.devices
    values = {check: getattr(room, check) for check in checks}
    if room.error and all(v is None for v in values.values()):
        labels = {"error": room.error}
        return [ctx.finding("meeting", "warning", "room_error", labels=labels, impact="unknown")]
    findings: list[Finding] = []
    unknown = 0
    for check in checks:
        # registration follows reachability and transport: no cascade from those
        if check == "codec_registered" and (room.codec_reachable is False or ctx.paths.all_down):
            continue
        value = values[check]
        if value is False:
            findings.append(ctx.finding("meeting", "critical", FAULT_CODES[check]))
        elif value is None:
            unknown += 1
    if unknown:
        numbers = {"unknown": unknown}
        findings.append(
            ctx.finding("meeting", "warning", "room_devices_unknown", numbers, impact="unknown")
        )
    return findings


def check(ctx: RuleContext) -> tuple[Finding, ...]:
    return tuple(_power(ctx) + _devices(ctx))
