"""Site state: the newest known value of every reading per site, with the time it was taken.

A report replayed from an outbox carries old timestamps; it is history for
InfluxDB but never overwrites a newer reading here.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from agent.wire import (
    Event,
    HostReading,
    LinkReading,
    Meta,
    PowerReading,
    Report,
    RoomReading,
    State,
)

HISTORY = 30  # power samples kept per device for the discharge-slope cross-check


@dataclass(frozen=True, slots=True)
class PowerSample:
    taken_at: datetime
    battery_charge_pct: float | None
    battery_runtime_s: float | None
    on_battery: bool | None


@dataclass
class SiteState:
    site: str
    province: str
    meta: Meta | None = None
    online: bool | None = None
    state_at: datetime | None = None
    last_report_at: datetime | None = None
    last_seq: int | None = None
    interval_s: float | None = None
    power: dict[str, tuple[PowerReading, datetime]] = field(default_factory=dict)
    links: dict[str, tuple[LinkReading, datetime]] = field(default_factory=dict)
    host: tuple[HostReading, datetime] | None = None
    room: tuple[RoomReading, datetime] | None = None
    power_history: dict[str, deque[PowerSample]] = field(default_factory=dict)

    @property
    def site_kind(self) -> str | None:
        return self.meta.site_kind if self.meta else None


def _newer(current: tuple[object, datetime] | None, at: datetime) -> bool:
    return current is None or at >= current[1]


class SiteStates:
    """All sites this collector carries. Thread-safe; each apply_* returns whether state changed."""

    def __init__(self) -> None:
        self._sites: dict[str, SiteState] = {}
        self._lock = threading.Lock()

    def get(self, site: str) -> SiteState | None:
        return self._sites.get(site)

    def all(self) -> list[SiteState]:
        with self._lock:
            return list(self._sites.values())

    def __len__(self) -> int:
        return len(self._sites)

    def _site(self, site: str, province: str) -> SiteState:
        state = self._sites.get(site)
        if state is None:
            state = self._sites[site] = SiteState(site=site, province=province)
        return state

    def apply_report(self, report: Report) -> bool:
        at = report.taken_at
        with self._lock:
            state = self._site(report.site, report.province)
            changed = False
            for reading in report.power:
                if _newer(state.power.get(reading.device), at):
                    state.power[reading.device] = (reading, at)
                    changed = True
                self._remember(state, reading, at)
            for link in report.links:
                if _newer(state.links.get(link.path), at):
                    state.links[link.path] = (link, at)
                    changed = True
            if report.host is not None and _newer(state.host, at):
                state.host = (report.host, at)
                changed = True
            if report.room is not None and _newer(state.room, at):
                state.room = (report.room, at)
                changed = True
            if state.last_report_at is None or at > state.last_report_at:
                state.last_report_at = at
                state.last_seq = report.seq
                state.interval_s = report.interval_s
                changed = True
            return changed

    def apply_event(self, event: Event) -> bool:
        if event.power is None:
            return False
        with self._lock:
            state = self._site(event.site, event.province)
            if _newer(state.power.get(event.power.device), event.at):
                state.power[event.power.device] = (event.power, event.at)
                self._remember(state, event.power, event.at)
                return True
            return False

    def apply_meta(self, meta: Meta) -> bool:
        with self._lock:
            state = self._site(meta.site, meta.province)
            if state.meta is not None and meta.at < state.meta.at:
                return False
            state.meta = meta
            if state.interval_s is None:
                state.interval_s = meta.interval_s
            return True

    def apply_state(self, message: State) -> bool:
        """Online/offline as the broker last delivered it.

        No timestamp comparison here: the Will is stamped when the agent connected,
        before its birth message, yet it fires later. The broker delivers one
        topic's messages in order, and keeps only the last one retained.
        """
        with self._lock:
            state = self._site(message.site, message.province)
            state.online = message.state == "online"
            state.state_at = message.at
            return True

    @staticmethod
    def _remember(state: SiteState, reading: PowerReading, at: datetime) -> None:
        history = state.power_history.setdefault(reading.device, deque(maxlen=HISTORY))
        if history and at <= history[-1].taken_at:
            return  # a replay: the slope is fitted on fresh samples only
        history.append(
            PowerSample(at, reading.battery_charge_pct, reading.battery_runtime_s, reading.on_battery)
        )
