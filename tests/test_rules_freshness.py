"""Freshness: stale, offline (Will), never seen, clock skew, replays, long intervals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from rules import SiteSnapshot, freshness
from rules.policy import FreshnessPolicy
from tests.test_rules_support import (
    NOW,
    POLICY,
    PROVINCE,
    SITE,
    ago,
    codes,
    judge,
    link,
    on_battery,
    report,
    snap,
    two_paths,
    ups,
)


@dataclass(frozen=True)
class Case:
    snapshot: SiteSnapshot
    state: str
    codes: tuple[str, ...] = ()
    severity: str | None = None


def _replayed(newest_age: float, replay_age: float) -> SiteSnapshot:
    s = snap(power=[ups()], links=two_paths(), at=ago(newest_age))
    return s.with_report(report(at=ago(replay_age), power=[ups()], seq=0), received_at=NOW)


def _arriving(lags: list[float], gaps_s: float, interval_s: float = 60.0) -> SiteSnapshot:
    """Reports received ``gaps_s`` apart, the last at NOW, each ``lags[i]`` s after it
    was taken (by the agent's clock)."""
    s = snap(links=two_paths(), at=ago(3600))
    for n, lag in enumerate(lags):
        received = ago(gaps_s * (len(lags) - 1 - n))
        at = received - timedelta(seconds=lag)
        s = s.with_report(
            report(at=at, links=two_paths(), seq=n + 2, interval_s=interval_s), received_at=received
        )
    return s


CASES = [
    pytest.param(Case(snap(links=two_paths(), at=ago(30)), "fresh"), id="fresh-30s"),
    pytest.param(Case(snap(links=two_paths(), at=ago(180)), "fresh"), id="fresh-at-3-intervals"),
    pytest.param(
        Case(snap(links=two_paths(), at=ago(240)), "stale", ("no_recent_report",), "warning"),
        id="stale-4-min",
    ),
    pytest.param(
        Case(snap(links=two_paths(), at=ago(420)), "offline", ("no_recent_report",), "critical"),
        id="offline-7-min",
    ),
    pytest.param(
        Case(snap(links=two_paths(), online=False), "offline", ("agent_offline",), "critical"),
        id="will-fired-offline-at-once",
    ),
    pytest.param(
        Case(SiteSnapshot(site=SITE, province=PROVINCE), "never", ("no_report_yet",), "warning"),
        id="never-reported",
    ),
    pytest.param(
        Case(snap(links=two_paths(), at=ago(-20)), "fresh"),
        id="clock-skew-20s-ahead-is-fresh",
    ),
    pytest.param(
        Case(snap(links=two_paths(), at=ago(-300)), "fresh", ("clock_ahead",), "info"),
        id="clock-5-min-ahead-fresh-but-said",
    ),
    pytest.param(
        Case(_replayed(30, 7200), "fresh"),
        id="late-replay-does-not-raise-no-data",
    ),
    pytest.param(
        Case(_replayed(900, 3600), "offline", ("report_backlog",), "critical"),
        id="late-replay-does-not-clear-real-stale",
    ),
    pytest.param(
        Case(_arriving([600, 601, 599.5, 600], 60), "offline", ("clock_behind",), "critical"),
        id="clock-10-min-behind-on-schedule-said-not-silent",
    ),
    pytest.param(
        Case(_arriving([240, 240, 240, 240], 60), "stale", ("clock_behind",), "warning"),
        id="clock-4-min-behind-stale-said",
    ),
    pytest.param(
        Case(_arriving([600, 600, 600], 60), "offline", ("report_backlog",), "critical"),
        id="three-on-schedule-not-yet-a-clock",
    ),
    pytest.param(
        Case(_arriving([640, 620, 600, 580], 60), "offline", ("report_backlog",), "critical"),
        id="growing-younger-a-queue-worked-off-not-a-clock",
    ),
    pytest.param(
        Case(_arriving([600, 600, 600, 600], 5), "offline", ("report_backlog",), "critical"),
        id="in-a-burst-a-queue-draining-not-a-clock",
    ),
    pytest.param(
        Case(_arriving([600, 600, 600, 2], 60), "fresh"),
        id="clock-set-right-fresh-at-once",
    ),
    pytest.param(
        Case(snap(links=two_paths(), at=ago(480), interval_s=300), "fresh"),
        id="long-interval-not-offline-before-stale",
    ),
    pytest.param(
        Case(
            snap(links=two_paths(), at=ago(1000), interval_s=300),
            "offline",
            ("no_recent_report",),
            "critical",
        ),
        id="long-interval-stale-and-offline-after-3",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_freshness(case: Case) -> None:
    result = freshness.check(case.snapshot, POLICY.freshness, NOW)
    assert result.state == case.state
    assert tuple(f.code for f in result.findings) == case.codes
    if case.severity is not None:
        assert result.findings[0].severity == case.severity
    assert result.age_s is None or result.age_s >= 0  # never a negative age


def test_a_clock_behind_says_how_far_and_the_fix_in_both_languages() -> None:
    s = _arriving([600, 601, 599.5, 600], 60)
    assert s.clock_behind_s == 599.5  # the least: the network's share included
    (finding,) = freshness.check(s, POLICY.freshness, NOW).findings
    reason = finding.to_reason()
    assert reason.text_en.startswith("reports keep arriving on schedule but each is 10 min old")
    assert "NTP" in reason.text_en and "NTP" in reason.text_vi
    assert "đồng hồ" in reason.text_vi
    # Only the newest reports heard live count: a replayed one changes nothing.
    replayed = s.with_report(report(at=ago(7200), links=two_paths(), seq=1), received_at=NOW)
    assert replayed.arrivals == s.arrivals and replayed.clock_behind_s == 599.5
    # Not heard live (restored, replayed from the dead letters): nothing to learn from.
    quiet = s.with_report(report(at=ago(500), links=two_paths(), seq=99))
    assert quiet.arrivals == s.arrivals


@pytest.mark.parametrize(
    ("age_s", "vi", "en"),
    [
        pytest.param(
            420,
            "không có báo cáo trong 7 phút (quá 3 phút là mất liên lạc)",
            "no report for 7 min (stale after 3 min)",
            id="7-min",
        ),
        pytest.param(
            9000,
            "không có báo cáo trong 2 giờ 30 phút (quá 3 phút là mất liên lạc)",
            "no report for 2 h 30 min (stale after 3 min)",
            id="2h30",
        ),
        pytest.param(
            3 * 86_400,
            "không có báo cáo trong 3 ngày (quá 3 phút là mất liên lạc)",
            "no report for 3 d (stale after 3 min)",
            id="3-days",
        ),
    ],
)
def test_stale_texts(age_s: float, vi: str, en: str) -> None:
    finding = freshness.check(snap(at=ago(age_s)), POLICY.freshness, NOW).findings[0]
    assert (finding.text_vi, finding.text_en) == (vi, en)
    assert finding.numbers["age_s"] == age_s


STALE_EVERYTHING_WRONG = snap(
    "meeting_point",
    power=[on_battery(runtime_s=600), ups("ups2", battery_status="depleted", on_battery=True)],
    links=[link("fo1", up=False)],
    at=ago(600),
)


@pytest.mark.parametrize(
    ("snapshot", "code"),
    [
        pytest.param(STALE_EVERYTHING_WRONG, "no_recent_report", id="stale-only-freshness"),
        pytest.param(
            snap(power=[on_battery(runtime_s=60)], links=[link("fo1", up=False)], online=False),
            "agent_offline",
            id="offline-only-freshness",
        ),
    ],
)
def test_not_fresh_site_is_unknown_with_only_the_freshness_finding(
    snapshot: SiteSnapshot, code: str
) -> None:
    e = judge(snapshot)
    assert (e.verdict, e.station_state) == ("unknown", "unknown")
    assert codes(e) == [code]
    assert e.backup_hours is None and e.dark_in_s is None and e.independent_paths_up is None


def test_stale_readings_of_a_fresh_site_count_as_unknown() -> None:
    """A power probe that stopped answering 20 min ago must not keep the site 'up'."""
    s = snap(power=[ups()], at=ago(1200)).with_report(
        report(at=ago(30), links=two_paths(), seq=2), received_at=NOW
    )
    e = judge(s)
    assert e.station_state == "unknown"
    assert "backup_hours_unknown" in codes(e)


def test_stale_intervals_tighten_with_risk() -> None:
    policy = POLICY.model_copy(
        update={
            "risk": (
                *POLICY.risk,
                POLICY.risk[0].model_copy(
                    update={"min_level": 5, "kinds": ("station",), "stale_intervals": 2}
                ),
            )
        }
    )
    from rules import effective

    assert effective(policy, "station", "ordinary", 5).freshness.stale_intervals == 2
    assert effective(policy, "station", "ordinary", 4).freshness.stale_intervals == 3


def test_default_interval_when_none_known() -> None:
    s = SiteSnapshot(site=SITE, province=PROVINCE, last_report_at=ago(200))
    assert freshness.interval_s(s, FreshnessPolicy()) == 60
    assert freshness.check(s, FreshnessPolicy(), NOW).state == "stale"
