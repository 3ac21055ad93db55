"""Site state: one :class:`rules.SiteSnapshot` per site, folded from every accepted message.

The folding itself is pure and lives with the snapshot (``with_report`` …): the
newest value of each reading wins, so a report replayed from an outbox is history
for InfluxDB but never overwrites newer state. This module only holds the
snapshots, thread-safely, and says whether a message changed the site's present.

It also keeps, per site, when the collector last heard from it (the receive time,
not the agent's clock), and how many sites each province has: what the
admission's cap and the expiry of silent unlisted sites are judged on.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from collector.decode import Accepted
from collector.inventory import from_register
from contract.wire import Event, Meta, Report, State, utc_now
from rules import SiteSnapshot


class SiteStates:
    """All sites this collector carries. Each ``apply_*`` returns whether the present changed."""

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._sites: dict[str, SiteSnapshot] = {}
        self._heard: dict[str, datetime] = {}
        self._per_province: Counter[str] = Counter()
        self._dirty: set[str] = set()  # changed since collector/state_store.py last saved
        self._clock = clock
        self._lock = threading.Lock()

    def _put(self, snapshot: SiteSnapshot, *, heard: bool = True) -> None:
        """Store (lock held); ``heard``: the site itself spoke now.

        Meta and state are retained: the broker hands them out again at every
        subscribe, so they say the site exists, not that it spoke. They count as
        heard only for a site new to us, or known only from the register (its
        inventory meta, made at start: no word of its own yet), so when it was first
        heard of is when its own agent first spoke (collector/alert_sender.py counts a
        never-reporting site's silence from it).
        """
        if snapshot.site not in self._sites:
            self._per_province[snapshot.province] += 1
            heard = True
        self._sites[snapshot.site] = snapshot
        if heard:
            self._heard[snapshot.site] = self._clock()
        self._dirty.add(snapshot.site)

    def mark_dirty(self, site: str) -> None:
        with self._lock:
            self._dirty.add(site)

    def take_dirty(self) -> set[str]:
        """The sites changed (or forgotten) since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

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

    def count(self, province: str) -> int:
        """How many sites of ``province`` this collector carries."""
        return self._per_province[province]

    def heard_at(self, site: str) -> datetime | None:
        """When the site last spoke (a report or an event; the collector's clock)."""
        return self._heard.get(site)

    def expire(
        self, now: datetime, *, silent_for_s: float, keep: Callable[[str], bool]
    ) -> list[SiteSnapshot]:
        """Forget the sites not heard from for ``silent_for_s`` that ``keep`` does not keep."""
        cutoff = now - timedelta(seconds=silent_for_s)
        with self._lock:
            gone = [site for site, at in self._heard.items() if at < cutoff and not keep(site)]
            removed = []
            for site in gone:
                snapshot = self._sites.pop(site)
                del self._heard[site]
                self._per_province[snapshot.province] -= 1
                if not self._per_province[snapshot.province]:
                    del self._per_province[snapshot.province]
                self._dirty.add(site)
                removed.append(snapshot)
        return removed

    def restore(self, saved: Iterable[tuple[SiteSnapshot, datetime]]) -> int:
        """Put back sites saved before a restart, each with when it was last heard from."""
        count = 0
        with self._lock:
            for snapshot, heard in saved:  # as saved: not dirty
                if snapshot.site not in self._sites:
                    self._per_province[snapshot.province] += 1
                self._sites[snapshot.site] = snapshot
                self._heard[snapshot.site] = heard
                count += 1
        return count

    def restore_heard(self, heard: Mapping[str, datetime]) -> None:
        """Set when these sites were last heard from (as saved: folding logged messages
        again at start must not count as hearing from them)."""
        with self._lock:
            for site, at in heard.items():
                if site in self._sites:
                    self._heard[site] = at

    def apply(
        self, message: Accepted, *, received_at: datetime | None = None, vouched: bool = False
    ) -> bool:
        """Fold any accepted message (``received_at``: a report's receive time, when the
        site spoke now; ``vouched``: no queue held it, collector/backlog.py); whether the
        site's present changed."""
        if isinstance(message, Report):
            return self.apply_report(message, received_at=received_at, vouched=vouched)
        if isinstance(message, Event):
            return self.apply_event(message)
        if isinstance(message, Meta):
            return self.apply_meta(message)
        return self.apply_state(message)

    def _current(self, site: str, province: str) -> SiteSnapshot:
        return self._sites.get(site) or SiteSnapshot(site=site, province=province)

    def apply_report(
        self, report: Report, *, received_at: datetime | None = None, vouched: bool = False
    ) -> bool:
        with self._lock:
            before = self._current(report.site, report.province)
            after = before.with_report(report, received_at=received_at, vouched=vouched)
            self._put(after)
        # A replay older than what we hold changes history only, not the verdict; a report
        # after the agent's clock stepped back is the site's newest (rules/snapshot.py).
        return after.last_report_at == report.taken_at

    def note_refused_ahead(
        self, report: Report, received_at: datetime, ahead_s: float, tolerance_s: float
    ) -> bool:
        """A live report of the site refused for being stamped ``ahead_s`` ahead of the
        collector's clock, past ``tolerance_s`` (collector/decode.py): the site spoke, its
        clock is wrong; nothing of it is folded in. Whether the site changed (to be judged
        again: its reason says how far ahead)."""
        with self._lock:
            before = self._current(report.site, report.province)
            after = before.with_refused_ahead(received_at, ahead_s, tolerance_s)
            self._put(after)
        return after is not before

    def apply_event(self, event: Event) -> bool:
        if event.power is None:
            with self._lock:
                if event.site in self._sites:  # heard from, though nothing to fold in
                    self._heard[event.site] = self._clock()
                    self._dirty.add(event.site)
            return False
        with self._lock:
            before = self._current(event.site, event.province)
            held = before.power.get(event.power.device)
            if held is not None and held[1] > event.at:
                self._heard[event.site] = self._clock()  # late, but heard from
                self._dirty.add(event.site)
                return False
            power = event.power
            if held is not None:
                # A trap says a few things (on battery, runtime left); the rest of the
                # device's reading (charge, load, …) stays as last polled, not unknown.
                said = event.power.model_dump(exclude_none=True)
                power = held[0].model_copy(update=said)
                polled = held[0]
                if (
                    power.on_battery is True
                    and polled.on_battery is not True
                    and "battery_runtime_s" not in said
                    and polled.battery_runtime_s is not None
                    and polled.battery_runtime_s <= 0
                ):
                    # Polled on line, a runtime of 0 is some vendors' way of saying nothing
                    # (rules/autonomy.py ignores it there). Under the trap's "on battery" it
                    # would read as a battery run flat: the site dark, critical, at 100 %
                    # charge. Unknown until the device is polled on battery.
                    power = power.model_copy(update={"battery_runtime_s": None})
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
            self._put(
                replace(after, last_report_at=before.last_report_at, interval_s=before.interval_s)
            )
        return True

    def apply_meta(self, meta: Meta) -> bool:
        with self._lock:
            held = self._sites.get(meta.site)
            if held is not None and held.meta == meta:
                return False  # the retained copy of what we hold (a resubscribe, a restart)
            before = held or SiteSnapshot(site=meta.site, province=meta.province)
            after = before.with_meta(meta)
            if after is before:
                return False  # older than the meta we hold
            self._put(after, heard=register_only(held) and not from_register(meta))
        return True

    def apply_state(self, state: State) -> bool:
        with self._lock:
            held = self._sites.get(state.site)
            online = state.state == "online"
            if held is not None and held.state_at == state.at and held.online is online:
                return False  # the retained copy of what we hold
            before = held or SiteSnapshot(site=state.site, province=state.province)
            self._put(before.with_state(state), heard=register_only(held))
        return True

    def _interval(self, site: str) -> float:
        held = self._sites.get(site)
        return held.interval_s if held is not None and held.interval_s else 60.0


def register_only(held: SiteSnapshot | None) -> bool:
    """A site known only from the inventory: nothing of its own agent folded in yet (no
    meta of its own, no birth or Will, no report or event)."""
    return (
        held is not None
        and from_register(held.meta)
        and held.state_at is None
        and held.last_seen_at is None
        and not held.power
    )
