"""Multi-path links: independent paths up against the number the site kind requires.

Losing the last path gives one finding, ``path_all_down``, and nothing else from this
rule (the engine also silences link quality then). How independence is counted is in
``rules/paths.py``.
"""

from __future__ import annotations

from contract.wire import Severity
from rules.context import RuleContext
from rules.findings import Finding, Impact
from rules.paths import PathInfo


def _numbers(ctx: RuleContext) -> dict[str, float | None]:
    paths, required = ctx.paths, ctx.thresholds.required_paths
    return {
        "paths_total": len(paths.paths),
        "paths_up": len(paths.up),
        "paths_down": len(paths.down),
        "paths_unknown": len(paths.unknown),
        "independent": len(paths.independent),
        "required": required,
        "media": len(paths.independent_media),
        "preferred_media": ctx.thresholds.preferred_media,
        "tightened_at_level": ctx.thresholds.tightened_at("required_paths"),
    }


def _name(path: PathInfo, other: PathInfo) -> str:
    """Name a path by its medium, or by its id when both have the same medium."""
    return path.media if path.media != other.media else path.path


Said = tuple[Severity, str, dict[str, str], Impact | None]


def _findings(ctx: RuleContext, said: list[Said]) -> tuple[Finding, ...]:
    """The findings, with the numbers made once and only when there is one (a site with
    its paths in order, the usual case, has none)."""
    if not said:
        return ()
    numbers = _numbers(ctx)
    return tuple(
        ctx.finding("multipath", severity, code, numbers, labels, impact)
        for severity, code, labels, impact in said
    )


def check(ctx: RuleContext) -> tuple[Finding, ...]:
    paths, required = ctx.paths, ctx.thresholds.required_paths
    if not paths.paths:
        if required == 0:
            return ()
        return _findings(ctx, [("warning", "paths_unknown", {}, "unknown")])
    if paths.all_down:
        return _findings(ctx, [("critical", "path_all_down", {}, None)])
    # named, as unknown: the agent said up or down with no probe sent
    findings: list[Said] = [
        ("info", "path_unprobed", {"path": p.path, "media": p.media}, None)
        for p in paths.unknown
        if p.unprobed
    ]
    if paths.up:
        for path in paths.down:
            named = {"path": path.path, "media": path.media}
            if path.lossy:  # its loss as the agent measured it, the limit it passed
                loss, limit = path.loss_pct or 0.0, ctx.thresholds.usable_loss_pct
                named |= {"loss_pct": f"{loss:.0f}", "usable_loss_pct": f"{limit:g}"}
            findings.append(("info", "path_lossy" if path.lossy else "path_down", named, None))
    elif required > 0:
        findings.append(("warning", "paths_unknown", {}, "unknown"))
        return _findings(ctx, findings)
    independent = len(paths.independent)
    if 0 < independent < required:
        one_short = required - independent == 1
        severity: Severity = "warning" if one_short else "critical"
        impact: Impact = "spof" if one_short else "blocks"
        labels: dict[str, str] = {}
        if independent > 1:
            code = "paths_too_few"
        elif paths.shared is not None:
            a, b = paths.shared.a, paths.shared.b
            code = "paths_one_independent_shared"
            labels = {"path_a": _name(a, b), "path_b": _name(b, a), "srlg": paths.shared.srlg}
        else:
            code = "paths_one_independent"
        findings.append((severity, code, labels, impact))
    elif independent >= 2 and ctx.thresholds.preferred_media >= 2:
        media = paths.independent_media
        if len(media) == 1:
            findings.append(("info", "paths_one_media", {"media": next(iter(media))}, None))
    return _findings(ctx, findings)
