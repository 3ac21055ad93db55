"""When the board's verdicts cannot be believed: the collector's own problems, as a banner.

The collector knows when it is blind (collector/health.py, what /healthz answers): no
broker (no report comes in: the states are as of then, and each site reads "no report"
once its stale window passes, the collector's deafness, not the site's), InfluxDB not taking writes
(charts and history stop; nothing is lost, it spools), a loop dead or stuck. Each
live part of the board starts with a banner per problem (templates/_trust.html):
what it is, since when (Vietnam time), and what it means for what the page shows.

Only the problem's code, its start and the loop's name (the collector's own words:
``mqtt``, ``writer``...) reach the page, for every role alike. Never the health's
``body``: its ``broker_failure.cause`` is text from OpenSSL, the OS and the peer
(certificate names, addresses), and its fix names config keys; a province viewer has
no use for either and the operator reads them on /healthz.

A page's live part is kept for everyone who sees the same (collector/board/render.py):
the doubts (hashable) go into that key, so a problem that comes or goes is rendered at
once. Its start is kept to the minute: a stuck loop's start, worked out from its
heartbeat's age, must not make a new key at each request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from collector.health import NO_REPORTS, Problem

__all__ = ["KNOWN", "Doubt", "doubts"]

# Connected but not subscribed (waiting for the SUBACK, or refused) is, for what the page
# shows, the same as disconnected: no report comes in.
KNOWN = NO_REPORTS | {
    "influx_unreachable",
    "thread_dead",
    "thread_silent",
    "thread_busy",
    "stopping",
    "reports_late",
}
"""The problem codes the banner has words for; any other is shown by its code."""
_MEANS = frozenset({"mqtt", "writer", "staleness"})
"""The loops whose loss the banner explains; for the others it says "may not be current"."""


@dataclass(frozen=True, slots=True)
class Doubt:
    """One reason not to believe the page: ``key`` names its text in collector/board/texts.py."""

    code: str
    since: datetime | None
    thread: str | None = None
    provinces: tuple[str, ...] = ()  # reports_late: the provinces whose reports are late

    @property
    def key(self) -> str:
        if self.code not in KNOWN:
            return "trust_other"
        if self.code.startswith("thread_"):
            return "trust_thread_dead" if self.code == "thread_dead" else "trust_thread_stuck"
        if self.code in NO_REPORTS:
            return "trust_broker_disconnected"
        return "trust_" + self.code

    @property
    def means(self) -> str:
        """The text key of what a loop's loss means for the page."""
        return "trust_means_" + (self.thread if self.thread in _MEANS else "other")

    @property
    def severe(self) -> bool:
        """The verdicts themselves are in doubt (not just the charts)."""
        return self.code != "influx_unreachable"


def _minute(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(second=0, microsecond=0)


def doubts(problems: Iterable[Problem], province: str | None = None) -> tuple[Doubt, ...]:
    """The banner's lines, the verdicts' doubts first. A province's viewer (``province``)
    is told of its own province's late reports only, not of the others'."""
    found = []
    for p in problems:
        provinces = p.provinces
        if province is not None and provinces:
            provinces = tuple(name for name in provinces if name == province)
            if not provinces:
                continue
        found.append(Doubt(p.code, _minute(p.since), p.thread, provinces))
    return tuple(sorted(found, key=lambda d: not d.severe))
