"""Reports that arrive late: a province's reports worked off from a backlog, not live.

After a backhaul cut, the provincial broker's bridge queue drains oldest first; after the
collector was down, its session's queue on its broker does the same. Either way the
collector reads reports of an hour ago, and its verdicts are an hour behind: a province's
sites look silent (judged by the time their newest report was taken, rules/freshness.py)
until the queue reaches the present. Each of those sites would page ``SiteSilent`` the
moment its bridge is back, for a province that is fine and merely late.

How late a province is: the *freshest* report of it read in the last ``WINDOW_S`` (the
smallest ``now − taken_at``). A queue is first in, first out, so that is where the
province's queue stands. One agent draining its own outbox (agent/outbox.py sends the
site's current report first, then its backlog) or one agent whose clock is behind does
not make its province late: any other site's live report is fresher. A province from
which nothing came in the window is not late: it is silent, which the sites' own
verdicts and ``BridgeDown`` say.

A province is late while that freshest report is more than ``late_after_s`` old
(``status.late_after_s``): /healthz names it (``reports_late``, collector/health.py), the
board says so, and ``ReportsLate{province}`` fires (collector/system_alerts.py); the
shipped alertmanager.yml inhibits that province's ``SiteSilent`` meanwhile.

The same window vouches for an agent's clock behind (:meth:`vouches`). Another report of
the province read in the window (at most ``WINDOW_S + BUCKET_S`` ago) under ``LIVE_S``
after its taking waited in the queues between the province's broker and the collector
at most ``LIVE_S`` + the decoder's ``future_tolerance_s`` (its agent's clock may run that
far ahead and still be accepted). A report read after it was queued after it (first in,
first out), so it waited at most all of that together: ``vouch_min_s``. A report older
than that when read spent the rest of its age before the broker, at the agent, which
sends its newest report first (agent/outbox.py): its clock is behind. rules/snapshot.py
judges such a site as if its clock were right once its last reports were all vouched for
and came on their interval, each as old, and its box says its clock is not synchronised.
This holds while all of a province's agents reach the collector through its one broker
and bridge (docs/topology.md); the box's own word is the second witness where not.

Fed by paho's thread for every report (:meth:`observe`: a dict lookup and a comparison
under a lock); read by the sweeper, /healthz and the alert sender (:meth:`late`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["BUCKET_S", "LIVE_S", "WINDOW_S", "Backlog", "Late"]

BUCKET_S = 10.0
WINDOW_S = 60.0
_BUCKETS = int(WINDOW_S // BUCKET_S)
# A report read within this of its taking came through live (rules/snapshot.py's
# CLOCK_BEHIND_MIN_S: below it, a lag is the network's).
LIVE_S = 30.0


@dataclass(frozen=True, slots=True)
class Late:
    """A province whose freshest report read lately was ``behind_s`` old, since ``since``
    (seconds since the epoch: when the collector first found it late)."""

    behind_s: float
    since: float


class Backlog:
    """How far behind the present each province's reports are, as read."""

    def __init__(
        self,
        late_after_s: float,
        *,
        future_tolerance_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.late_after_s = late_after_s
        # A report older than this when read beside a live one did not wait in a queue.
        self.vouch_min_s = WINDOW_S + BUCKET_S + LIVE_S + future_tolerance_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        # province -> {bucket number: the smallest lag read in it}
        self._freshest: dict[str, dict[int, float]] = {}
        self._late_since: dict[str, float] = {}

    def observe(self, province: str, lag_s: float) -> None:
        """A report of ``province`` read ``lag_s`` after it was taken."""
        bucket = int(self._clock() // BUCKET_S)
        with self._lock:
            freshest = self._freshest.get(province)
            if freshest is None:
                freshest = self._freshest[province] = {}
            seen = freshest.get(bucket)
            if seen is None or lag_s < seen:
                freshest[bucket] = lag_s

    def vouches(self, province: str, lag_s: float) -> bool:
        """Whether a report of ``province`` read ``lag_s`` after its taking (not yet
        observed) cannot have waited that long in a queue: see the module's docstring."""
        if lag_s < self.vouch_min_s:
            return False
        oldest = int(self._clock() // BUCKET_S) - _BUCKETS
        with self._lock:
            freshest = self._freshest.get(province)
            if not freshest:
                return False
            return any(lag < LIVE_S for bucket, lag in freshest.items() if bucket >= oldest)

    def late(self) -> Mapping[str, Late]:
        """The provinces late now, by name."""
        oldest = int(self._clock() // BUCKET_S) - _BUCKETS + 1
        found: dict[str, Late] = {}
        with self._lock:
            for province, freshest in list(self._freshest.items()):
                for bucket in [b for b in freshest if b < oldest]:
                    del freshest[bucket]
                if not freshest:  # nothing read in the window: silent, not late
                    del self._freshest[province]
                    self._late_since.pop(province, None)
                    continue
                behind = min(freshest.values())
                if behind <= self.late_after_s:
                    self._late_since.pop(province, None)
                    continue
                since = self._late_since.setdefault(province, self._wall())
                found[province] = Late(behind, since)
        return MappingProxyType(dict(sorted(found.items())))
