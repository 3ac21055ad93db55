"""What the API and the board ask of the collector: narrow interfaces, wired by the collector.

The routes never see the ``Collector``: each depends on one of these. The
collector (collector/service.py) hands its own parts in (``Verdicts`` is a
:class:`Statuses`, ``SiteStates`` a :class:`Sites`, ...) and, for actions that
must do more than store (a risk level re-judges a province), its own methods.
A test, a benchmark or another front end can wire them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from collector.deadletter import DeadLetter
from collector.meetings import Meeting, MeetingRequest, MeetingStatus
from collector.replay import ReplayRequest, ReplayResult
from collector.risk import RiskChange, RiskEntry
from collector.whatif_route import WhatIfQuery
from contract.wire import Status
from rules import SiteSnapshot
from rules.compliance import ComplianceReport
from rules.whatif import WhatIf

__all__ = [
    "AreaLevel",
    "DeadLetters",
    "Desks",
    "MeetingBook",
    "RiskBook",
    "Sites",
    "Statuses",
]

AreaLevel = Literal["area", "province"]


class Statuses(Protocol):
    """Every site's verdict as shown now (collector/readiness.py ``Verdicts``)."""

    def select(
        self, *, province: str | None = None, kind: str | None = None, verdict: str | None = None
    ) -> list[Status]: ...
    def select_json(self, sites: Iterable[Status]) -> bytes: ...
    def json_of(self, site: str) -> bytes | None: ...
    def get(self, site: str) -> Status | None: ...


class Sites(Protocol):
    """What each site said last (collector/state.py ``SiteStates``)."""

    def get(self, site: str) -> SiteSnapshot | None: ...
    def all(self) -> list[SiteSnapshot]: ...


class RiskBook(Protocol):
    """Risk levels kept (collector/risk.py ``RiskLevels``)."""

    def current(self) -> dict[str, int]: ...
    def history(self, province: str | None = None, limit: int = 100) -> list[RiskEntry]: ...


class MeetingBook(Protocol):
    """Planned meetings kept (collector/meetings.py ``MeetingStore``)."""

    def get(self, meeting_id: str) -> Meeting | None: ...
    def all(self) -> list[Meeting]: ...


class DeadLetters(Protocol):
    """Rejected messages kept (collector/deadletter.py ``DeadLetterStore``)."""

    def counts(self, *, kept_only: bool = False) -> dict[str, int]: ...
    def select(
        self,
        *,
        reason: str | None = None,
        id: int | None = None,
        kept_only: bool = True,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[DeadLetter]: ...
    def get(self, id: int) -> DeadLetter | None: ...


@dataclass(frozen=True, slots=True)
class Desks:
    """Everything the routes use, each part as narrow as it can be."""

    statuses: Statuses
    sites: Sites
    risk: RiskBook
    set_risk: Callable[[RiskChange], RiskEntry]
    meetings: MeetingBook
    plan_meeting: Callable[[MeetingRequest, list[str]], Meeting]
    judge_meeting: Callable[[Meeting], MeetingStatus]
    request_rehearsal: Callable[[Meeting], list[str]]
    compliance: Callable[[str, AreaLevel | None], ComplianceReport]
    dead_letters: DeadLetters
    replay: Callable[[ReplayRequest], ReplayResult]
    whatif: Callable[[WhatIfQuery], WhatIf]
