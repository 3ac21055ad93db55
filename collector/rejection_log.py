"""The collector's log of refused messages: each kind said once a minute per topic.

Every refused message is kept as a dead letter and counted (``kienco_rejected_total``),
so the log is for the reader at the console, not the record. An agent that keeps
sending what is refused (its clock set 7 h ahead, a schema it was not built for) sends
it every interval: one line each would bury everything else at national scale (100
such boxes at 10 s: 10 lines a second). So a topic's first refusal for a reason is
logged at once, and the next ones at most once per ``every_s``, saying how many were
not logged since. The log's own standard library has no such filter.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from plumbing.untrusted import one_line

__all__ = ["RejectionLog"]

_MAX_KEYS = 100_000  # (topic, reason) pairs remembered; forgotten all at once when full


class RejectionLog:
    """Each (topic, reason): when it was last logged, and how many since were not."""

    def __init__(self, log: logging.Logger, *, every_s: float = 60.0) -> None:
        self._log = log
        self._every_s = every_s
        self._said: dict[tuple[str, str], tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def refused(self, now: datetime, topic: str, reason: str, detail: str) -> bool:
        """Log one refusal, unless this topic's last one for ``reason`` was logged less
        than ``every_s`` ago (then count it); whether it was logged."""
        key = (topic, reason)
        with self._lock:
            held = self._said.get(key)
            if held is not None and (now - held[0]).total_seconds() < self._every_s:
                self._said[key] = (held[0], held[1] + 1)
                return False
            if held is None and len(self._said) >= _MAX_KEYS:
                self._said.clear()
            self._said[key] = (now, 0)
        since = ""
        if held is not None and held[1]:
            since = (
                f" (and {held[1]} more from this topic for this reason in the last "
                f"{(now - held[0]).total_seconds():.0f} s, not logged; all kept as dead letters)"
            )
        # The topic and the detail are the publisher's text: one line each in the log.
        self._log.warning("rejected %s: %s: %s%s", one_line(topic), reason, one_line(detail), since)
        return True
