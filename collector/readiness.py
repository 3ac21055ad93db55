"""Verdicts: re-evaluate a site when a message changes it, or when it falls silent.

The rules are pure (``rules.evaluate``); this module is their I/O edge. It keeps
the latest :class:`Status` of every site (and its JSON, ready to serve), turns
evaluations into InfluxDB points, and knows when each silent site must be
looked at again, so a site that stops talking turns ``unknown`` on a timer,
without any message arriving.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from collector.history import STATE_CODES, VERDICT_CODES, one_line
from collector.line_protocol import Point
from collector.points import site_point_tags, time_ns
from collector.risk import RiskLevelOf, no_risk
from collector.state import SiteStates
from contract.wire import Reason, Status
from rules import Policy, SiteSnapshot, evaluate, freshness, site_thresholds, texts, to_status
from rules.hysteresis import Held, debounce
from rules.policy import FreshnessPolicy

# A site's evaluations are ordered by one of these locks (sites share them: one lock per
# site would grow with the fleet, and three threads rarely meet on the same stripe).
_STRIPES = 64


# A site that reports but that the expected fleet does not list: said, not judged.
_UNLISTED = Reason(
    rule="inventory",
    code="not_in_inventory",
    severity="warning",
    text_vi=texts.render("not_in_inventory", "vi", {}, {}),
    text_en=texts.render("not_in_inventory", "en", {}, {}),
)


def _signature(status: Status) -> tuple[object, ...]:
    """What makes a verdict different for the people watching it."""
    return (
        status.verdict,
        status.station_state,
        status.risk_level,
        tuple((r.code, r.severity) for r in status.reasons),
    )


class Verdicts:
    """The latest verdict of every site. Thread-safe.

    The MQTT thread, the sweeper and the API all judge sites. A site's evaluation
    (read its snapshot, run the rules, keep the result) holds that site's lock
    from start to end, and runs at a time no earlier than the last one's, so an
    evaluation of older data or at an older time can never land on top of a
    newer verdict or hysteresis state.
    """

    def __init__(
        self,
        states: SiteStates,
        policy: Policy,
        *,
        risk_level: RiskLevelOf = no_risk,
        listed: Callable[[str], bool] | None = None,
    ) -> None:
        self.states = states
        self.policy = policy
        self.risk_level = risk_level
        self.listed = listed  # the inventory's membership test, when one is loaded
        self._statuses: dict[str, Status] = {}
        self._held: dict[str, Held] = {}
        self._json: dict[str, bytes] = {}
        self._holds: list[tuple[datetime, str]] = []  # when a held change's hold ends
        # When each site's silence next changes its verdict (its newest report's stale,
        # then offline, time), and a heap of looks that may be out of date: a report
        # moves the site's look later without a push (the old entry, when it comes,
        # pushes the new time), a look brought forward is pushed.
        self._silence_check: dict[str, datetime] = {}
        self._silence: list[tuple[datetime, str]] = []
        self._not_before: datetime | None = None  # a restart's grace (restore)
        self._judged_at: dict[str, datetime] = {}  # each site's last evaluation time
        self._changed: set[str] = set()  # judged since collector/state_store.py last saved
        self._lock = threading.Lock()  # the dicts above, shared by every site
        self._serial = [threading.RLock() for _ in range(_STRIPES)]

    def serial(self, site: str) -> AbstractContextManager[bool]:
        """The (reentrant) lock that orders a site's evaluations. A caller holds it over
        what it does with one (publishing the status) so those come out in order too."""
        return self._serial[hash(site) % _STRIPES]

    def evaluate(self, site: str, now: datetime) -> tuple[Status, bool, list[Point]] | None:
        """Judge one site now: (status shown, changed since last time, points to write).

        A changed verdict is shown only once it has held for its rules' ``hold_s``
        (rules/hysteresis.py); until then the previous one stays and the site is
        looked at again when the hold ends.
        """
        with self.serial(site):
            return self._evaluate(site, now)

    def _evaluate(self, site: str, now: datetime) -> tuple[Status, bool, list[Point]] | None:
        snapshot = self.states.get(site)  # read under the site's lock: the newest
        if snapshot is None:
            return None
        last = self._judged_at.get(site)
        if last is not None and now < last:
            now = last  # a caller that read the clock before another: judged no earlier
        risk = self.risk_level(snapshot.province)
        evaluation = evaluate(snapshot, self.policy, now, risk_level=risk)
        thresholds = site_thresholds(snapshot, self.policy, risk)
        with self._lock:
            held, due_in = debounce(self._held.get(site), evaluation, thresholds.hold_s, now)
            self._held[site] = held
            self._changed.add(site)
            status = to_status(held.shown, snapshot)
            if self.listed is not None and not self.listed(site):
                status = status.model_copy(update={"reasons": (*status.reasons, _UNLISTED)})
            previous = self._statuses.get(site)
            changed = previous is None or _signature(previous) != _signature(status)
            self._statuses[site] = status
            self._judged_at[site] = now
            self._json[site] = status.model_dump_json(exclude_none=True).encode()
            self._schedule(snapshot, thresholds.freshness, now)
            if due_in is not None:
                heapq.heappush(self._holds, (now + timedelta(seconds=due_in + 0.05), site))
        pending = held.pending.verdict if held.pending is not None else None
        points = verdict_points(snapshot, status, now, findings=changed, pending=pending)
        return status, changed, points

    def due(self, now: datetime) -> list[str]:
        """Sites whose silence may have changed their verdict by ``now``, and sites whose
        held change has waited out its hold."""
        sites: set[str] = set()
        with self._lock:
            while self._holds and self._holds[0][0] <= now:
                sites.add(heapq.heappop(self._holds)[1])
            while self._silence and self._silence[0][0] <= now:
                _, site = heapq.heappop(self._silence)
                look = self._silence_check.get(site)
                if look is None:
                    continue  # forgotten, or already looked at
                if look <= now:
                    del self._silence_check[site]
                    sites.add(site)
                else:  # the site reported since: its look moved later
                    heapq.heappush(self._silence, (look, site))
        return sorted(sites)

    def _schedule(self, snapshot: SiteSnapshot, fresh: FreshnessPolicy, now: datetime) -> None:
        """Look at the site again when its silence would change its verdict: when its
        newest report turns stale, then offline (by the window the rules judge it by:
        its kind's, class's and risk level's); once offline, every ``offline_after_s``
        (a dark site stays in the history the dashboards read).

        Every judgement moves the look: a site that keeps reporting is never judged for
        its silence (its reports judge it), and a raised risk level that shortens the
        window brings the look forward. One heap entry per site on the ingest path: a
        look moved later is pushed when its old entry comes up (``due``).
        """
        site = snapshot.site
        at = self._silence_due(snapshot, fresh, now)
        if self._not_before is not None and at < self._not_before:
            at = self._not_before
        looking = self._silence_check.get(site)
        self._silence_check[site] = at
        if looking is None or at < looking:
            heapq.heappush(self._silence, (at, site))

    @staticmethod
    def _silence_due(snapshot: SiteSnapshot, fresh: FreshnessPolicy, now: datetime) -> datetime:
        """When the site must be looked at again for its silence (stale, then offline),
        by the collector's clock: a site judged in its own clock, behind, turns stale that
        much later (rules/freshness.py, ``clock_corrected``); a site whose clock is ahead is
        counted from when its newest report was heard (``freshness.newest_taken_by``)."""
        last = freshness.newest_taken_by(snapshot) or now
        behind = snapshot.clock_correction_s
        if behind is not None:
            last += timedelta(seconds=behind)
        later = [
            at
            for after_s in freshness.silence_changes_after(snapshot, fresh)
            if (at := last + timedelta(seconds=after_s + 0.5)) > now
        ]
        # Once offline, again every offline_after_s: a dark site stays in the history.
        return min(later) if later else now + timedelta(seconds=fresh.offline_after_s)

    def get(self, site: str) -> Status | None:
        return self._statuses.get(site)

    def json_of(self, site: str) -> bytes | None:
        return self._json.get(site)

    def select(
        self,
        *,
        province: str | None = None,
        kind: str | None = None,
        verdict: str | None = None,
    ) -> list[Status]:
        with self._lock:
            statuses = list(self._statuses.values())
        return [
            s
            for s in statuses
            if (province is None or s.province == province)
            and (kind is None or s.site_kind == kind)
            and (verdict is None or s.verdict == verdict)
        ]

    def select_json(self, sites: Iterable[Status]) -> bytes:
        """A JSON array of the given sites' statuses, from the cached encodings."""
        parts = [self._json[s.site] for s in sites if s.site in self._json]
        return b"[" + b",".join(parts) + b"]"

    def __len__(self) -> int:
        return len(self._statuses)

    def forget(self, site: str) -> None:
        """Drop a site the collector no longer carries (collector/admission.py: expiry)."""
        with self._lock:
            self._statuses.pop(site, None)
            self._held.pop(site, None)
            self._json.pop(site, None)
            self._silence_check.pop(site, None)
            self._judged_at.pop(site, None)
            self._changed.add(site)

    # --- across a restart (collector/state_store.py) ---------------------------------

    def take_changed(self) -> set[str]:
        """The sites judged (or forgotten) since the last call."""
        with self._lock:
            changed, self._changed = self._changed, set()
        return changed

    def saved_of(self, site: str) -> tuple[Held, bytes] | None:
        """What a restart must bring back of the site's verdict: its hold and its status."""
        with self._lock:
            held, encoded = self._held.get(site), self._json.get(site)
        return None if held is None or encoded is None else (held, encoded)

    def restore(
        self,
        snapshot: SiteSnapshot,
        held: Held | None,
        status: Status | None,
        encoded: bytes | None,
        *,
        now: datetime,
        not_before: datetime,
    ) -> None:
        """Show again what was shown before the restart, and look at the site again in time.

        The look comes when its silence would change its verdict, as if the collector had
        never stopped, but not before ``not_before``: while the collector was down the
        site may have reported, and the broker delivers that only after the restart.
        A change waiting out its hold is looked at as soon as that allows.
        """
        site = snapshot.site
        with self._lock:
            if held is not None:
                self._held[site] = held
            if status is not None and encoded is not None:
                self._statuses[site] = status
                self._json[site] = encoded
                self._judged_at[site] = status.evaluated_at
            # The first moment after the last judgement at which silence changes things:
            # if it passed while the collector was down, look as soon as allowed.
            since = None if status is None else status.evaluated_at
            fresh = site_thresholds(
                snapshot, self.policy, self.risk_level(snapshot.province)
            ).freshness
            natural = None if since is None else self._silence_due(snapshot, fresh, since)
            waiting = held is not None and held.pending is not None
            look = not_before if natural is None or waiting else max(natural, not_before)
            self._silence_check[site] = look
            heapq.heappush(self._silence, (look, site))
            # Until then no judgement looks earlier: what the site sent meanwhile is
            # still queued at the broker.
            if self._not_before is None or not_before > self._not_before:
                self._not_before = not_before


def verdict_points(
    snapshot: SiteSnapshot,
    status: Status,
    at: datetime,
    *,
    findings: bool,
    pending: str | None = None,
) -> list[Point]:
    """A ``readiness`` point per evaluation; ``finding`` points when the verdict changed.

    Tags are the site and what is fixed with it (province, kind, operator): they add no
    series (but one for a site judged before its meta arrived). For the dashboards:
    verdict and station state as codes a state timeline can colour
    (``collector/history.py``), hours of autonomy, time to dark, the name, the reasons
    in Vietnamese on one line, and the coordinates for a map.
    """
    at_ns = time_ns(at)
    meta = snapshot.meta
    tags = site_point_tags(snapshot)
    fields: dict[str, bool | int | float | str | None] = {
        "verdict": status.verdict,
        "verdict_code": VERDICT_CODES[status.verdict],
        "station_state": status.station_state,
        "state_code": STATE_CODES[status.station_state],
        "risk_level": status.risk_level,
        "reasons": len(status.reasons),
        "backup_hours": None if status.backup_hours is None else float(status.backup_hours),
        "dark_in_s": None if status.dark_in_s is None else float(status.dark_in_s),
        "independent_paths_up": status.independent_paths_up,
        "pending_verdict": pending,  # a change waiting out its hold (no flapping)
        "name": one_line(status.name) if status.name else None,
        "reasons_vi": one_line(" • ".join(r.text_vi for r in status.reasons)),
        "latitude": meta.latitude if meta is not None else None,
        "longitude": meta.longitude if meta is not None else None,
    }
    points = [Point.make("readiness", tags, fields, at_ns)]
    if findings:
        for reason in status.reasons:
            points.append(
                Point.make(
                    "finding",
                    {**tags, "rule": reason.rule, "code": reason.code, "severity": reason.severity},
                    {
                        "text_vi": reason.text_vi,
                        "text_en": reason.text_en,
                        "verdict": status.verdict,
                    },
                    at_ns,
                )
            )
    return points
