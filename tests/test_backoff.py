"""One backoff: the agent's reconnects (full jitter) and the writer's retries (half)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from plumbing.backoff import Backoff


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        # the agent: anywhere from the minimum up to a ceiling doubling to the cap
        (1.0, highest, [1, 2, 4, 8, 10, 10]),
        (1.0, lowest, [1, 1, 1, 1, 1, 1]),
        # the writer: at least half the ceiling, and never under the minimum
        (0.5, highest, [1, 2, 4, 8, 10, 10]),
        (0.5, lowest, [1, 1, 2, 4, 5, 5]),
    ],
)
def test_delays_double_to_the_cap_within_the_jitter(
    jitter: float, draw: Callable[[float, float], float], expected: list[float]
) -> None:
    backoff = Backoff(1.0, 10.0, jitter=jitter, rand=draw)
    assert [backoff.next() for _ in expected] == expected
    assert [backoff.delay(n) for n in range(len(expected))] == expected


def test_reset_starts_again_from_the_minimum() -> None:
    backoff = Backoff(0.5, 30.0, rand=highest)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_a_long_run_of_failures_stays_at_the_cap() -> None:
    backoff = Backoff(0.5, 30.0, rand=random.Random(1).uniform)
    delays = [backoff.next() for _ in range(200)]
    assert all(0.5 <= d <= 30.0 for d in delays) and max(delays[-50:]) > 15


def test_jitter_is_a_share() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(1.0, 2.0, jitter=1.5)
