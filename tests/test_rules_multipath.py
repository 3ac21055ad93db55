"""Multi-path: SRLG-independent paths up against the required number; one finding on loss."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from contract.wire import LinkReading, PathDecl
from rules import SiteSnapshot, effective, evaluate, to_status
from rules.paths import PathInfo, max_independent
from tests.test_rules_support import NOW, POLICY, codes, genset, judge, link, room, snap, ups


def station(*links: LinkReading, **kwargs: object) -> SiteSnapshot:
    kind = kwargs.pop("kind", "station")
    return snap(kind, power=[ups()], links=links, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    snapshot: SiteSnapshot
    independent: int | None
    codes: tuple[str, ...]
    verdict: str
    state: str = "up_commercial"


CASES = [
    pytest.param(
        Case(
            station(link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b")),
            2,
            (),
            "ready",
        ),
        id="fibre-and-microwave-disjoint",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre", "tower-hp12"), link("mw1", "microwave", "tower-hp12")),
            1,
            ("paths_one_independent_shared",),
            "degraded",
        ),
        id="two-paths-one-tower-count-once",
    ),
    pytest.param(
        Case(station(link("fo1", "fibre", "duct-a")), 1, ("paths_one_independent",), "degraded"),
        id="single-path",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", up=False)),
            1,
            ("path_down", "paths_one_independent"),
            "degraded",
        ),
        id="one-of-two-down",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a", up=False),
                link("mw1", "microwave", "tower-b", up=False),
            ),
            0,
            ("path_all_down",),
            "not_ready",
            "down_transport",
        ),
        id="all-paths-down-one-finding",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre", "duct-a", up=False)),
            0,
            ("path_all_down",),
            "not_ready",
            "down_transport",
        ),
        id="only-path-down",
    ),
    pytest.param(
        Case(
            station(
                link("a", "fibre", "s1"),
                link("b", "microwave", "s1", "s2"),
                link("c", "cellular", "s2"),
            ),
            2,
            (),
            "ready",
        ),
        id="chain-a-b-c-ends-are-independent",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"),
                link("fo2", "fibre", "duct-a"),
                link("fo3", "fibre", "pole-7"),
            ),
            2,
            ("paths_one_media",),
            "ready",
        ),
        id="two-independent-but-all-fibre",
    ),
    pytest.param(
        Case(station(link("fo1"), link("mw1", "microwave")), 2, (), "ready"),
        id="no-srlg-declared-counts-independent",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre"), link("mw1", "microwave")).with_meta(
                station().meta.model_copy(  # type: ignore[union-attr]
                    update={
                        "paths": (
                            PathDecl(path="fo1", media="fibre", srlg=("tower-x",)),
                            PathDecl(path="mw1", media="microwave", srlg=("tower-x",)),
                        )
                    }
                )
            ),
            1,
            ("paths_one_independent_shared",),
            "degraded",
        ),
        id="srlg-declared-in-meta-counts",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a", up=False),
                link("mw1", "microwave", "tower-b", up=None, error="ping: no route"),
            ),
            0,
            ("paths_unknown",),
            "unknown",
        ),
        id="down-and-unknown-is-not-all-down",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"),
                meta_paths=[
                    PathDecl(path="fo1", media="fibre", srlg=("duct-a",)),
                    PathDecl(path="mw1", media="microwave", srlg=("tower-b",)),
                ],
            ),
            1,
            ("paths_one_independent",),
            "degraded",
        ),
        id="declared-path-not-reported-is-not-up",
    ),
    pytest.param(
        Case(station(), None, ("paths_unknown",), "unknown", "up_commercial"),
        id="no-link-data",
    ),
    pytest.param(
        Case(station(link("fo1", "fibre"), kind="power_room"), 1, (), "ready"),
        id="power-room-needs-no-second-path",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre", up=False), kind="power_room"),
            0,
            ("path_all_down",),
            "not_ready",
            "down_transport",
        ),
        id="power-room-lost-its-path",
    ),
]


# A path the agent calls up (one probe came back) but that loses more than the policy's
# usable share of its probes (multipath.usable_loss_pct, 50 %) is no path: no backup
# for another, no transport alone (found by the verdict audit: 90 % loss counted).
LOSSY_CASES = [
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", loss_pct=90)
            ),
            1,
            ("path_lossy", "paths_one_independent"),
            "degraded",
        ),
        id="microwave-at-90-pct-loss-is-no-backup",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre", "duct-a", loss_pct=100)),
            0,
            ("path_all_down",),
            "not_ready",
            "down_transport",
        ),
        id="only-path-up-at-100-pct-loss-is-transport-lost",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", loss_pct=50)
            ),
            2,
            (),  # the fibre passes link quality: one passing path is enough there
            "ready",
        ),
        id="at-the-limit-still-a-path",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", loss_pct=None)
            ),
            2,
            (),
            "ready",
        ),
        id="loss-not-measured-up-as-said",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a", loss_pct=80),
                link("mw1", "microwave", "tower-b", loss_pct=95),
            ),
            0,
            ("path_all_down",),
            "not_ready",
            "down_transport",
        ),
        id="every-path-lossy-is-transport-lost",
    ),
]


# A reading that says up (or down) with no probe sent carries no measurement: the wire
# lets it through (probes_sent defaults to 0; every kienco agent sends its count), and
# it was counted as the agent said: a path nothing measured counted up, a site with one
# real path judged ready on two, and two unprobed "down" readings a false transport lost.
# It is unknown, and said.
UNPROBED = {"probes_sent": 0, "rtt_ms": None, "jitter_ms": None, "loss_pct": None}
UNPROBED_CASES = [
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", **UNPROBED)
            ),
            1,
            ("path_unprobed", "paths_one_independent"),
            "degraded",
        ),
        id="second-path-up-with-no-probe-is-no-backup",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"),
                link("mw1", "microwave", "tower-b", probes_sent=0, rtt_ms=30.0),
            ),
            1,
            ("path_unprobed", "paths_one_independent"),
            "degraded",
        ),
        id="figures-without-probes-are-no-measurement",
    ),
    pytest.param(
        Case(
            station(link("fo1", "fibre", "duct-a", **UNPROBED)),
            0,
            ("path_unprobed", "paths_unknown"),
            "unknown",
        ),
        id="only-path-up-with-no-probe-is-unknown",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a", up=False, **UNPROBED),
                link("mw1", "microwave", "tower-b", up=False, **UNPROBED),
            ),
            0,
            ("path_unprobed", "path_unprobed", "paths_unknown"),
            "unknown",
        ),
        id="down-with-no-probe-is-no-transport-lost",
    ),
    pytest.param(
        Case(
            station(
                link("fo1", "fibre", "duct-a"),
                link("mw1", "microwave", "tower-b", up=False, error="timeout", probes_sent=5),
            ),
            1,
            ("path_down", "paths_one_independent"),
            "degraded",
        ),
        id="down-after-probes-control",
    ),
]


@pytest.mark.parametrize("case", CASES + LOSSY_CASES + UNPROBED_CASES)
def test_multipath(case: Case) -> None:
    e = judge(case.snapshot)
    assert e.independent_paths_up == case.independent
    assert tuple(codes(e)) == case.codes
    assert e.verdict == case.verdict
    assert e.station_state == case.state


@pytest.mark.parametrize(
    ("snapshot", "vi", "en"),
    [
        pytest.param(
            station(link("fo1", "fibre", "tower-hp12"), link("mw1", "microwave", "tower-hp12")),
            "chỉ còn 1 đường truyền độc lập (cáp quang và viba dùng chung cột), cần 2",
            "only one independent path up (fibre and microwave share the same tower), 2 required",
            id="shared-tower",
        ),
        pytest.param(
            station(link("fo1", "fibre", "duct-7"), link("fo2", "fibre", "duct-7")),
            "chỉ còn 1 đường truyền độc lập (fo1 và fo2 dùng chung cống cáp), cần 2",
            "only one independent path up (fo1 and fo2 share the same duct), 2 required",
            id="same-media-named-by-path",
        ),
        pytest.param(
            station(link("fo1", "fibre", "vnpt-hp"), link("mw1", "microwave", "vnpt-hp")),
            "chỉ còn 1 đường truyền độc lập (cáp quang và viba dùng chung nhóm rủi ro vnpt-hp), "
            "cần 2",
            "only one independent path up (fibre and microwave share shared-risk group vnpt-hp), "
            "2 required",
            id="unknown-group-named-as-is",
        ),
        pytest.param(
            station(link("fo1", "fibre")),
            "chỉ còn 1 đường truyền độc lập, cần 2",
            "only one independent path up, 2 required",
            id="single",
        ),
        pytest.param(
            station(link("fo1", up=False), link("mw1", "microwave", up=False)),
            "mất truyền dẫn: mất toàn bộ đường truyền (2/2 đường)",
            "transport lost: all paths down (2 of 2)",
            id="all-down",
        ),
    ],
)
def test_texts(snapshot: SiteSnapshot, vi: str, en: str) -> None:
    finding = judge(snapshot).findings[0]
    assert (finding.text_vi, finding.text_en) == (vi, en)


def test_an_unprobed_path_is_named() -> None:
    e = judge(
        station(link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", **UNPROBED))
    )
    finding = e.findings[0]
    assert (finding.code, finding.severity, finding.labels["path"]) == (
        "path_unprobed",
        "info",
        "mw1",
    )
    assert finding.text_en == (
        "path mw1 (microwave) is reported with no probe sent (probes_sent 0): nothing "
        "measured it, so it is counted as unknown, neither up nor down"
    )
    assert finding.text_vi.startswith("đường truyền mw1 (viba) được báo mà không gửi gói thăm dò")


def test_all_paths_down_at_a_meeting_point_is_one_transport_finding() -> None:
    """No cascade: no link-quality, no multipath detail, no codec-registration finding."""
    s = snap(
        "meeting_point",
        power=[ups(), genset(fuel_burn_l_per_h=5)],
        links=[
            link("fo1", "fibre", "duct-a", up=False, rtt_ms=None, loss_pct=100),
            link("mw1", "microwave", "tower-b", up=False, rtt_ms=None, loss_pct=100),
        ],
        room_reading=room(codec_registered=False),
    )
    e = judge(s)
    assert codes(e) == ["path_all_down"]
    assert (e.verdict, e.station_state) == ("not_ready", "down_transport")


def test_required_paths_raised_by_risk_step() -> None:
    step = POLICY.risk[0].model_copy(
        update={"min_level": 5, "kinds": ("station",), "required_paths": 3}
    )
    policy = POLICY.model_copy(update={"risk": (*POLICY.risk, step)})
    assert effective(policy, "station", "ordinary", 5).required_paths == 3
    s = station(link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b"))
    e = evaluate(s, policy, NOW, risk_level=5)
    found = [f for f in e.findings if f.rule == "multipath"]
    assert [f.code for f in found] == ["paths_too_few"]
    # the risk level raised the requirement: the reason says so
    assert found[0].text_en == "only 2 independent paths up, 3 required at risk level 5"
    assert found[0].text_vi == (
        "chỉ có 2 đường truyền độc lập, cần 3 khi rủi ro thiên tai ở cấp độ 5"
    )
    assert found[0].effect == "spof"


def _p(name: str, *srlg: str) -> PathInfo:
    return PathInfo(path=name, media="fibre", srlg=frozenset(srlg), up=True)


@pytest.mark.parametrize(
    ("paths", "size"),
    [
        pytest.param([], 0, id="none"),
        pytest.param([_p("a", "x"), _p("b", "x"), _p("c", "x")], 1, id="all-share-one"),
        pytest.param([_p("a", "x"), _p("b", "x", "y"), _p("c", "y")], 2, id="chain"),
        pytest.param(
            [_p("hub", "1", "2", "3"), _p("a", "1"), _p("b", "2"), _p("c", "3")],
            3,
            id="greedy-by-order-would-pick-hub",
        ),
        pytest.param([_p(f"p{i}", f"g{i // 2}") for i in range(20)], 10, id="20-paths-greedy"),
    ],
)
def test_max_independent(paths: list[PathInfo], size: int) -> None:
    chosen = max_independent(paths)
    assert len(chosen) == size
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            assert not a.srlg & b.srlg


def test_a_lossy_path_says_how_lossy_and_the_limit_and_the_limit_is_the_policy_s() -> None:
    site = station(link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", loss_pct=90))
    e = judge(site)
    (lossy,) = [f for f in e.findings if f.code == "path_lossy"]
    assert lossy.severity == "info" and lossy.labels["path"] == "mw1"
    status = to_status(e, site)
    (reason,) = [r for r in status.reasons if r.code == "path_lossy"]
    assert reason.text_en == (
        "path mw1 (microwave) is up but loses 90 % of its probes (over 50 %): not counted as a path"
    )
    assert "mất 90 % gói thăm dò (quá 50 %)" in reason.text_vi
    lenient = POLICY.model_copy(
        update={"multipath": POLICY.multipath.model_copy(update={"usable_loss_pct": 95})}
    )
    assert evaluate(site, lenient, NOW).independent_paths_up == 2
