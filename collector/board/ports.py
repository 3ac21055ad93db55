"""What the board asks of the collector, besides what the API asks (collector/web/ports.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from collector.board.history import History
from collector.board.live import Changes
from collector.health import Problem
from collector.web.ports import Desks
from contract.wire import utc_now
from rules.rehearsal import Rehearsal

__all__ = ["BoardParts"]


@dataclass(frozen=True, slots=True)
class BoardParts:
    desks: Desks  # verdicts, sites, risk levels, meetings, compliance: as the API
    changes: Changes  # which sites changed, for the live pages
    rehearsals: Callable[[Iterable[str]], Mapping[str, Rehearsal]]  # each point's latest
    history: History | None  # InfluxDB, for a site's charts; None without one
    clock: Callable[[], datetime] = utc_now
    # What is wrong with the collector (its /healthz problems), for the pages' banner.
    health: Callable[[], Sequence[Problem]] = tuple
    poll_s: float = 30.0  # an open page fetches its live part at least this often
