"""Freshness: stale, offline (Will), never seen, clock skew, replays, long intervals."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from contract.wire import HostReading, SiteKind
from rules import SiteSnapshot, freshness, to_status
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


def _arriving(
    lags: list[float],
    gaps_s: float,
    interval_s: float = 60.0,
    *,
    vouched: tuple[bool, ...] = (),
    last_s: float = 0.0,
    host: HostReading | None = None,
) -> SiteSnapshot:
    """Reports received ``gaps_s`` apart, the last ``last_s`` before NOW, each ``lags[i]``
    s after it was taken (by the agent's clock); ``vouched[i]``: no queue held it."""
    s = snap(links=two_paths(), at=ago(86_400))
    for n, lag in enumerate(lags):
        received = ago(last_s + gaps_s * (len(lags) - 1 - n))
        at = received - timedelta(seconds=lag)
        sent = report(at=at, links=two_paths(), seq=n + 2, interval_s=interval_s, host=host)
        s = s.with_report(sent, received_at=received, vouched=n < len(vouched) and vouched[n])
    return s


_ALL = (True, True, True, True)
_SYNCED = HostReading(clock_synced=True)
_UNSYNCED = HostReading(clock_synced=False)


def _refused(
    *, at: datetime | None, refused_s: float, online: bool = True, ahead_s: float = 25_200
) -> SiteSnapshot:
    """A site (its newest accepted report taken ``at``, or none) one of whose reports was
    refused ``refused_s`` before NOW, stamped ``ahead_s`` ahead (collector/decode.py)."""
    if at is None:
        s = SiteSnapshot(site=SITE, province=PROVINCE, online=online, interval_s=60.0)
    else:
        s = replace(snap(links=two_paths(), at=at), online=online)
    return s.with_refused_ahead(ago(refused_s), ahead_s, 300.0)


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
        Case(_arriving([-240] * 4, 60, last_s=10), "fresh", ("clock_ahead",), "info"),
        id="clock-4-min-ahead-heard-10s-ago-fresh-but-said",
    ),
    pytest.param(
        Case(_arriving([-240] * 4, 60, last_s=200), "stale", ("no_recent_report",), "warning"),
        id="clock-4-min-ahead-silent-from-its-arrival-not-its-stamp",
    ),
    pytest.param(
        Case(_arriving([-240] * 4, 60, last_s=400), "offline", ("no_recent_report",), "critical"),
        id="clock-4-min-ahead-offline-from-its-arrival",
    ),
    pytest.param(
        Case(_arriving([-20] * 4, 60, last_s=170), "fresh"),
        id="clock-20s-ahead-within-its-window-fresh",
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
        Case(
            _arriving([600, 601, 599.5, 600], 60, vouched=_ALL, host=_UNSYNCED),
            "fresh",
            ("clock_corrected",),
        ),
        id="clock-10-min-behind-no-queue-judged-in-its-own-clock",
    ),
    pytest.param(
        Case(
            _arriving([7200] * 4, 60, vouched=_ALL, host=_UNSYNCED), "fresh", ("clock_corrected",)
        ),
        id="clock-2-hours-behind-no-queue-judged-in-its-own-clock",
    ),
    pytest.param(
        Case(
            _arriving([600] * 4, 60, vouched=(False, True, True, True)),
            "offline",
            ("clock_behind",),
            "critical",
        ),
        id="one-arrival-a-queue-may-have-held-only-said",
    ),
    pytest.param(
        Case(_arriving([600] * 4, 60, vouched=_ALL), "offline", ("clock_behind",), "critical"),
        id="no-queue-but-the-agent-does-not-say-its-clock-only-said",
    ),
    pytest.param(
        Case(
            _arriving([600] * 4, 60, vouched=_ALL, host=_SYNCED),
            "offline",
            ("report_backlog",),
            "critical",
        ),
        id="kernel-says-clock-synchronised-a-queue-not-the-clock",
    ),
    pytest.param(
        Case(
            _arriving([600] * 4, 60, vouched=_ALL, host=_UNSYNCED, last_s=150),
            "fresh",
            ("clock_corrected",),
        ),
        id="clock-corrected-quiet-150s-still-fresh",
    ),
    pytest.param(
        Case(
            _arriving([600] * 4, 60, vouched=_ALL, host=_UNSYNCED, last_s=240),
            "stale",
            ("no_recent_report",),
            "warning",
        ),
        id="clock-corrected-silent-4-min-stale-by-its-own-clock",
    ),
    pytest.param(
        Case(
            _arriving([600] * 4, 60, vouched=_ALL, host=_UNSYNCED, last_s=420),
            "offline",
            ("no_recent_report",),
            "critical",
        ),
        id="clock-corrected-silent-7-min-offline-by-its-own-clock",
    ),
    pytest.param(
        Case(snap(links=two_paths(), at=ago(480), interval_s=300), "fresh"),
        id="long-interval-not-offline-before-stale",
    ),
    # A box whose clock is 7 h ahead (Vietnam's time set as UTC): its reports are refused
    pytest.param(
        Case(_refused(at=None, refused_s=20), "never", ("clock_ahead_refused",), "warning"),
        id="refused-ahead-never-reported",
    ),
    pytest.param(
        Case(_refused(at=ago(600), refused_s=20), "offline", ("clock_ahead_refused",), "critical"),
        id="refused-ahead-after-reporting-on-time",
    ),
    pytest.param(
        Case(_refused(at=ago(200), refused_s=175), "stale", ("clock_ahead_refused",), "warning"),
        id="refused-ahead-within-the-stale-window",
    ),
    pytest.param(
        Case(_refused(at=ago(600), refused_s=200), "offline", ("no_recent_report",), "critical"),
        id="refused-ahead-long-ago-then-silent",
    ),
    pytest.param(
        Case(_refused(at=None, refused_s=200), "never", ("no_report_yet",), "warning"),
        id="refused-ahead-long-ago-never-reported",
    ),
    pytest.param(
        Case(_refused(at=ago(30), refused_s=5), "fresh"),
        id="refused-ahead-but-reports-accepted-fresh",
    ),
    pytest.param(
        Case(_refused(at=ago(600), refused_s=5, online=False), "offline", ("agent_offline",)),
        id="refused-ahead-then-its-will-fired",
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


def test_a_clock_ahead_whose_reports_are_refused_says_how_far_and_the_fix() -> None:
    site = _refused(at=None, refused_s=20).with_refused_ahead(ago(10), 25_201.4, 300.0)
    assert site.with_refused_ahead(ago(15), 1.0, 300.0) is site  # an older one changes nothing
    status = to_status(judge(site), site)
    assert status.verdict == "unknown"
    (reason,) = status.reasons
    assert reason.code == "clock_ahead_refused"
    assert reason.numbers["ahead_s"] == 25_201.4
    assert reason.text_en.startswith(
        "the agent keeps reporting, but its clock is 7 h ahead of the collector's (5 min "
        "tolerated): its reports are refused"
    )
    assert "UTC is 7 h ahead" in reason.text_en
    assert "chạy nhanh 7 giờ" in reason.text_vi and "NTP" in reason.text_vi


def test_a_clock_ahead_heard_live_says_its_offset_not_what_is_left_of_it() -> None:
    """Stamped 240 s ahead of their arrival: 240 s ahead, however long ago the newest came
    (from ``now`` it would shrink as the site falls silent)."""
    for last_s in (0.0, 10.0, 50.0):
        result = freshness.check(_arriving([-240] * 4, 60, last_s=last_s), POLICY.freshness, NOW)
        assert [(f.code, f.numbers["ahead_s"]) for f in result.findings] == [("clock_ahead", 240)]
        assert result.age_s == last_s


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


def _on_battery_behind(
    lag_s: float,
    *,
    vouched: bool = True,
    kind: SiteKind = "station",
    runtime_s: float = 5400,
    drop: float = 3,
) -> SiteSnapshot:
    """A site on battery, its charge falling, reporting every minute, its clock ``lag_s``
    behind (0: right); the last report received at NOW."""
    s = snap(kind, links=two_paths(), at=ago(86_400))
    for n in range(6):
        received = ago(60 * (5 - n))
        power = [on_battery(runtime_s=runtime_s - 60 * n, battery_charge_pct=90 - drop * n)]
        sent = report(
            at=received - timedelta(seconds=lag_s),
            power=power,
            links=two_paths(),
            seq=n,
            host=_UNSYNCED,
        )
        s = s.with_report(sent, received_at=received, vouched=vouched)
    return s


def test_a_site_whose_clock_is_proven_behind_is_judged_as_if_it_were_right() -> None:
    right = judge(_on_battery_behind(0))
    behind = judge(_on_battery_behind(3 * 3600))
    assert right.verdict != "unknown" and "backup_power" in {f.rule for f in right.findings}
    assert behind.verdict == right.verdict and behind.station_state == right.station_state
    assert (behind.backup_hours, behind.dark_in_s) == (right.backup_hours, right.dark_in_s)
    assert behind.findings[1:] == right.findings  # their numbers too (times: "until 09:40")
    assert behind.findings[0].code == "clock_corrected"
    assert behind.evaluated_at == NOW  # the collector's clock, as every verdict
    # What it shows: its newest report's time set right, as its clock set right says.
    shown = to_status(behind, _on_battery_behind(3 * 3600)).last_report_at
    assert shown == to_status(right, _on_battery_behind(0)).last_report_at == NOW
    # A meeting planned by the collector's clock is judged at the same moment of the site's.
    start = NOW + timedelta(minutes=20)
    point, point_behind = (
        judge(
            _on_battery_behind(lag, kind="meeting_point", runtime_s=7 * 3600, drop=0.25),
            meeting_starts_at=start,
        )
        for lag in (0, 3 * 3600)
    )
    assert "meeting_power_runs_out" not in codes(point)  # it lasts to the meeting's end
    assert point_behind.findings[1:] == point.findings
    # Not vouched for (a queue may have held its reports): unknown, the clock only suspected.
    suspected = judge(_on_battery_behind(3 * 3600, vouched=False))
    assert (suspected.verdict, codes(suspected)) == ("unknown", ["clock_behind"])


def test_a_clock_that_steps_back_starts_the_site_again_then_is_judged_as_if_right() -> None:
    """A box reports on time, then reboots after a power cut with no RTC and no NTP: its
    clock 3 h behind, its sequence numbers going on. Its new reports are not taken for a
    replay (history, the site called silent while it reports): the site starts again from
    them, and is judged as if its clock were right once no queue can explain their age."""
    s = snap(links=two_paths(), at=ago(86_400))
    for n in range(3):  # on time, on mains
        received = ago(600 - 60 * n)
        sent = report(at=received, power=[ups()], links=two_paths(), seq=n + 1)
        s = s.with_report(sent, received_at=received)
    before = s.last_report_at
    assert before is not None
    behind = timedelta(hours=3)
    for n in range(4):  # rebooted: on battery, its clock 3 h behind, numbering on
        received = ago(180 - 60 * n)
        power = [on_battery(runtime_s=5400 - 60 * n, battery_charge_pct=80 - n)]
        sent = report(
            at=received - behind, power=power, links=two_paths(), seq=10 + n, host=_UNSYNCED
        )
        s = s.with_report(sent, received_at=received, vouched=True)
        if n == 0:  # the first report after the step: the site starts again from it
            assert s.last_report_at == received - behind < before
            assert s.power["ups1"][0].on_battery and len(s.power_history["ups1"]) == 1
    judged = judge(s)
    assert codes(judged)[0] == "clock_corrected" and judged.verdict != "unknown"
    assert any(f.rule == "backup_power" for f in judged.findings)  # on battery, as it is
    # Reports from before the step replayed from its outbox (numbered before) are newer
    # by its old clock: they are the newest for a moment, judged old (stale); its next
    # live report, numbered after them, starts the site again.
    replayed = report(at=before - timedelta(minutes=5), power=[ups()], links=two_paths(), seq=2)
    again = s.with_report(replayed, received_at=NOW)
    assert judge(again).verdict == "unknown"
    live = report(at=NOW - behind, power=[on_battery()], links=two_paths(), seq=14, host=_UNSYNCED)
    healed = again.with_report(live, received_at=NOW, vouched=True)
    assert healed.last_report_at == NOW - behind and healed.power["ups1"][0].on_battery
    assert s.last_report_at is not None
    # A step back within the network's share (NTP slewing): not a step, history as ever.
    small = report(at=s.last_report_at - timedelta(seconds=20), power=[ups()], seq=99)
    assert s.with_report(small, received_at=NOW).last_report_at == s.last_report_at


def test_a_corrected_clock_says_how_far_and_the_fix_in_both_languages() -> None:
    (finding,) = freshness.check(
        _arriving([600] * 4, 60, vouched=_ALL, host=_UNSYNCED), POLICY.freshness, NOW
    ).findings
    assert (finding.severity, finding.effect) == ("info", "none")  # changes no verdict
    assert finding.text_en.startswith("the agent's clock is 10 min behind")
    assert "set its time (NTP)" in finding.text_en and "chỉnh giờ (NTP)" in finding.text_vi
    assert finding.numbers["behind_s"] == 600


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
