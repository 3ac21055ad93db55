"""When to ask the broker again for subscriptions its SUBACK refused.

A refusal is an ACL matter (Mosquitto's dynamic-security plugin refuses in the SUBACK:
collector/connection_log.py). An operator fixes it on the live broker, with
``mosquitto_ctrl dynsec addRoleACL …``, without restarting it: the collector's
connection stays up, so waiting for a reconnection to subscribe again would leave it
deaf until someone restarted it. Instead it asks again after ``FIRST_S``, doubling up
to ``MAX_S``: a fixed ACL is heard within a minute, a refusing broker is asked at most
once a minute. Every new connection subscribes anew and starts over.

paho's thread says when the broker refused (:meth:`refused`); the sweeper asks when it
is time (:meth:`take_due`), a step of its own (collector/service.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["FIRST_S", "MAX_S", "SubscriptionRetry"]

FIRST_S = 5.0
MAX_S = 60.0


class SubscriptionRetry:
    """The next time to ask again for one set of filters, if the broker refused them."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # refused() in paho's thread, take_due() in the sweeper's
        self._due: float | None = None
        self._delay = FIRST_S

    def refused(self) -> float:
        """The broker refused them: ask again later; returns in how many seconds."""
        with self._lock:
            delay = self._delay
            self._due = self._clock() + delay
            self._delay = min(delay * 2, MAX_S)
            return delay

    def take_due(self) -> bool:
        """Whether to ask again now (then not again until the next refusal)."""
        with self._lock:
            if self._due is None or self._clock() < self._due:
                return False
            self._due = None
            return True

    def reset(self) -> None:
        """Granted, or a new connection that subscribes anew: nothing to ask again."""
        with self._lock:
            self._due = None
            self._delay = FIRST_S
