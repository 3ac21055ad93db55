"""Meeting readiness: ready / degraded (one single point of failure) / not_ready / unknown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest
from pydantic import ValidationError

from agent.config import SiteConfig
from agent.meta import meta_message
from collector.decode import Decoded, decode
from contract.wire import LinkReading, Meta, PathDecl, PowerReading, RoomReading
from rules import SiteSnapshot
from tests.test_rules_support import (
    NOW,
    ago,
    codes,
    genset,
    judge,
    link,
    on_battery,
    room,
    snap,
    two_paths,
    ups,
)

H = 3600.0
GOOD_POWER = (ups(battery_runtime_s=H), genset(fuel_l=100, fuel_burn_l_per_h=5))  # 1 h + 20 h


def point(
    power: Sequence[PowerReading] = GOOD_POWER,
    links: Sequence[LinkReading] = two_paths(),
    room_reading: RoomReading | None = None,
    *,
    no_room: bool = False,
    **kwargs: object,
) -> SiteSnapshot:
    reading = None if no_room else (room_reading or room())
    return snap(
        "meeting_point",
        power=power,
        links=links,
        room_reading=reading,
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Case:
    snapshot: SiteSnapshot
    verdict: str
    codes: tuple[str, ...] = ()
    meeting_duration_s: float | None = None
    meeting_in_s: float | None = None  # the meeting starts this long from NOW (< 0: begun)
    named: str | None = None  # the path the last finding names, if it names one


SHARED_TOWER = (link("fo1", "fibre", "tower-hp12"), link("mw1", "microwave", "tower-hp12"))
# fibre with a routing loop or a congested uplink: up, 300 ms; the 4G backup good
SLOW_FIBRE = (link("fo1", "fibre", "duct-a", rtt_ms=300), link("4g", "cellular", "tower-b"))


def ranked(**priorities: int | None) -> list[PathDecl]:
    """The order the router uses fo1 and 4g in (``priority`` in meta; None: not said)."""
    media = {"fo1": "fibre", "4g": "cellular", "mw1": "microwave"}
    return [
        PathDecl(path=name, media=media[name], priority=rank)  # type: ignore[arg-type]
        for name, rank in priorities.items()
    ]


ONE_PATH = (link("fo1", "fibre", "duct-a"),)

CASES = [
    pytest.param(Case(point(), "ready"), id="ready"),
    # --- one single point of failure: degraded
    pytest.param(
        Case(point(links=ONE_PATH), "degraded", ("paths_one_independent",)),
        id="one-independent-path",
    ),
    pytest.param(
        Case(point(links=SHARED_TOWER), "degraded", ("paths_one_independent_shared",)),
        id="two-paths-one-tower",
    ),
    pytest.param(
        Case(point(power=[ups(battery_runtime_s=6 * H)]), "degraded", ("meeting_power_ups_only",)),
        id="ups-only-enough-hours",
    ),
    pytest.param(
        Case(
            point(power=[ups(battery_runtime_s=300), genset(fuel_l=100, fuel_burn_l_per_h=5)]),
            "degraded",
            ("meeting_ups_bridge_short",),
        ),
        id="ups-bridges-5-min-of-15",
    ),
    pytest.param(
        Case(
            point(links=[link("fo1", rtt_ms=150), link("mw1", "microwave", rtt_ms=180)]),
            "degraded",
            ("link_rtt_high",),
        ),
        id="best-path-rtt-150ms",
    ),
    pytest.param(
        Case(
            point(
                links=[link("fo1", "fibre", "d", jitter_ms=45, loss_pct=3), link("mw1", up=False)]
            ),
            "not_ready",  # two weaknesses: a single path left, and its quality
            ("path_down", "paths_one_independent", "link_jitter_high", "link_loss_high"),
        ),
        id="jitter-and-loss-on-the-last-path",
    ),
    pytest.param(
        Case(
            point(links=[link("vsat1", "vsat", "sat-a", rtt_ms=600), link("fo1", "fibre", "d")]),
            "ready",
        ),
        id="one-good-path-is-enough-for-quality",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", bandwidth_up_mbps=1.5, bandwidth_down_mbps=8),
                    link("mw1", "microwave"),
                ]
            ),
            "ready",
        ),
        id="unmeasured-bandwidth-elsewhere-passes",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d", bandwidth_up_mbps=1.5, bandwidth_down_mbps=8),
                    link("mw1", "microwave", "t", bandwidth_up_mbps=2, bandwidth_down_mbps=2),
                ]
            ),
            "degraded",
            ("link_bandwidth_low",),
        ),
        id="bandwidth-low-on-every-path",
    ),
    # --- the path that carries the call: with an order declared, the router keeps the
    # call on its primary while it is up, however slow; a good backup does not carry it
    pytest.param(
        Case(
            point(links=SLOW_FIBRE, meta_paths=ranked(fo1=1, **{"4g": 2})),
            "degraded",
            ("link_rtt_high", "link_call_on_primary"),
            named="fo1",
        ),
        id="slow-primary-carries-the-call-the-good-backup-does-not",
    ),
    pytest.param(
        Case(point(links=SLOW_FIBRE), "ready"),
        id="no-order-declared-the-router-picks-the-good-path",
    ),
    pytest.param(
        Case(point(links=SLOW_FIBRE, meta_paths=ranked(fo1=2, **{"4g": 1})), "ready"),
        id="the-good-path-is-the-primary",
    ),
    pytest.param(
        Case(point(links=SLOW_FIBRE, meta_paths=ranked(fo1=1, **{"4g": 1})), "ready"),
        id="two-paths-of-one-rank-share-the-calls",
    ),
    pytest.param(
        Case(point(links=SLOW_FIBRE, meta_paths=ranked(fo1=None, **{"4g": 1})), "ready"),
        id="a-ranked-path-before-an-unranked-one",
    ),
    pytest.param(
        Case(
            point(links=SLOW_FIBRE, meta_paths=ranked(fo1=1, **{"4g": None})),
            "degraded",
            ("link_rtt_high", "link_call_on_primary"),
        ),
        id="an-unranked-path-after-the-ranked-ones",
    ),
    pytest.param(
        Case(
            point(
                links=(link("fo1", "fibre", "duct-a", up=False), link("4g", "cellular", "t")),
                meta_paths=ranked(fo1=1, **{"4g": 2}),
            ),
            "degraded",
            ("path_down", "paths_one_independent"),
        ),
        id="primary-down-the-backup-carries-the-call",
    ),
    pytest.param(
        Case(
            point(
                links=(
                    link("fo1", "fibre", "duct-a", rtt_ms=None, loss_pct=None),
                    link("4g", "cellular", "t"),
                ),
                meta_paths=ranked(fo1=1, **{"4g": 2}),
            ),
            "unknown",
            ("link_quality_unknown",),
        ),
        id="primary-unmeasured-is-unknown-whatever-the-backup",
    ),
    # --- a bandwidth test that failed: the agent kept the last figures for up to two
    # hours as if measured (a low one, or a good one, while the test now fails); now it
    # sends them null with what failed, and the rules say the bandwidth is not known
    # where a minimum is required: never ready on it, nor a low finding silently cleared
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d", bandwidth_error="download: no answer within 5 s"),
                    link("mw1", "microwave", "t", bandwidth_up_mbps=2, bandwidth_down_mbps=2),
                ]
            ),
            "unknown",
            ("link_bandwidth_unknown",),
        ),
        id="bandwidth-test-failed-on-the-best-path-the-other-low",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d", bandwidth_error="download: no answer within 5 s"),
                    link("mw1", "microwave", "t", bandwidth_error="upload: HTTP 503"),
                ]
            ),
            "unknown",
            ("link_bandwidth_unknown",),
        ),
        id="bandwidth-test-failed-on-every-path",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link(
                        "fo1",
                        "fibre",
                        "d",
                        bandwidth_up_mbps=8,
                        bandwidth_error="download: no answer within 5 s",
                    ),
                    link("mw1", "microwave", "t", up=False),
                ]
            ),
            "unknown",  # one path left (spof) and its bandwidth down unknown
            ("path_down", "paths_one_independent", "link_bandwidth_unknown"),
        ),
        id="one-direction-measured-the-other-failed",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d", bandwidth_error="download: no answer within 5 s"),
                    link("mw1", "microwave", "t", bandwidth_up_mbps=6, bandwidth_down_mbps=9),
                ]
            ),
            "ready",
        ),
        id="bandwidth-test-failed-another-path-measured-good",
    ),
    # --- the failover must carry the meeting: a backup losing > 5 % is none (one spof)
    pytest.param(
        Case(
            point(links=[link("fo1", "fibre", "d"), link("4g", "cellular", "t", loss_pct=30)]),
            "degraded",
            ("link_backup_unfit",),
        ),
        id="backup-losing-30-pct-is-no-failover",
    ),
    pytest.param(
        Case(
            point(links=[link("fo1", "fibre", "d"), link("4g", "cellular", "t", loss_pct=5)]),
            "ready",
        ),
        id="backup-losing-5-pct-at-the-limit-is-a-failover",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d"),
                    link("4g", "cellular", "t", loss_pct=30),
                    link("vsat1", "vsat", "sat-a", rtt_ms=600, loss_pct=0.5),
                ]
            ),
            "ready",
        ),
        id="another-backup-carries-it",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d"),
                    link("4g", "cellular", "t", loss_pct=None, rtt_ms=None),
                ]
            ),
            "ready",
        ),
        id="backup-loss-not-measured-is-no-evidence",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "tower-hp12"),
                    link("mw1", "microwave", "tower-hp12"),
                    link("4g", "cellular", "t", loss_pct=12),
                ]
            ),
            "degraded",
            ("link_backup_unfit",),
        ),
        id="the-only-disjoint-backup-is-lossy",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "duct-a"),
                    link("mw1", "microwave", "duct-a", loss_pct=10),
                    link("4g", "cellular", "t", loss_pct=30),
                ]
            ),
            "degraded",
            ("link_backup_unfit",),
            named="4g",
        ),
        id="names-the-failover-not-a-path-sharing-the-primarys-duct",
    ),
    pytest.param(
        Case(
            point(links=[link("fo1", "fibre", "d"), link("4g", "cellular", "t", loss_pct=60)]),
            "degraded",
            ("path_lossy", "paths_one_independent"),
        ),
        id="a-path-past-usable-is-not-counted-said-once",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "d", loss_pct=3),
                    link("4g", "cellular", "t", loss_pct=30),
                ]
            ),
            "degraded",
            ("link_loss_high",),
        ),
        id="no-path-good-for-the-meeting-says-the-best-only",
    ),
    pytest.param(
        Case(
            point(
                power=[ups(battery_runtime_s=6 * H)],
                links=[link("fo1", "fibre", "d"), link("4g", "cellular", "t", loss_pct=30)],
            ),
            "not_ready",
            ("link_backup_unfit", "meeting_power_ups_only"),
        ),
        id="no-failover-and-ups-only-two-spofs",
    ),
    # --- two single points of failure, or a blocking reason: not ready
    pytest.param(
        Case(
            point(power=[ups(battery_runtime_s=6 * H)], links=ONE_PATH),
            "not_ready",
            ("paths_one_independent", "meeting_power_ups_only"),
        ),
        id="two-spofs-one-path-and-ups-only",
    ),
    pytest.param(
        Case(point(power=[ups(battery_runtime_s=2 * H)]), "not_ready", ("meeting_power_short",)),
        id="ups-only-2h-for-4h48",
    ),
    pytest.param(
        Case(
            point(room_reading=room(camera_ok=False, display_ok=False)),
            "not_ready",
            ("camera_fault", "display_fault"),
        ),
        id="camera-and-display-down-both-said",
    ),
    pytest.param(
        Case(
            point(room_reading=room(codec_reachable=False, codec_registered=False)),
            "not_ready",
            ("codec_unreachable",),
        ),
        id="codec-unreachable-no-registration-cascade",
    ),
    pytest.param(
        Case(
            point(room_reading=room(codec_registered=False)), "not_ready", ("codec_not_registered",)
        ),
        id="codec-not-signed-in",
    ),
    pytest.param(
        Case(
            point(
                power=[ups(battery_runtime_s=6 * H)],
                links=[
                    link("fo1", "fibre", "tower-hp12", rtt_ms=140),
                    link("mw1", "microwave", "tower-hp12", rtt_ms=160),
                ],
                room_reading=room(microphone_ok=False),
            ),
            "not_ready",
            (
                "paths_one_independent_shared",
                "link_rtt_high",
                "meeting_power_ups_only",
                "microphone_fault",
            ),
        ),
        id="every-reason-is-returned",
    ),
    pytest.param(
        Case(
            point(links=[link("fo1", up=False), link("mw1", "microwave", up=False, rtt_ms=None)]),
            "not_ready",
            ("path_all_down",),
        ),
        id="all-paths-down-one-finding",
    ),
    # --- cannot tell: unknown
    pytest.param(
        Case(point(no_room=True), "unknown", ("room_unknown",)),
        id="no-room-reading",
    ),
    pytest.param(
        Case(point(room_reading=RoomReading(error="codec api: 401")), "unknown", ("room_error",)),
        id="room-probe-error",
    ),
    pytest.param(
        Case(point(room_reading=room(speaker_ok=None)), "unknown", ("room_devices_unknown",)),
        id="speaker-state-unknown",
    ),
    pytest.param(
        Case(
            point(
                links=[
                    link("fo1", "fibre", "a", rtt_ms=None),
                    link("mw1", "microwave", "b", rtt_ms=None),
                ]
            ),
            "unknown",
            ("link_quality_unknown",),
        ),
        id="quality-not-measured",
    ),
    pytest.param(
        Case(
            point(power=[ups(battery_runtime_s=H), genset()]), "unknown", ("meeting_power_unknown",)
        ),
        id="generator-burn-unknown-battery-short",
    ),
    # a second UPS whose hours are not known (no runtime, no charge, no model) beside one
    # of 1 h: the site's hours are its weakest battery's, so the meeting's power is not
    # known on the strength of the first (the station rule says the same, backup_hours_partial)
    pytest.param(
        Case(
            point(power=[*GOOD_POWER, PowerReading(device="ups2", on_battery=False)]),
            "unknown",
            ("meeting_power_unknown",),
        ),
        id="a-battery-of-unknown-hours-beside-a-known-one",
    ),
    pytest.param(
        Case(
            point(
                power=[
                    ups(battery_runtime_s=300),
                    PowerReading(device="ups2", on_battery=False),
                    genset(fuel_l=100, fuel_burn_l_per_h=5),
                ]
            ),
            "degraded",
            ("meeting_ups_bridge_short",),
        ),
        id="short-by-the-known-battery-is-said-short",
    ),
    pytest.param(
        Case(point(power=[]), "unknown", ("meeting_power_unknown",)),
        id="no-power-data",
    ),
    pytest.param(
        Case(
            point(at=ago(600), no_room=True, links=[link("fo1", up=False)]),
            "unknown",
            ("no_recent_report",),
        ),
        id="stale-meeting-point-only-freshness",
    ),
    pytest.param(
        Case(point(online=False), "unknown", ("agent_offline",)),
        id="will-fired",
    ),
    # --- the meeting's own duration
    pytest.param(
        Case(
            point(power=[ups(battery_runtime_s=1200), genset(fuel_l=15, fuel_burn_l_per_h=10)]),
            "not_ready",
            ("meeting_power_short",),
        ),
        id="1h50-of-power-for-default-4h-meeting",
    ),
    pytest.param(
        Case(
            point(power=[ups(battery_runtime_s=1200), genset(fuel_l=15, fuel_burn_l_per_h=10)]),
            "ready",
            (),
            meeting_duration_s=H,
        ),
        id="1h50-of-power-for-a-1h-meeting",
    ),
    pytest.param(
        Case(
            point(
                power=[
                    on_battery(runtime_s=1800),
                    genset(generator_running=True, fuel_l=100, fuel_burn_l_per_h=5),
                ]
            ),
            "ready",
            ("on_battery",),
        ),
        id="on-battery-while-generator-takes-over",
    ),
]


# --- the meeting's start: on the grid the need is the (remaining) meeting, mains may
# fail when it starts; on generator or battery it runs from now to the meeting's end.


def on_generator(fuel_h: float, battery_s: float = 600) -> tuple[PowerReading, ...]:
    """Mains lost, the generator running with ``fuel_h`` of fuel, a small UPS behind it."""
    return (
        ups(mains_present=False, battery_runtime_s=battery_s),
        genset(
            generator_running=True,
            on_generator=True,
            mains_present=False,
            fuel_l=10 * fuel_h,
            fuel_burn_l_per_h=10,
        ),
    )


GEN = ("on_generator",)  # backup_power's note of the power state, always there


def on_mains(fuel_h: float, battery_s: float = 1200) -> tuple[PowerReading, ...]:
    return (ups(battery_runtime_s=battery_s), genset(fuel_l=10 * fuel_h, fuel_burn_l_per_h=10))


CASES += [
    pytest.param(
        Case(point(on_generator(5)), "not_ready", (*GEN, "meeting_power_runs_out"), 3 * H, 4 * H),
        id="on-generator-5h-meeting-in-4h-for-3h-needs-8h24",
    ),
    pytest.param(
        Case(point(on_generator(3)), "not_ready", (*GEN, "meeting_power_runs_out"), 3 * H, 4 * H),
        id="on-generator-3h-meeting-in-4h-for-3h-needs-8h24",
    ),
    pytest.param(
        Case(point(on_generator(8.5)), "ready", GEN, 3 * H, 4 * H),
        id="on-generator-8h30-meeting-in-4h-for-3h-holds",
    ),
    pytest.param(
        Case(point(on_mains(5)), "ready", (), 3 * H, 4 * H),
        id="on-mains-5h-meeting-in-4h-for-3h-needs-3h36-from-its-start",
    ),
    pytest.param(
        Case(point(on_mains(3)), "not_ready", ("meeting_power_short",), 3 * H, 4 * H),
        id="on-mains-3h20-meeting-for-3h-needs-3h36",
    ),
    pytest.param(
        Case(point(on_generator(2)), "not_ready", (*GEN, "meeting_power_runs_out"), 3 * H, -H),
        id="on-generator-2h10-meeting-begun-2h-left-needs-2h24",
    ),
    pytest.param(
        Case(point(on_generator(2.5)), "ready", GEN, 3 * H, -H),
        id="on-generator-2h40-meeting-begun-2h-left-holds",
    ),
    pytest.param(
        Case(point(on_mains(2.5)), "ready", (), 3 * H, -H),
        id="on-mains-2h50-meeting-begun-needs-only-what-is-left",
    ),
    pytest.param(
        Case(point(on_generator(0.1)), "ready", GEN, 3 * H, -4 * H),
        id="meeting-over-no-power-need",
    ),
    pytest.param(
        Case(
            point([on_battery(runtime_s=2 * H)]),
            "not_ready",
            ("on_battery_no_generator", "meeting_power_runs_out"),
            H,
            2 * H,
        ),
        id="on-battery-2h-meeting-in-2h-for-1h-needs-3h36",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_meeting_readiness(case: Case) -> None:
    starts = None if case.meeting_in_s is None else NOW + timedelta(seconds=case.meeting_in_s)
    e = judge(case.snapshot, meeting_duration_s=case.meeting_duration_s, meeting_starts_at=starts)
    assert tuple(codes(e)) == case.codes
    assert e.verdict == case.verdict
    if case.named is not None:
        assert e.findings[-1].labels["path"] == case.named


def test_the_need_runs_from_now_to_the_meetings_end_on_generator() -> None:
    """Issue 8: 5 h of fuel, a meeting in 4 h for 3 h: (4 + 3) h x 1.2 = 8 h 24 min."""
    e = judge(
        point(on_generator(5)),
        meeting_duration_s=3 * H,
        meeting_starts_at=NOW + timedelta(hours=4),
    )
    finding = next(f for f in e.findings if f.code == "meeting_power_runs_out")
    assert finding.numbers["needed_s"] == pytest.approx(8.4 * H)
    # NOW is 13:00 in Vietnam; power lasts 5 h 10 min less the report's 30 s age
    assert finding.text_en == (
        "mains lost: power left for 5 h 10 min (to 07/09 18:10); the meeting needs 8 h 24 min, "
        "to 07/09 21:24 (it ends at 07/09 20:00, plus 20 % margin)"
    )
    assert finding.text_vi == (
        "mất điện lưới: nguồn dự phòng còn 5 giờ 10 phút (đến 07/09 18:10); cuộc họp cần "
        "8 giờ 24 phút, đến 07/09 21:24 (họp xong lúc 07/09 20:00, cộng 20% dự phòng)"
    )


def test_on_mains_the_need_is_the_meeting_from_its_start() -> None:
    e = judge(
        point(on_mains(3)),
        meeting_duration_s=3 * H,
        meeting_starts_at=NOW + timedelta(hours=4),
    )
    finding = next(f for f in e.findings if f.code == "meeting_power_short")
    assert finding.text_en == (
        "if mains fail, backup power lasts 3 h 20 min; the meeting needs 3 h 36 min, "
        "to 07/09 20:36 (incl. 20 % margin)"
    )


@pytest.mark.parametrize(
    ("snapshot", "code", "vi", "en"),
    [
        pytest.param(
            point(power=[ups(battery_runtime_s=2 * H)]),
            "meeting_power_short",
            "nếu mất điện lưới, điện dự phòng đủ 2 giờ; cuộc họp cần 4 giờ 48 phút, "
            "đến 07/09 17:48 (gồm 20% dự phòng)",
            "if mains fail, backup power lasts 2 h; the meeting needs 4 h 48 min, "
            "to 07/09 17:48 (incl. 20 % margin)",
            id="power-short",
        ),
        pytest.param(
            point(power=[ups(battery_runtime_s=300), genset(fuel_l=100, fuel_burn_l_per_h=5)]),
            "meeting_ups_bridge_short",
            "UPS chỉ giữ được 5 phút trong lúc chờ máy phát, cần 15 phút",
            "the UPS bridges only 5 min to the generator, 15 min required",
            id="bridge",
        ),
        pytest.param(
            point(links=[link("fo1", rtt_ms=150.5), link("mw1", "microwave", rtt_ms=180)]),
            "link_rtt_high",
            "độ trễ tốt nhất 150,5 ms (đường fo1), ngưỡng 100 ms",
            "best round-trip time 150.5 ms (path fo1), limit 100 ms",
            id="rtt",
        ),
    ],
)
def test_texts(snapshot: SiteSnapshot, code: str, vi: str, en: str) -> None:
    finding = next(f for f in judge(snapshot).findings if f.code == code)
    assert (finding.text_vi, finding.text_en) == (vi, en)


def test_the_primary_kept_says_which_path_would_carry_the_call() -> None:
    e = judge(point(links=SLOW_FIBRE, meta_paths=ranked(fo1=1, **{"4g": 2})))
    finding = next(f for f in e.findings if f.code == "link_call_on_primary")
    assert finding.text_en == (
        "the router keeps calls on path fo1 (priority 1) while it is up; path 4g (priority 2) "
        "would carry them but is not used — switch over by hand, or mend fo1"
    )
    assert finding.severity == "info"
    rtt = next(f for f in e.findings if f.code == "link_rtt_high")
    assert rtt.labels["path"] == "fo1"


def test_the_bandwidth_unknown_text_says_what_failed_and_the_minimum() -> None:
    failed = link("fo1", "fibre", "d", bandwidth_error="download: no answer within 5 s")
    e = judge(point(links=[failed, link("mw1", "microwave", "t", up=False)]))
    finding = e.findings[-1]
    assert finding.text_en == (
        "bandwidth of path fo1 not known: its last test failed (download: no answer within "
        "5 s); 3/2.5 Mbps up/down required"
    )
    assert finding.text_vi == (
        "chưa biết băng thông đường fo1: lần đo gần nhất không thành (download: no answer "
        "within 5 s); cần 3/2,5 Mbps lên/xuống"
    )


def test_the_failover_text_names_the_backup_its_loss_and_the_limits() -> None:
    snapshot = point(links=[link("fo1", "fibre", "d"), link("4g", "cellular", "t", loss_pct=30)])
    finding = next(f for f in judge(snapshot).findings if f.code == "link_backup_unfit")
    assert (finding.rule, finding.severity, finding.effect) == ("link_quality", "warning", "spof")
    assert finding.text_en == (
        "if the path good for the meeting is lost, the meeting falls back on path 4g "
        "(cellular), which loses 30 % of its packets (over 5 %): only 1 independent path(s) "
        "could carry the meeting, 2 required"
    )
    assert finding.text_vi.startswith("nếu mất đường đang đạt chất lượng")
    assert "30 % gói (quá 5 %)" in finding.text_vi


def test_a_policy_without_a_backup_limit_judges_the_best_path_only() -> None:
    from rules import Policy, evaluate

    best_only = Policy.model_validate({"link_quality": {"backup_max_loss_pct": None}})
    snapshot = point(links=[link("fo1", "fibre", "d"), link("4g", "cellular", "t", loss_pct=30)])
    assert evaluate(snapshot, best_only, NOW).verdict == "ready"


def test_a_policy_that_checks_no_room_device_needs_no_room_reading() -> None:
    from rules import Policy, evaluate
    from tests.test_rules_support import NOW

    unmonitored = Policy.model_validate({"meeting": {"devices": []}})
    evaluation = evaluate(point(no_room=True), unmonitored, NOW)
    assert evaluation.verdict == "ready"
    assert "room_unknown" not in codes(evaluation)


def test_a_naive_meeting_start_is_refused() -> None:
    from datetime import datetime

    with pytest.raises(ValueError, match="meeting_starts_at"):
        judge(point(), meeting_starts_at=datetime(2024, 9, 7, 14, 0))


def test_the_site_configs_path_order_reaches_the_rules() -> None:
    """``priority`` in the site config's paths travels in meta, through the collector's
    decoding, to the rule that picks the path carrying the call."""
    config = SiteConfig.model_validate(
        {
            "site": "qn-dc-duong-huy",
            "province": "qn",
            "kind": "meeting_point",
            "name": "Điểm cầu UBND xã Dương Huy",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "paths": [
                {"path": "fo1", "media": "fibre", "srlg": ["duct-a"], "priority": 1,
                 "target": {"host": "127.0.0.1", "port": 1}},
                {"path": "4g", "media": "cellular", "srlg": ["tower-b"],
                 "target": {"host": "127.0.0.1", "port": 1}},
            ],
        }
    )  # fmt: skip
    meta = meta_message(config, interval_s=60, now=ago(600))
    decoded = decode(
        "kienco/v1/qn/qn-dc-duong-huy/meta",
        meta.model_dump_json().encode(),
        now=NOW,
        max_bytes=65_536,
        future_tolerance_s=60,
    )
    assert isinstance(decoded, Decoded) and isinstance(decoded.message, Meta)
    assert [(d.path, d.priority) for d in decoded.message.paths] == [("fo1", 1), ("4g", None)]
    e = judge(point(links=SLOW_FIBRE, meta_paths=decoded.message.paths))
    assert codes(e) == ["link_rtt_high", "link_call_on_primary"]


def test_a_path_priority_outside_1_to_99_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"paths\.0\.priority"):
        SiteConfig.model_validate(
            {
                "site": "qn-x",
                "province": "qn",
                "kind": "meeting_point",
                "name": "x",
                "broker": {"url": "mqtt://127.0.0.1:1"},
                "paths": [
                    {"path": "fo1", "media": "fibre", "priority": 0,
                     "target": {"host": "127.0.0.1", "port": 1}},
                ],
            }
        )  # fmt: skip
