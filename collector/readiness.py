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
from collector.state import SiteStates
from contract.wire import Reason, Status
from rules import Policy, SiteSnapshot, effective, evaluate, texts, to_status
from rules.hysteresis import Held, debounce

RiskLevelOf = Callable[[str], int]

# A site's evaluations are ordered by one of these locks (sites share them: one lock per
# site would grow with the fleet, and three threads rarely meet on the same stripe).
_STRIPES = 64


def _no_risk(_province: str) -> int:
    return 0


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
        risk_level: RiskLevelOf = _no_risk,
        listed: Callable[[str], bool] | None = None,
    ) -> None:
        self.states = states
        self.policy = policy
        self.risk_level = risk_level
        self.listed = listed  # the inventory's membership test, when one is loaded
        self._statuses: dict[str, Status] = {}
        self._held: dict[str, Held] = {}
        self._json: dict[str, bytes] = {}
        self._due: list[tuple[datetime, str]] = []
        self._silence_check: dict[str, datetime] = {}  # each site's one pending look
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
        hold_s = effective(
            self.policy,
            snapshot.site_kind or "station",
            snapshot.site_class,
            risk,
            hardened=snapshot.hardened,
        ).hold_s
        with self._lock:
            held, due_in = debounce(self._held.get(site), evaluation, hold_s, now)
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
            self._schedule(snapshot, now)
            if due_in is not None:
                heapq.heappush(self._due, (now + timedelta(seconds=due_in + 0.05), site))
        pending = held.pending.verdict if held.pending is not None else None
        points = verdict_points(snapshot, status, now, findings=changed, pending=pending)
        return status, changed, points

    def due(self, now: datetime) -> list[str]:
        """Sites whose silence may have changed their verdict by ``now``."""
        sites: set[str] = set()
        with self._lock:
            while self._due and self._due[0][0] <= now:
                at, site = heapq.heappop(self._due)
                if self._silence_check.get(site) == at:
                    del self._silence_check[site]
                sites.add(site)
        return sorted(sites)

    def _schedule(self, snapshot: SiteSnapshot, now: datetime) -> None:
        """Look again when the site would turn stale, or else offline; once offline, every
        ``offline_after_s`` (a dark site stays in the history the dashboards read).

        One entry per site, not one per report: a site that keeps reporting is looked
        at once per silence window (and finds itself fresh), so the heap stays the
        size of the fleet on the ingest path.
        """
        if snapshot.site in self._silence_check:
            return
        at = self._silence_due(snapshot, now)
        self._silence_check[snapshot.site] = at
        heapq.heappush(self._due, (at, snapshot.site))

    def _silence_due(self, snapshot: SiteSnapshot, now: datetime) -> datetime:
        """When the site must be looked at again for its silence (stale, then offline)."""
        fresh = self.policy.freshness
        interval = snapshot.interval_s or fresh.default_interval_s
        last = snapshot.last_report_at or now
        later = [
            at
            for after_s in (interval * fresh.stale_intervals, fresh.offline_after_s)
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
            natural = None if since is None else self._silence_due(snapshot, since)
            waiting = held is not None and held.pending is not None
            look = not_before if natural is None or waiting else max(natural, not_before)
            self._silence_check[site] = look
            heapq.heappush(self._due, (look, site))


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
