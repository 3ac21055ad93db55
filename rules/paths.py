"""Which link paths are up, and how many of them are independent.

Two paths are independent only if they share no shared-risk link group (SRLG: duct,
pole line, tower, upstream node, power feed — RFC 4202). The number of independent
paths up is the size of the largest set of up paths that are pairwise SRLG-disjoint:
then no single shared risk can take down more than one path of the set. Among sets
of the same size, the one with the most media is chosen. The search is exact up to
``EXACT_LIMIT`` up paths (sites have a handful) and greedy beyond.

A path's groups are those its reading carries plus those its meta declares. A
declared path with no reading is *unknown*, never *up*; so is one whose reading says up
or down with no probe sent (``probes_sent`` 0, ``unprobed``): nothing measured it. The
wire takes such a reading (the field defaults to 0, and refusing it would refuse the
report's power readings with it); every kienco agent sends its count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from contract.wire import LinkReading, Media
from rules.snapshot import SiteSnapshot

EXACT_LIMIT = 16


@dataclass(frozen=True, slots=True)
class PathInfo:
    path: str
    media: Media
    srlg: frozenset[str]
    up: bool | None
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    bandwidth_up_mbps: float | None = None
    bandwidth_down_mbps: float | None = None
    bandwidth_error: str | None = None  # its last bandwidth test failed: what failed
    # reported up, but losing more than the usable share of its probes: counted down
    lossy: bool = False
    # the order the site's router uses it in, 1 first (meta); None: not declared
    priority: int | None = None
    # reported up or down with no probe sent: nothing measured it, counted unknown
    unprobed: bool = False


@dataclass(frozen=True, slots=True)
class SharedRisk:
    """Two up paths that count once, and one group they share."""

    a: PathInfo
    b: PathInfo
    srlg: str


@dataclass(frozen=True, slots=True)
class PathAssessment:
    """The paths, and views of them made once: the rules ask for them ~10 times a site."""

    paths: tuple[PathInfo, ...] = ()
    independent: tuple[PathInfo, ...] = ()
    shared: SharedRisk | None = None
    up: tuple[PathInfo, ...] = field(init=False, repr=False, compare=False)
    down: tuple[PathInfo, ...] = field(init=False, repr=False, compare=False)
    unknown: tuple[PathInfo, ...] = field(init=False, repr=False, compare=False)
    # every path is known and down: the site lost its last path
    all_down: bool = field(init=False, repr=False, compare=False)
    independent_media: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        up: list[PathInfo] = []
        down: list[PathInfo] = []
        unknown: list[PathInfo] = []
        for p in self.paths:
            (up if p.up is True else down if p.up is False else unknown).append(p)
        object.__setattr__(self, "up", tuple(up))
        object.__setattr__(self, "down", tuple(down))
        object.__setattr__(self, "unknown", tuple(unknown))
        object.__setattr__(self, "all_down", bool(self.paths) and not up and not unknown)
        object.__setattr__(self, "independent_media", frozenset(p.media for p in self.independent))


def _disjoint_sets_exact(paths: Sequence[PathInfo]) -> tuple[PathInfo, ...]:
    best: list[tuple[PathInfo, ...]] = [()]
    _search(paths, 0, (), frozenset(), best)
    return best[0]


def _score(chosen: tuple[PathInfo, ...]) -> tuple[int, int]:
    return len(chosen), len({p.media for p in chosen})


def _search(
    paths: Sequence[PathInfo],
    i: int,
    chosen: tuple[PathInfo, ...],
    used: frozenset[str],
    best: list[tuple[PathInfo, ...]],
) -> None:
    """Branch and bound over the paths from ``i``; ``best[0]`` the largest set so far.

    Module-level rather than a closure calling itself: such a closure holds itself through
    its cell, a reference cycle each judgement, which collector/heap.py could freeze alive."""
    if len(chosen) + len(paths) - i < len(best[0]):
        return
    if i == len(paths):
        if _score(chosen) > _score(best[0]):
            best[0] = chosen
        return
    path = paths[i]
    if not path.srlg & used:
        _search(paths, i + 1, (*chosen, path), used | path.srlg, best)
    _search(paths, i + 1, chosen, used, best)


def _disjoint_sets_greedy(paths: Sequence[PathInfo]) -> tuple[PathInfo, ...]:
    def conflicts(p: PathInfo) -> int:
        return sum(1 for q in paths if q is not p and p.srlg & q.srlg)

    chosen: list[PathInfo] = []
    used: set[str] = set()
    for path in sorted(paths, key=lambda p: (conflicts(p), p.path)):
        if not path.srlg & used:
            chosen.append(path)
            used |= path.srlg
    return tuple(chosen)


def max_independent(paths: Sequence[PathInfo]) -> tuple[PathInfo, ...]:
    """A largest set of pairwise SRLG-disjoint paths (see the module docstring)."""
    if len(paths) <= EXACT_LIMIT:
        return _disjoint_sets_exact(paths)
    return _disjoint_sets_greedy(paths)


def _shared_risk(up: Sequence[PathInfo]) -> SharedRisk | None:
    for i, a in enumerate(up):
        for b in up[i + 1 :]:
            common = a.srlg & b.srlg
            if common:
                return SharedRisk(a, b, min(common))
    return None


def measured_up(link: LinkReading) -> bool | None:
    """The reading's up, when a probe measured it; None when none was sent."""
    return None if link.probes_sent == 0 else link.up


def assess_paths(snapshot: SiteSnapshot, *, usable_loss_pct: float = 100.0) -> PathAssessment:
    """The site's paths. One its agent says is up but that loses more than
    ``usable_loss_pct`` of its probes (the agent calls a path up when any probe comes
    back: a microwave hop at 90 % loss in a typhoon) is counted down, ``lossy``: as a
    second path it is no backup, as the only one no transport."""
    declared = {d.path: d for d in snapshot.meta.paths} if snapshot.meta is not None else {}
    infos: dict[str, PathInfo] = {}
    for name, (link, _) in snapshot.links.items():
        decl = declared.get(name)
        groups = frozenset(link.srlg) | (frozenset(decl.srlg) if decl is not None else frozenset())
        unprobed = link.up is not None and measured_up(link) is None
        lossy = (
            link.up is True
            and not unprobed
            and link.loss_pct is not None
            and link.loss_pct > usable_loss_pct
        )
        infos[name] = PathInfo(
            path=name,
            media=link.media,
            srlg=groups,
            up=None if unprobed else False if lossy else link.up,
            lossy=lossy,
            unprobed=unprobed,
            rtt_ms=link.rtt_ms,
            jitter_ms=link.jitter_ms,
            loss_pct=link.loss_pct,
            bandwidth_up_mbps=link.bandwidth_up_mbps,
            bandwidth_down_mbps=link.bandwidth_down_mbps,
            priority=decl.priority if decl is not None else None,
            bandwidth_error=link.bandwidth_error,
        )
    for name, decl in declared.items():
        if name not in infos:
            infos[name] = PathInfo(
                path=name,
                media=decl.media,
                srlg=frozenset(decl.srlg),
                up=None,
                priority=decl.priority,
            )
    paths = tuple(infos[name] for name in sorted(infos))
    up = [p for p in paths if p.up is True]
    shared = _shared_risk(up)
    if shared is None and len(up) <= EXACT_LIMIT:
        # No two up paths share a group: all of them, in order, as the search would find
        # (no other set is as large); the search itself is most of this function's time.
        return PathAssessment(paths=paths, independent=tuple(up), shared=None)
    independent = max_independent(up)
    shared = shared if len(independent) < len(up) else None
    return PathAssessment(paths=paths, independent=independent, shared=shared)
