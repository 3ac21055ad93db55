"""Exponential backoff with full jitter, so a fleet that lost the broker does not return in step."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        minimum_s: float,
        maximum_s: float,
        *,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._min = minimum_s
        self._max = maximum_s
        self._rand = rand
        self._attempt = 0

    def next(self) -> float:
        """The next delay: uniform in [min, min(max, min·2^attempt)]."""
        ceiling = min(self._max, self._min * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return self._rand(self._min, ceiling)

    def reset(self) -> None:
        self._attempt = 0
