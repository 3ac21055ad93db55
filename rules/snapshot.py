"""What the rules know about one site at one moment: newest readings, meta, online state.

The collector builds a ``SiteSnapshot`` from its site state, or folds messages into
one with ``with_report`` / ``with_meta`` / ``with_state``: the newest value of each
reading wins, so a report replayed from an outbox (old ``taken_at``) never
overwrites newer state; it only fills the discharge history in time order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeVar

from contract.wire import (
    HostReading,
    LinkReading,
    Meta,
    PowerReading,
    Report,
    RoomReading,
    SiteClass,
    SiteKind,
    State,
)

HISTORY_LEN = 30

# An agent's clock behind (an edge box back from a power cut with no RTC and no NTP in
# reach: hours behind): its reports arrive on time, each stamped in the past, and the
# site looks silent while it reports. Told from a backlog by its cadence and its
# steadiness: the last CLOCK_SAMPLES newest reports each came at least CLOCK_CADENCE of
# the interval after the one before (a queue drains in bursts), and each as old as the
# others to CLOCK_STEADY_S + CLOCK_STEADY_FRACTION (a queue being worked off grows
# younger with each report). Below CLOCK_BEHIND_MIN_S a lag is the network's. Only what
# the verdict says changes (rules/freshness.py: "clock_behind", the fix named), not the
# verdict: how old the readings really are is not known for sure, and a queue worked off
# barely faster than it fills can look the same.
#
# Unless a queue is ruled out: the collector marks an arrival *vouched* when no queue
# between the site's province and it can have held the report that long (another report
# of the province came through live just before it: collector/backlog.py ``vouches``).
# When all CLOCK_SAMPLES arrivals are vouched and the box's kernel says its clock is not
# synchronised, the lag is the site's clock, and the site is judged as if its clock were
# right (``clock_correction_s``; rules/freshness.py: "clock_corrected").
CLOCK_SAMPLES = 4
CLOCK_CADENCE = 0.8
CLOCK_STEADY_S = 2.0
CLOCK_STEADY_FRACTION = 0.01
CLOCK_BEHIND_MIN_S = 30.0

# Whose numbering a report's seq is in (``SiteSnapshot.with_report``), and how many of a
# site's outboxes are remembered: the current one and those it replaced.
Numbering = Literal["same", "new", "other"]
OUTBOXES_KEPT = 4


# One point of a device's battery history as the snapshot keeps it: (taken_at, battery
# charge %, battery runtime s, on battery), a plain tuple. Plain tuples of numbers and
# times leave the garbage collector's watch (CPython untracks them), a NamedTuple never
# does: at 30 samples per device they were half the objects a full collection walked,
# with every thread waiting (collector/heap.py). Read one as ``PowerSample._make(s)``.
Sample = tuple[datetime, float | None, float | None, bool | None]


# A report heard live, as the snapshot keeps it: (received at, taken at, vouched: no queue
# between its province and the collector can have held it that long).
Arrival = tuple[datetime, datetime, bool]


class PowerSample(NamedTuple):
    """One point of a device's battery history, for the discharge-slope cross-check
    (the snapshot keeps it as a plain :data:`Sample`)."""

    taken_at: datetime
    battery_charge_pct: float | None
    battery_runtime_s: float | None
    on_battery: bool | None

    @classmethod
    def of(cls, reading: PowerReading, taken_at: datetime) -> PowerSample:
        return cls(
            taken_at, reading.battery_charge_pct, reading.battery_runtime_s, reading.on_battery
        )


K = TypeVar("K")
V = TypeVar("V")


def _frozen(mapping: Mapping[K, V]) -> Mapping[K, V]:
    if isinstance(mapping, MappingProxyType):
        return mapping  # already a read-only copy made here
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    """One site, as the collector last knew it. Build with keywords; all but ids default."""

    site: str
    province: str
    site_kind: SiteKind | None = None
    meta: Meta | None = None
    online: bool | None = None
    state_at: datetime | None = None
    last_report_at: datetime | None = None
    last_seen_at: datetime | None = None
    interval_s: float | None = None
    power: Mapping[str, tuple[PowerReading, datetime]] = field(default_factory=dict)
    links: Mapping[str, tuple[LinkReading, datetime]] = field(default_factory=dict)
    host: tuple[HostReading, datetime] | None = None
    room: tuple[RoomReading, datetime] | None = None
    power_history: Mapping[str, tuple[Sample, ...]] = field(default_factory=dict)
    # The last CLOCK_SAMPLES newest reports heard live: (received at, taken at, vouched),
    # oldest first; for clock_behind_s and clock_correction_s.
    arrivals: tuple[Arrival, ...] = ()
    # The sequence number of the newest report (by its time): a report heard live with a
    # higher one but taken well before is the agent's clock stepped back (``with_report``).
    last_seq: int | None = None
    # The outboxes whose numbering the site's reports carried (``Report.outbox``), oldest
    # first, the last the one ``last_seq`` belongs to: a report of another one heard live
    # is a new numbering (a box replaced), of an earlier one a replay of it (``with_report``).
    outboxes: tuple[int, ...] = ()
    # The newest report refused for being stamped ahead of the collector's clock past its
    # tolerance (collector/decode.py): (received at, how far ahead, the tolerance it was
    # refused by; s). The agent talks, its clock is wrong (rules/freshness.py,
    # ``clock_ahead_refused``).
    refused_ahead: tuple[datetime, float, float] | None = None

    def __post_init__(self) -> None:
        if self.site_kind is None and self.meta is not None:
            object.__setattr__(self, "site_kind", self.meta.site_kind)
        if self.interval_s is None and self.meta is not None:
            object.__setattr__(self, "interval_s", self.meta.interval_s)
        if self.last_report_at is None:
            times = [t for _, t in self.power.values()] + [t for _, t in self.links.values()]
            times += [r[1] for r in (self.host, self.room) if r is not None]
            object.__setattr__(self, "last_report_at", max(times, default=None))
        object.__setattr__(self, "power", _frozen(self.power))
        object.__setattr__(self, "links", _frozen(self.links))
        # PowerSamples (or other tuple types) are kept as plain tuples (see Sample). The
        # collector folds thousands of reports a second: convert only what needs it.
        # Samples are converted as a whole tuple, so the last one tells for all of it.
        if not all(
            not samples or (type(samples) is tuple and type(samples[-1]) is tuple)
            for samples in self.power_history.values()
        ):
            history = {
                device: tuple(tuple(s) for s in samples)
                for device, samples in self.power_history.items()
            }
            object.__setattr__(self, "power_history", _frozen(history))
        else:
            object.__setattr__(self, "power_history", _frozen(self.power_history))

    @property
    def site_class(self) -> SiteClass:
        """The declared class; a site declared hardened is held at least to hardened."""
        if self.meta is None:
            return "ordinary"
        if self.meta.hardened and self.meta.site_class == "ordinary":
            return "hardened"
        return self.meta.site_class

    @property
    def clock_behind_s(self) -> float | None:
        """How far behind the agent's clock seems to run, when its reports show it: the
        last :data:`CLOCK_SAMPLES` newest reports came on their interval, each the same
        time (more than :data:`CLOCK_BEHIND_MIN_S`) after it was taken. The smallest of
        those times (the network's share included)."""
        arrivals = self.arrivals
        interval = self.interval_s
        if len(arrivals) < CLOCK_SAMPLES or not interval:
            return None
        host = self.host
        if host is not None and host[0].clock_synced:
            return None  # the box's kernel says its clock keeps time: a queue, not the clock
        lags = [(received - taken).total_seconds() for received, taken, _ in arrivals]
        least = min(lags)
        if least < CLOCK_BEHIND_MIN_S:
            return None
        if max(lags) - least > CLOCK_STEADY_S + CLOCK_STEADY_FRACTION * least:
            return None  # growing younger: a queue being worked off
        gaps = [(b[0] - a[0]).total_seconds() for a, b in pairwise(arrivals)]
        if min(gaps) < CLOCK_CADENCE * interval:
            return None  # in a burst: a queue draining
        return least

    @property
    def clock_correction_s(self) -> float | None:
        """How far behind the agent's clock runs when two things say so besides its
        reports' age (:attr:`clock_behind_s`): the box's kernel says its clock is not
        synchronised (``host.clock_synced`` False: an agent that does not say is not
        corrected), and the collector vouched for every one of those arrivals (no queue of
        its province can have held them). The site is then judged as if its clock were
        right (:meth:`shifted`)."""
        arrivals = self.arrivals
        if len(arrivals) < CLOCK_SAMPLES or not all(vouched for _, _, vouched in arrivals):
            return None
        host = self.host
        if host is None or host[0].clock_synced is not False:
            return None
        return self.clock_behind_s

    @property
    def hardened(self) -> bool:
        return self.meta is not None and self.meta.hardened

    def shifted(self, by_s: float) -> SiteSnapshot:
        """This snapshot with the times its agent stamped moved ``by_s`` later: what it
        would hold had the agent's clock been right (``clock_correction_s``). The
        collector's own times (``last_seen_at``, the arrivals) stay as they are."""
        by = timedelta(seconds=by_s)

        def later(held: Mapping[str, tuple[V, datetime]]) -> dict[str, tuple[V, datetime]]:
            return {key: (reading, at + by) for key, (reading, at) in held.items()}

        return replace(
            self,
            state_at=None if self.state_at is None else self.state_at + by,
            last_report_at=None if self.last_report_at is None else self.last_report_at + by,
            power=later(self.power),
            links=later(self.links),
            host=None if self.host is None else (self.host[0], self.host[1] + by),
            room=None if self.room is None else (self.room[0], self.room[1] + by),
            power_history={
                device: tuple((s[0] + by, *s[1:]) for s in samples)
                for device, samples in self.power_history.items()
            },
        )

    def current(self, max_lag_s: float) -> SiteSnapshot:
        """This snapshot without readings older than the newest report by more than
        ``max_lag_s`` (a probe that stopped answering must not keep its last value)."""
        newest = self.last_report_at
        if newest is None:
            return self

        def keep(taken_at: datetime) -> bool:
            return (newest - taken_at).total_seconds() <= max_lag_s

        # Usually every reading came with the newest report: nothing to drop, and the
        # snapshot is its own current view (it is frozen) - no copy to build.
        if (
            all(keep(t) for _, t in self.power.values())
            and all(keep(t) for _, t in self.links.values())
            and (self.host is None or keep(self.host[1]))
            and (self.room is None or keep(self.room[1]))
        ):
            return self
        return replace(
            self,
            power={k: v for k, v in self.power.items() if keep(v[1])},
            links={k: v for k, v in self.links.items() if keep(v[1])},
            host=self.host if self.host is not None and keep(self.host[1]) else None,
            room=self.room if self.room is not None and keep(self.room[1]) else None,
        )

    # --- folding messages in (pure: each returns a new snapshot)

    def with_report(
        self,
        report: Report,
        *,
        received_at: datetime | None = None,
        vouched: bool = False,
        history_len: int = HISTORY_LEN,
    ) -> SiteSnapshot:
        """Fold a report in; each reading is kept only if it is newer than what we hold.
        ``received_at``: when it was heard live; ``vouched``: no queue can have held it
        (see :data:`Arrival`).

        A report heard live that the agent numbered after the newest but stamped more than
        :data:`CLOCK_BEHIND_MIN_S` before it is not a replay (a replay was numbered before
        it): the agent's clock stepped back (a box rebooted after a power cut with no RTC
        and no NTP in reach). The site starts again from it (:meth:`_stepped_back`): else
        every report after the step would be taken for history, and the site called
        silent while it reports, until its clock caught up with its last report before.
        A report heard live from an outbox the site has not heard from (``Report.outbox``:
        a box replaced) is a new numbering, so numbered after the newest whatever its
        ``seq``; one from an outbox it replaced is a replay of it."""
        at = report.taken_at
        last, last_seq = self.last_report_at, self.last_seq
        numbering = self._numbering(report.outbox, heard=received_at is not None)
        if (
            received_at is not None
            and last is not None
            and (
                numbering == "new"
                or (numbering == "same" and last_seq is not None and report.seq > last_seq)
            )
            and (last - at).total_seconds() > CLOCK_BEHIND_MIN_S
        ):
            return self._stepped_back().with_report(
                report, received_at=received_at, vouched=vouched, history_len=history_len
            )

        def newer(held: tuple[object, datetime] | None) -> bool:
            return held is None or at > held[1]

        power = dict(self.power)
        history = dict(self.power_history)
        for reading in report.power:
            if newer(power.get(reading.device)):
                power[reading.device] = (reading, at)
            held_samples = history.get(reading.device, ())
            sample = (at, reading.battery_charge_pct, reading.battery_runtime_s, reading.on_battery)
            if not held_samples or at > held_samples[-1][0]:  # the usual case: newest
                keep = held_samples[max(0, len(held_samples) - history_len + 1) :]
                history[reading.device] = (*keep, sample)
                continue
            samples = {s[0]: s for s in held_samples}  # a replay: merge in time order
            samples[at] = sample
            ordered = sorted(samples.values(), key=lambda s: s[0])
            history[reading.device] = tuple(ordered[-history_len:])
        links = dict(self.links)
        for link in report.links:
            if newer(links.get(link.path)):
                links[link.path] = (link, at)
        host = (report.host, at) if report.host is not None and newer(self.host) else self.host
        room = (report.room, at) if report.room is not None and newer(self.room) else self.room
        is_newest = numbering != "other" and (
            self.last_report_at is None or at >= self.last_report_at
        )
        seen = self.last_seen_at
        if received_at is not None and (seen is None or received_at > seen):
            seen = received_at
        arrivals = self.arrivals
        if is_newest and received_at is not None:
            kept = arrivals if len(arrivals) < CLOCK_SAMPLES else arrivals[1:]
            arrivals = (*kept, (received_at, at, vouched))
        return self._evolve(
            # Fresh dicts, read-only from here on, and plain-tuple samples: already in the
            # form __post_init__ leaves them.
            power=MappingProxyType(power),
            links=MappingProxyType(links),
            host=host,
            room=room,
            power_history=MappingProxyType(history),
            last_report_at=at if is_newest else self.last_report_at,
            interval_s=report.interval_s if is_newest else self.interval_s,
            last_seen_at=seen,
            arrivals=arrivals,
            last_seq=report.seq if is_newest or numbering == "new" else self.last_seq,
            outboxes=self._outboxes_after(report.outbox, numbering),
        )

    def _numbering(self, outbox: int | None, *, heard: bool) -> Numbering:
        """Whose numbering a report's ``seq`` is in, against ``last_seq``'s: ``same`` (or
        not said: agents before ``Report.outbox``), ``new`` (an outbox not heard from at
        the site, heard live), ``other`` (an outbox it replaced, or a new one not heard
        live: a dead letter replayed)."""
        held = self.outboxes
        if outbox is None or not held or outbox == held[-1]:
            return "same"
        return "new" if heard and outbox not in held else "other"

    def _outboxes_after(self, outbox: int | None, numbering: Numbering) -> tuple[int, ...]:
        held = self.outboxes
        if outbox is None or numbering == "other" or (held and held[-1] == outbox):
            return held
        return (*held[1 - OUTBOXES_KEPT :], outbox) if held else (outbox,)

    def with_refused_ahead(
        self, received_at: datetime, ahead_s: float, tolerance_s: float
    ) -> SiteSnapshot:
        """Note a report refused at ``received_at`` for being stamped ``ahead_s`` ahead,
        past the collector's ``tolerance_s``."""
        held = self.refused_ahead
        if held is not None and held[0] >= received_at:
            return self
        return self._evolve(refused_ahead=(received_at, ahead_s, tolerance_s))

    def _stepped_back(self) -> SiteSnapshot:
        """The site without what its agent stamped by its clock before it stepped back
        (readings, battery history, the clock's evidence): times on either side of the
        step cannot be compared. Its meta, state and when it was last heard stay."""
        return replace(
            self,
            power={},
            links={},
            host=None,
            room=None,
            power_history={},
            last_report_at=None,
            arrivals=(),
            last_seq=None,
        )

    def _evolve(self, **changes: Any) -> SiteSnapshot:
        """``replace(self, **changes)`` for changes already in the form ``__post_init__``
        leaves them (read-only mappings, plain-tuple samples, ``last_report_at`` set):
        the collector folds every report with it, and ``replace`` (a new ``__init__``,
        every check of ``__post_init__`` again) was half the fold's time."""
        new = object.__new__(SiteSnapshot)
        for name in _FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new

    def with_meta(self, meta: Meta) -> SiteSnapshot:
        if self.meta is not None and meta.at < self.meta.at:
            return self
        # the newest report's interval wins over the declared one
        reported = self.interval_s if self.last_report_at is not None else None
        interval = reported if reported is not None else meta.interval_s
        return replace(self, meta=meta, site_kind=meta.site_kind, interval_s=interval)

    def with_state(self, state: State) -> SiteSnapshot:
        """Online/offline as the broker last delivered it, without comparing times.

        The Last Will is stamped when the agent connected, before its birth message,
        yet it fires later; the broker delivers one topic's messages in order.
        """
        return replace(self, online=state.state == "online", state_at=state.at)


_FIELDS = tuple(f.name for f in fields(SiteSnapshot))
