"""Whose numbering a report's seq is in (``Report.outbox``): a box replaced by a spare is a
new numbering whatever its clock says; a replay of the box it replaced stays history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from rules import SiteSnapshot, freshness
from rules.snapshot import OUTBOXES_KEPT
from tests.test_rules_support import NOW, POLICY, PROVINCE, SITE, ago, report, two_paths, ups

A, B, C = 111, 222, 333  # outbox ids
HALF_YEAR = 182 * 86_400.0


def _site(*outboxes: int | None, seq: int = 1_000) -> SiteSnapshot:
    """A site whose newest report, seq ``seq`` of the last of ``outboxes``, was taken and
    heard 10 s ago (the others the outboxes it replaced)."""
    s = SiteSnapshot(site=SITE, province=PROVINCE, online=True, interval_s=60.0)
    for n, outbox in enumerate(outboxes):
        sent = report(at=ago(10), power=[ups()], seq=seq - len(outboxes) + 1 + n)
        s = s.with_report(sent.model_copy(update={"outbox": outbox}), received_at=ago(10))
    return s


@dataclass(frozen=True)
class Case:
    site: SiteSnapshot
    outbox: int | None
    seq: int
    taken_s_ago: float
    heard: bool
    newest: bool  # it is the site's newest report now
    last_seq: int
    outboxes: tuple[int, ...]
    started_again: bool = False  # the readings before it dropped (stamps not comparable)


CASES = [
    pytest.param(Case(_site(A), A, 1_001, 0, True, True, 1_001, (A,)), id="same-next"),
    pytest.param(
        Case(_site(A), A, 990, 3_600, True, False, 1_000, (A,)), id="same-earlier-a-replay"
    ),
    pytest.param(
        Case(_site(A), A, 1_001, 3_600, True, True, 1_001, (A,), started_again=True),
        id="same-next-stamped-an-hour-before-a-clock-stepped-back",
    ),
    pytest.param(
        Case(_site(A), B, 5, HALF_YEAR, True, True, 5, (A, B), started_again=True),
        id="spare-half-a-year-behind-numbered-below-a-new-numbering",
    ),
    pytest.param(
        Case(_site(A), B, 5, 0, True, True, 5, (A, B)), id="spare-clock-right-numbered-below"
    ),
    pytest.param(
        Case(_site(A), B, 5, 20, True, False, 5, (A, B)),
        id="spare-20s-behind-not-newest-yet-its-numbering",
    ),
    pytest.param(
        Case(_site(A), B, 5, HALF_YEAR, False, False, 1_000, (A,)),
        id="unknown-outbox-not-heard-live-a-dead-letter-replayed-is-history",
    ),
    pytest.param(
        Case(_site(A, B), A, 9_999, 0, True, False, 1_000, (A, B)),
        id="the-replaced-box-back-is-history-even-stamped-later",
    ),
    pytest.param(
        Case(_site(A, B), A, 9_999, HALF_YEAR, True, False, 1_000, (A, B)),
        id="the-replaced-box-back-never-starts-the-site-again",
    ),
    pytest.param(Case(_site(None), None, 1_001, 0, True, True, 1_001, ()), id="agents-before-ids"),
    pytest.param(
        Case(_site(None), A, 1_001, 0, True, True, 1_001, (A,)),
        id="an-agent-upgraded-its-first-id-goes-on-from-its-seq",
    ),
    pytest.param(
        Case(_site(None), A, 1_001, 3_600, True, True, 1_001, (A,), started_again=True),
        id="an-agent-upgraded-then-its-clock-stepped-back",
    ),
    pytest.param(
        Case(_site(A), None, 990, 3_600, True, False, 1_000, (A,)),
        id="an-agent-downgraded-by-its-seq",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_whose_numbering(case: Case) -> None:
    at = NOW if case.taken_s_ago == 0 else ago(case.taken_s_ago)
    sent = report(at=at, links=two_paths(), seq=case.seq).model_copy(update={"outbox": case.outbox})
    after = case.site.with_report(sent, received_at=NOW if case.heard else None)
    assert (after.last_report_at == at) is case.newest
    assert after.last_seq == case.last_seq
    assert after.outboxes == case.outboxes
    assert (not after.power) is case.started_again  # the UPS was read before it only


def test_outboxes_kept_are_bounded_newest_last() -> None:
    s = _site(A)
    for outbox in range(1, 10):
        sent = report(at=NOW, seq=outbox).model_copy(update={"outbox": outbox})
        s = s.with_report(sent, received_at=NOW)
    assert s.outboxes == tuple(range(10 - OUTBOXES_KEPT, 10))


def test_a_spare_half_a_year_behind_is_judged_by_its_clock_not_as_a_backlog() -> None:
    """The spare's reports arrive on their interval: the site says its clock is behind, and
    how far (the fix named), not that it replays a backlog, which would never end."""
    s = _site(A)
    for n in range(5):
        received = ago(240 - 60 * n)
        taken = datetime.fromtimestamp(received.timestamp() - HALF_YEAR, received.tzinfo)
        sent = report(at=taken, links=two_paths(), seq=5 + n).model_copy(update={"outbox": B})
        s = s.with_report(sent, received_at=received)
    result = freshness.check(s, POLICY.freshness, NOW)
    (finding,) = result.findings
    assert finding.code == "clock_behind"
    assert finding.numbers["behind_s"] == pytest.approx(HALF_YEAR, abs=3)
