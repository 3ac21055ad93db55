"""A point's rehearsal for a planned meeting: its age judged when the meeting starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from rules import evaluate
from rules.rehearsal import Rehearsal, for_meeting, rehearsal_finding
from tests.test_rules_meeting import point
from tests.test_rules_support import NOW, POLICY

H = 3600.0
DAY = 24 * H


@dataclass(frozen=True)
class Case:
    done_ago_h: float | None  # when the rehearsal ran, hours before NOW; None: never
    starts_in_h: float  # the meeting starts this long after NOW (< 0: begun)
    code: str | None  # the rehearsal's finding, None: it counts
    passed: bool = True


CASES = [
    pytest.param(Case(None, 2, "rehearsal_missing"), id="never-rehearsed"),
    pytest.param(Case(1, 2, None), id="an-hour-ago-meeting-in-2h"),
    pytest.param(Case(20, 3, None), id="20h-ago-23h-at-start"),
    pytest.param(Case(20, 6, "rehearsal_stale_at_start"), id="counts-now-too-old-at-start"),
    pytest.param(Case(2, 72, "rehearsal_stale_at_start"), id="meeting-in-3-days"),
    pytest.param(Case(30, 2, "rehearsal_stale"), id="too-old-already"),
    # rehearsed 23 h before a 4 h meeting began 3 h ago: it counted at the start, it
    # counts to the end (judged at now it went stale an hour into the meeting)
    pytest.param(Case(26, -3, None), id="counted-at-start-counts-through-the-meeting"),
    pytest.param(Case(28, -3, "rehearsal_stale"), id="too-old-at-start-of-a-begun-meeting"),
    pytest.param(Case(0.5, -1, None), id="rehearsed-during-the-meeting"),
    pytest.param(Case(1, 2, "rehearsal_failed", passed=False), id="failed"),
    pytest.param(Case(30, 2, "rehearsal_stale", passed=False), id="failed-and-too-old-stale"),
]


@pytest.mark.parametrize("case", CASES)
def test_the_rehearsal_is_judged_at_the_meetings_start(case: Case) -> None:
    rehearsal = (
        None
        if case.done_ago_h is None
        else Rehearsal("mp-1", NOW - timedelta(hours=case.done_ago_h), case.passed, ("jitter",))
    )
    starts_at = NOW + timedelta(hours=case.starts_in_h)
    finding = rehearsal_finding("mp-1", rehearsal, now=NOW, starts_at=starts_at, max_age_s=DAY)
    assert (finding.code if finding else None) == case.code


def test_the_text_says_both_ages_and_what_to_do() -> None:
    rehearsal = Rehearsal("mp-1", NOW - timedelta(hours=20), True)
    finding = rehearsal_finding(
        "mp-1", rehearsal, now=NOW, starts_at=NOW + timedelta(hours=6), max_age_s=DAY
    )
    assert finding is not None
    assert finding.text_en == (
        "the last rehearsal (20 h ago) will be 26 h old when the meeting starts, older than "
        "24 h: rehearse again within 24 h of its start"
    )
    assert finding.text_vi.startswith("lần diễn tập gần nhất (20 giờ trước) sẽ đã 26 giờ")


def test_a_rehearsal_too_old_at_start_degrades_a_ready_point() -> None:
    evaluation = evaluate(point(), POLICY, NOW)
    assert evaluation.verdict == "ready"
    rehearsal = Rehearsal(evaluation.site, NOW - timedelta(hours=20), True)
    judged = for_meeting(
        evaluation, rehearsal, now=NOW, starts_at=NOW + timedelta(hours=6), max_age_s=DAY
    )
    assert judged.verdict == "degraded"
    assert [f.code for f in judged.findings] == ["rehearsal_stale_at_start"]
