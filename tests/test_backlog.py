"""How late a province's reports are read (collector/backlog.py): the freshest report of
it read in the last minute, against ``late_after_s``. A table of what a shard reads."""

from __future__ import annotations

import pytest

from collector.backlog import BUCKET_S, LIVE_S, WINDOW_S, Backlog

LATE_AFTER_S = 120.0


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def backlog() -> tuple[Backlog, Clock, Clock]:
    mono, wall = Clock(), Clock()
    wall.now = 1_800_000_000.0
    return Backlog(LATE_AFTER_S, clock=mono, wall=wall), mono, wall


def having_read(read: list[tuple[float, str, float]]) -> Backlog:
    """A backlog that read (seconds from the start, province, lag in s), asked 1 s after
    the last."""
    lateness, mono, _ = backlog()
    start = mono.now
    for at, province, lag_s in read:
        mono.now = start + at
        lateness.observe(province, lag_s)
    mono.now += 1
    return lateness


# (what is read: (seconds from the start, province, lag in s)), then the late provinces
# and how far behind, read at the end (the last second read, + 1 s).
CASES: list[tuple[str, list[tuple[float, str, float]], dict[str, float]]] = [
    ("live: reports a second old", [(0, "hp", 1.0), (5, "hp", 0.8)], {}),
    ("nothing read: silent, not late", [], {}),
    ("a backlog an hour old", [(0, "hp", 3600.0), (1, "hp", 3599.0)], {"hp": 3599.0}),
    (
        "one agent draining its outbox beside a live site: not late",
        [(0, "hp", 7200.0), (1, "hp", 2.0), (2, "hp", 7100.0)],
        {},
    ),
    ("a skewed clock ahead (negative lag) is fresh", [(0, "hp", -30.0), (1, "hp", 900.0)], {}),
    ("just at the limit: not late", [(0, "hp", LATE_AFTER_S)], {}),
    ("just past it: late", [(0, "hp", LATE_AFTER_S + 0.1)], {"hp": LATE_AFTER_S + 0.1}),
    (
        "each province on its own",
        [(0, "hp", 600.0), (0, "qn", 1.0), (1, "hn", 300.0)],
        {"hp": 600.0, "hn": 300.0},
    ),
    (
        "caught up: the freshest read lately is live",
        [(0, "hp", 3600.0), (20, "hp", 1800.0), (40, "hp", 1.5)],
        {},
    ),
    (
        "a backlog read a minute ago and nothing since: silent, not late",
        [(0, "hp", 3600.0), (WINDOW_S + BUCKET_S, "qn", 1.0)],
        {},
    ),
    (
        "live a minute ago, the backlog now: late",
        [(0, "hp", 1.0), (WINDOW_S + BUCKET_S, "hp", 500.0)],
        {"hp": 500.0},
    ),
]


@pytest.mark.parametrize(("read", "late"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_how_late_each_province_is_read(
    read: list[tuple[float, str, float]], late: dict[str, float]
) -> None:
    lateness = having_read(read)
    assert {p: entry.behind_s for p, entry in lateness.late().items()} == late


def test_late_since_it_was_first_found_and_again_after_it_caught_up() -> None:
    lateness, mono, wall = backlog()
    lateness.observe("hp", 900.0)
    first = wall.now
    assert lateness.late()["hp"].since == first
    mono.now += 5
    wall.now += 5
    lateness.observe("hp", 880.0)
    assert lateness.late()["hp"].since == first, "the same run of lateness"
    mono.now += WINDOW_S + BUCKET_S  # caught up and quiet: the window has emptied
    wall.now += WINDOW_S + BUCKET_S
    assert dict(lateness.late()) == {}
    lateness.observe("hp", 700.0)
    assert lateness.late()["hp"].since == wall.now, "a new run"


def test_the_provinces_are_sorted_and_the_answer_cannot_be_changed() -> None:
    lateness, _, _ = backlog()
    for province in ("qn", "hp", "hn"):
        lateness.observe(province, 600.0)
    late = lateness.late()
    assert list(late) == ["hn", "hp", "qn"]
    with pytest.raises(TypeError):
        late["hp"] = late["hn"]  # type: ignore[index]


# A report of "hp" read at the end (the last second read, + 1 s) with this lag, after
# what was read before it: vouched (no queue can have held it) or not. The decoder's
# future tolerance is 300 s: vouched from 60 + 10 + 30 + 300 = 400 s.
VOUCH_CASES: list[tuple[str, list[tuple[float, str, float]], float, bool]] = [
    ("behind 10 min, another site of hp live just before", [(0, "hp", 1.0)], 600.0, True),
    ("behind 2 h, beside a clock 5 min ahead read live", [(0, "hp", -299.0)], 7200.0, True),
    ("behind 6 min: a queue could hold it that long", [(0, "hp", 1.0)], 360.0, False),
    ("exactly the bound: vouched", [(0, "hp", 1.0)], 400.0, True),
    ("nothing else of hp read: its only site", [(0, "qn", 1.0)], 600.0, False),
    (
        "hp read only late: a bridge queue draining",
        [(0, "hp", 590.0), (5, "hp", 595.0)],
        600.0,
        False,
    ),
    ("hp read just under live", [(0, "hp", 29.9)], 600.0, True),
    ("hp read just not live", [(0, "hp", 30.0)], 600.0, False),
    (
        "hp live, then a minute and more of backlog",
        [(0, "hp", 1.0), (WINDOW_S + BUCKET_S, "hp", 600.0)],
        600.0,
        False,
    ),
    ("hp live 65 s before: still in the window", [(0, "hp", 1.0), (64, "qn", 1.0)], 600.0, True),
]


@pytest.mark.parametrize(
    ("read", "lag_s", "vouched"), [c[1:] for c in VOUCH_CASES], ids=[c[0] for c in VOUCH_CASES]
)
def test_a_report_is_vouched_for_when_no_queue_can_have_held_it(
    read: list[tuple[float, str, float]], lag_s: float, vouched: bool
) -> None:
    b = having_read(read)
    assert b.vouch_min_s == WINDOW_S + BUCKET_S + LIVE_S + 300.0
    assert b.vouches("hp", lag_s) is vouched
