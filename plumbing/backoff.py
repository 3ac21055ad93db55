"""Exponential backoff with jitter: the one way kienco waits before trying again.

Attempt n (0, 1, …) waits a random time under a ceiling that doubles from ``minimum_s``
up to ``maximum_s``, never less than ``minimum_s``. ``jitter`` is the share of the
ceiling chance may take off: 1.0 (full jitter) spreads a fleet of agents that lost the
broker over the whole interval, so they do not come back in step; 0.5 keeps at least half
the ceiling, for a retry that must still wait within a short budget (the collector's
InfluxDB writer).
"""

from __future__ import annotations

import random
from collections.abc import Callable

_MAX_DOUBLINGS = 32  # past any maximum_s worth having; keeps 2**n finite and small


class Backoff:
    def __init__(
        self,
        minimum_s: float,
        maximum_s: float,
        *,
        jitter: float = 1.0,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter is a share of the delay, 0 to 1; got {jitter}")
        self._min = minimum_s
        self._max = maximum_s
        self._jitter = jitter
        self._rand = rand
        self._attempt = 0

    def delay(self, attempt: int) -> float:
        """The delay before attempt ``attempt`` (0 = the first retry)."""
        ceiling = min(self._max, self._min * 2 ** min(attempt, _MAX_DOUBLINGS))
        floor = max(self._min, ceiling * (1.0 - self._jitter))
        return self._rand(floor, ceiling)

    def next(self) -> float:
        """The next delay of a run of failures (``reset`` when one succeeds)."""
        delay = self.delay(self._attempt)
        self._attempt = min(self._attempt + 1, _MAX_DOUBLINGS)
        return delay

    def reset(self) -> None:
        self._attempt = 0
