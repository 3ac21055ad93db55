"""Link quality: the path that carries a call against what an HD video meeting needs.

A path passes when its round-trip time and loss are measured and within limits and
its jitter and bandwidth, when measured, are too. A path whose bandwidth test failed
(the agent says what failed, ``bandwidth_error``) has a bandwidth that is not known, not
one that passes: where the policy requires a minimum of the direction not measured, it
does not pass (``link_bandwidth_unknown``, a check that could not be made). One passing
path is enough. If none
passes, the reasons are those of the best path (fewest limits broken, then lowest
round-trip time), one finding per broken limit. No up path: nothing to say here
(``multipath`` says it).

Which paths can carry the call: where the site declares the order its router uses its
paths in (``priority`` in meta, 1 first: static routes, a floating route), the up paths
of the lowest number, and only those: the router keeps the call on its primary while the
primary is up, however lossy, and a good backup beside it does not carry it. Then, if
the primary fails the limits while another up path would pass, ``link_call_on_primary``
says so (switch over by hand, or mend the primary). Where no order is declared the
router is taken to pick the best path itself (SD-WAN): any up path may carry the call.

The failover must carry the meeting too. With the independent paths the site kind
requires up (``multipath`` counts them), those losing more than
``backup_max_loss_pct`` (5 %, a proposal) are taken out; if fewer independent paths
are then left than required, the meeting has no failover: one single point of failure,
``link_backup_unfit``, naming the best such path and its loss. Round-trip time and
jitter are not asked of a backup: a VSAT path's 600 ms carries a call, one losing a
third of its packets does not.
"""

from __future__ import annotations

from rules.context import RuleContext
from rules.findings import Finding
from rules.paths import PathInfo, max_independent
from rules.policy import LinkQualityPolicy

Numbers = dict[str, float | None]
Violation = tuple[str, Numbers]


def violations(path: PathInfo, limits: LinkQualityPolicy) -> list[Violation]:
    found: list[Violation] = []
    if path.rtt_ms is not None and path.rtt_ms > limits.max_rtt_ms:
        numbers: Numbers = {"rtt_ms": path.rtt_ms, "max_rtt_ms": limits.max_rtt_ms}
        found.append(("link_rtt_high", numbers))
    if path.jitter_ms is not None and path.jitter_ms > limits.max_jitter_ms:
        numbers = {"jitter_ms": path.jitter_ms, "max_jitter_ms": limits.max_jitter_ms}
        found.append(("link_jitter_high", numbers))
    if path.loss_pct is not None and path.loss_pct > limits.max_loss_pct:
        numbers = {"loss_pct": path.loss_pct, "max_loss_pct": limits.max_loss_pct}
        found.append(("link_loss_high", numbers))
    up, down = path.bandwidth_up_mbps, path.bandwidth_down_mbps
    min_up, min_down = limits.min_bandwidth_up_mbps, limits.min_bandwidth_down_mbps
    code: str | None = None
    if (up is not None and min_up is not None and up < min_up) or (
        down is not None and min_down is not None and down < min_down
    ):
        code = "link_bandwidth_low"
    elif path.bandwidth_error is not None and (
        (up is None and min_up is not None) or (down is None and min_down is not None)
    ):
        code = "link_bandwidth_unknown"
    if code is not None:
        numbers = {
            "up_mbps": up,
            "down_mbps": down,
            "min_up_mbps": min_up,
            "min_down_mbps": min_down,
        }
        found.append((code, numbers))
    return found


def _measured(path: PathInfo) -> bool:
    return path.rtt_ms is not None and path.loss_pct is not None


def carrying(up: tuple[PathInfo, ...]) -> tuple[PathInfo, ...]:
    """The up paths a call can ride: those of the lowest declared priority, where any is
    declared; every up path where none is (the router picks the best itself)."""
    ranked = [p.priority for p in up if p.priority is not None]
    if not ranked:
        return up
    first = min(ranked)
    return tuple(p for p in up if p.priority == first)


def _passes(path: PathInfo, limits: LinkQualityPolicy) -> bool:
    return _measured(path) and not violations(path, limits)


def check(ctx: RuleContext) -> tuple[Finding, ...]:
    limits = ctx.thresholds.link
    up = ctx.paths.up
    if not up:
        return ()
    calls = carrying(up)
    judged = [(p, violations(p, limits)) for p in calls]
    if any(_measured(p) and not broken for p, broken in judged):
        return _failover(ctx)
    measured = [(p, broken) for p, broken in judged if broken or _measured(p)]
    if not measured:
        numbers = {"paths_up": len(up)}
        return (
            ctx.finding(
                "link_quality", "warning", "link_quality_unknown", numbers, impact="unknown"
            ),
        )
    best, broken = min(measured, key=lambda pb: (len(pb[1]), pb[0].rtt_ms or 0.0, pb[0].path))
    labels = {"path": best.path, "media": best.media}
    found = [
        ctx.finding("link_quality", "warning", code, nums, labels)
        if code != "link_bandwidth_unknown"
        else ctx.finding(
            "link_quality",
            "warning",
            code,
            nums,
            labels | {"error": best.bandwidth_error or ""},
            impact="unknown",
        )
        for code, nums in broken
    ]
    better = sorted(
        (p for p in up if p not in calls and _passes(p, limits)),
        key=lambda p: (p.priority or 100, p.rtt_ms or 0.0, p.path),
    )
    if better:
        # the router keeps the call on its primary while that is up: a good backup beside
        # it does not carry the meeting (module docstring)
        kept: Numbers = {"priority": best.priority, "better_priority": better[0].priority}
        named = {"path": best.path, "better": better[0].path}
        found.append(ctx.finding("link_quality", "info", "link_call_on_primary", kept, named))
    return tuple(found)


def _failover(ctx: RuleContext) -> tuple[Finding, ...]:
    """With a path good for the meeting: can the meeting fail over (module docstring)?"""
    limit = ctx.thresholds.link.backup_max_loss_pct
    required = ctx.thresholds.required_paths
    paths = ctx.paths
    if limit is None or required < 2 or len(paths.independent) < required:
        return ()  # fewer independent paths than required: multipath says it
    unfit = [p for p in paths.up if p.loss_pct is not None and p.loss_pct > limit]
    if not unfit:
        return ()
    fit = len(max_independent([p for p in paths.up if p not in unfit]))
    if fit >= required:
        return ()
    # named: the failover as counted (of the independent set), the least lossy of them
    counted = [p for p in unfit if p in paths.independent] or unfit
    best = min(counted, key=lambda p: (p.loss_pct or 0.0, p.path))
    numbers: Numbers = {
        "loss_pct": best.loss_pct,
        "backup_max_loss_pct": limit,
        "fit": fit,
        "required": required,
        "tightened_at_level": ctx.thresholds.tightened_at("required_paths"),
    }
    labels = {"path": best.path, "media": best.media}
    return (
        ctx.finding("link_quality", "warning", "link_backup_unfit", numbers, labels, impact="spof"),
    )
