"""The ``alerts:`` section of the policy: when a site's power or a meeting is worth a page.

Defaults and their sources (every one a *proposal*: no standard says when to page):

- ``dark_soon_below_h`` — ``SiteDarkSoon`` fires when a site off mains has less than
  this left, per site kind:

  - ``station: 2`` — the time a province's crews need to bring fuel or a portable
    generator to a station (Yagi: 284 generators were pre-positioned; DOMAIN.md);
  - ``power_room: 4`` — the CPUC 4 h minimum, the floor of every backup target:
    a core site below it is an emergency for the whole area it feeds;
  - ``meeting_point: 4`` — DOMAIN's meeting-point proposal: total autonomy >= 4 h
    (set-up + meeting);

- ``dark_soon_clear_pct: 25`` — the alert clears only once the time left is 25 %
  above the threshold (a generator started, fuel delivered), so an estimate that
  wobbles around the threshold does not page and clear and page again;
- ``meeting_at_risk_within_h: 2`` — ``MeetingAtRisk`` looks at a planned meeting from
  2 h before its start to its end: provincial IT asks "a meeting starts in 1-2
  hours: which points are not ready?" (ARCHITECTURE.md, who asks what).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from contract.wire import SiteKind

Hours = Annotated[float, Field(gt=0, le=24 * 366)]


class DarkSoon(BaseModel):
    """Hours left under which a site off mains is about to go dark, per site kind."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    station: Hours = 2.0
    power_room: Hours = 4.0
    meeting_point: Hours = 4.0

    def for_kind(self, kind: SiteKind | None) -> float:
        """The threshold in hours (a site whose kind is not known yet: as a station)."""
        hours: float = getattr(self, kind or "station")
        return hours


class AlertPolicy(BaseModel):
    """When the collector raises the alerts it sends to Alertmanager."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dark_soon_below_h: DarkSoon = DarkSoon()
    dark_soon_clear_pct: Annotated[float, Field(ge=0, le=500)] = 25.0
    meeting_at_risk_within_h: Annotated[float, Field(ge=0, le=7 * 24)] = 2.0
