"""When a refused subscription is asked for again: 5 s, doubling to a minute, anew at
each grant or connection (collector/subscription_retry.py)."""

from __future__ import annotations

from collector.subscription_retry import FIRST_S, MAX_S, SubscriptionRetry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_due_until_a_refusal() -> None:
    clock = Clock()
    retry = SubscriptionRetry(clock=clock)
    clock.now += 3600
    assert not retry.take_due()


def test_each_refusal_waits_twice_as_long_up_to_a_minute_and_is_taken_once() -> None:
    clock = Clock()
    retry = SubscriptionRetry(clock=clock)
    waits = []
    for _ in range(6):
        wait = retry.refused()
        waits.append(wait)
        clock.now += wait - 0.01
        assert not retry.take_due(), "asked before its time"
        clock.now += 0.01
        assert retry.take_due()
        assert not retry.take_due(), "asked twice for one refusal"
    assert waits == [FIRST_S, 10.0, 20.0, 40.0, MAX_S, MAX_S]


def test_a_grant_or_a_new_connection_starts_over() -> None:
    clock = Clock()
    retry = SubscriptionRetry(clock=clock)
    retry.refused()
    retry.refused()
    retry.reset()
    clock.now += 3600
    assert not retry.take_due(), "a reset left a question due"
    assert retry.refused() == FIRST_S
