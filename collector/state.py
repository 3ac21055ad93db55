"""Site state: one :class:`rules.SiteSnapshot` per site, folded from every accepted message.

The folding itself is pure and lives with the snapshot (``with_report`` …): the
newest value of each reading wins, so a report replayed from an outbox is history
for InfluxDB but never overwrites newer state. This module only holds the
snapshots, thread-safely, and says whether a message changed the site's present.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

from contract.wire import Event, Meta, Report, State
from rules import SiteSnapshot


class SiteStates:
    """All sites this collector carries. Each ``apply_*`` returns whether the present changed."""

    def __init__(self) -> None:
        self._sites: dict[str, SiteSnapshot] = {}
        self._lock = threading.Lock()

    def get(self, site: str) -> SiteSnapshot | None:
        return self._sites.get(site)

    def all(self) -> list[SiteSnapshot]:
        with self._lock:
            return list(self._sites.values())

    def __len__(self) -> int:
        return len(self._sites)

    def province_of(self, site: str) -> str | None:
        """The province this collector knows the site under (its first message's), or None."""
        held = self._sites.get(site)
        return None if held is None else held.province

    def _current(self, site: str, province: str) -> SiteSnapshot:
        return self._sites.get(site) or SiteSnapshot(site=site, province=province)

    def apply_report(self, report: Report, *, received_at: datetime | None = None) -> bool:
        with self._lock:
            before = self._current(report.site, report.province)
            after = before.with_report(report, received_at=received_at)
            self._sites[report.site] = after
        # A replay older than what we hold changes history only, not the verdict.
        return before.last_report_at is None or report.taken_at >= before.last_report_at

    def apply_event(self, event: Event) -> bool:
        if event.power is None:
            return False
        with self._lock:
            before = self._current(event.site, event.province)
            held = before.power.get(event.power.device)
            if held is not None and held[1] > event.at:
                return False
            power = event.power
            if held is not None:
                # A trap says a few things (on battery, runtime left); the rest of the
                # device's reading (charge, load, …) stays as last polled, not unknown.
                said = event.power.model_dump(exclude_none=True)
                power = held[0].model_copy(update=said)
            as_report = Report(
                site=event.site,
                province=event.province,
                seq=event.seq,
                taken_at=event.at,
                interval_s=self._interval(event.site),
                power=(power,),
            )
            # An event refreshes one device; it must not count as a full report.
            after = before.with_report(as_report)
            self._sites[event.site] = replace(
                after, last_report_at=before.last_report_at, interval_s=before.interval_s
            )
        return True

    def apply_meta(self, meta: Meta) -> bool:
        with self._lock:
            before = self._current(meta.site, meta.province)
            self._sites[meta.site] = before.with_meta(meta)
        return True

    def apply_state(self, state: State) -> bool:
        with self._lock:
            before = self._current(state.site, state.province)
            self._sites[state.site] = before.with_state(state)
        return True

    def _interval(self, site: str) -> float:
        held = self._sites.get(site)
        return held.interval_s if held is not None and held.interval_s else 60.0
