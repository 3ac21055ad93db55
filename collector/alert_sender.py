"""The alert sender: one long-lived thread from verdicts to Alertmanager.

    a shown verdict changed (service.py ``_judge``) ── notify(site) ──┐
    every ``resend_s``: sites with alerts, off mains, not ready, hardened ┤
                                                                           ▼
    every SYSTEM_EVERY_S: the collector itself (collector/system_watch.py)  ┤
                                                                           ▼
    site_alerts / meeting_alerts (collector/alerts.py, pure) ──► AlertStore (SQLite)
    system_alerts (collector/system_alerts.py, pure) ────────────┘
                                                what each Alertmanager lacks │
                                                                           ▼
                               POST /api/v2/alerts, batched, to every Alertmanager

Changes are gathered for ``batch_delay_s`` and sent in one POST per Alertmanager (up
to ``max_alerts_per_post`` alerts each), so 1 000 sites losing mains at once is one
or two calls, not 1 000. Every ``resend_s`` each firing alert is sent again with
``endsAt`` four resends ahead (as Prometheus does): Alertmanager resolves by itself
what a dead collector stops refreshing. A resolved alert is sent with ``endsAt`` =
when it cleared.

Alertmanager down is not alerts lost: what it has not taken stays in the store (on
disk) and is sent when it answers again, with everything else (it may have restarted
empty); calls are retried with backoff. A collector restart loads the store: alerts
are re-derived from the verdicts as sites are judged again, and a site not judged yet
keeps what it had.

Meeting points of a planned meeting are judged for that meeting here (its duration,
its rehearsal), each through the same hysteresis as the verdicts (rules/hysteresis.py),
so a flapping condition does not page.

The thread never dies: it is the collector's ``alerts`` loop (collector/supervision.py),
so an unexpected error in a cycle is logged once per kind, counted in
``kienco_thread_errors_total{thread="alerts"}``, the sites it was looking at are looked
at again, and the next cycle runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import Counter, Gauge

from collector.acyclic_http import AcyclicClient
from collector.alert_store import AlertStore, AnyAlert, Held
from collector.alerts import (
    SILENT_CODES,
    UNKNOWN_YET_CODES,
    Alert,
    MeetingInfo,
    SiteLinks,
    meeting_alerts,
    site_alerts,
)
from collector.config import AlertsConfig
from collector.inventory import Inventory
from collector.meetings import Meeting, MeetingStore, never_heard
from collector.readiness import Verdicts
from collector.risk import RiskLevelOf
from collector.state import SiteStates, register_only
from collector.supervision import Loop, Supervisor
from collector.system_alerts import SystemAlert
from contract.wire import Status, utc_now
from plumbing.backoff import Backoff
from rules import Policy, SiteSnapshot, effective, evaluate, to_status
from rules.compliance import StationCompliance, station_compliance
from rules.hysteresis import Held as HeldVerdict
from rules.hysteresis import debounce
from rules.rehearsal import Rehearsal, for_meeting

log = logging.getLogger("kienco.alerts")

MEETINGS_REFRESH_S = 10.0  # how stale the list of planned meetings may be
SYSTEM_EVERY_S = 5.0  # the collector's alerts about itself are looked at this often
ENDS_AFTER_RESENDS = 4  # a firing alert says it ends this many resends ahead


class AlertMetrics:
    def __init__(self, registry: Any, urls: Sequence[str]) -> None:
        r = registry
        self.firing = Gauge(
            "kienco_alerts_firing", "Alerts firing (one per root cause per site)", registry=r
        )
        self.pending = Gauge(
            "kienco_alerts_pending",
            "Alert changes an Alertmanager has not taken yet (kept on disk), summed over them",
            registry=r,
        )
        self.changed = Counter(
            "kienco_alerts_changed", "Alerts raised, updated or resolved", registry=r
        )
        self.posts = Counter(
            "kienco_alertmanager_posts",
            "POST /api/v2/alerts calls: ok, failed (kept, retried), rejected (400)",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "failed", "rejected"):
            self.posts.labels(outcome)
        self.delivered = Counter(
            "kienco_alerts_delivered", "Alerts an Alertmanager took (per POST)", registry=r
        )
        self.up = Gauge(
            "kienco_alertmanager_up", "1 when the last call to it succeeded", ["url"], registry=r
        )
        for url in urls:
            self.up.labels(url).set(0)


class _Target:
    """One Alertmanager: its client, and when it may be tried again after a failure."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.client = AcyclicClient(base_url=url, timeout=timeout_s)
        self.backoff = Backoff(0.5, 30.0)
        self.retry_at = 0.0  # monotonic
        self.down = False


class AlertSender:
    """``start()``, ``notify(site)`` on every shown verdict change, ``stop()``."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        verdicts: Verdicts,
        states: SiteStates,
        meetings: MeetingStore,
        policy: Policy,
        inventory: Inventory,
        risk_of: RiskLevelOf,
        registry: Any,
        supervisor: Supervisor,
        data_dir: Path,
        clock: Callable[[], datetime] = utc_now,
        listening: Callable[[], bool] = lambda: True,
        system: Callable[[datetime], list[SystemAlert]] | None = None,
    ) -> None:
        self.config = config
        self.system = system  # the collector's alerts about itself, as they stand
        self.listening = listening  # False while the collector hears nothing (broker down)
        self.verdicts = verdicts
        self.states = states
        self.meetings = meetings
        self.policy = policy
        self.inventory = inventory
        self.risk_of = risk_of
        self.clock = clock
        self.links = SiteLinks(config.external_url, config.site_path)
        self.metrics = AlertMetrics(registry, config.alertmanagers)
        self.store = AlertStore(data_dir / "alerts.sqlite", config.alertmanagers)
        self._targets = [_Target(url, config.timeout_s) for url in config.alertmanagers]
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._held: dict[tuple[str, str], HeldVerdict] = {}  # (meeting, point) hysteresis
        self._dark_at: dict[str, datetime] = {}  # sites off mains: dark by their figures at
        self._meetings: list[Meeting] = []
        self._meetings_at = -MEETINGS_REFRESH_S
        # A site the collector has not judged since it started keeps its alerts this long.
        self._grace_until = clock() + timedelta(seconds=policy.freshness.offline_after_s)
        self._next_tick = time.monotonic()  # at start: send what the store kept
        # Its longest quiet stretch: one resend period, then a POST timing out per target.
        quiet_s = config.resend_s + config.timeout_s * len(self._targets)
        self.loop: Loop = supervisor.loop(
            "alerts", every_s=config.resend_s, stuck_after_s=max(30.0, 3 * quiet_s)
        )
        self._thread = supervisor.spawn(self.loop, self._step, daemon=True)
        self._update_gauges()

    # --- lifecycle

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        for target in self._targets:
            target.client.close()
        self.store.close()

    def notify(self, site: str) -> None:
        """A site's shown verdict changed: look at its alerts now. Cheap, any thread."""
        with self._lock:
            self._dirty.add(site)
        self._wake.set()

    # --- the loop

    def _step(self) -> bool:
        """Wait for a change, a resend or a retry, then one cycle; False once stopping.

        A step of the ``alerts`` loop: what it raises is recorded by the supervisor, and
        the next step runs."""
        wait = self._next_tick - time.monotonic()
        if self.system is not None:
            wait = min(wait, SYSTEM_EVERY_S)
        retry = [t.retry_at for t in self._targets if t.down]
        if retry and self.store.pending_count():
            wait = min(wait, min(retry) - time.monotonic())
        if self._wake.wait(max(0.0, wait)):
            if self._stopping.is_set():
                return False
            self._stopping.wait(self.config.batch_delay_s)  # gather a burst into one POST
            self._wake.clear()
        if self._stopping.is_set():
            return False
        self.loop.beat()
        tick = time.monotonic() >= self._next_tick
        if tick:
            self._next_tick = time.monotonic() + self.config.resend_s
        self._cycle(tick)
        return True

    def _cycle(self, tick: bool) -> None:
        now = self.clock()
        with self._lock:
            sites, self._dirty = self._dirty, set()
        try:
            if tick:
                sites |= self._watched_sites()
            changes: list[tuple[Sequence[AnyAlert], Sequence[AnyAlert]]] = [
                self._site_change(site, now) for site in sorted(sites)
            ]
            changes.append(self._meeting_change(now))
            if self.system is not None:
                changes.append((self.store.system_alerts(), self.system(now)))
            changed = self.store.replace(changes, now)
        except Exception:
            with self._lock:  # not looked at: look again next cycle, nothing forgotten
                self._dirty |= sites
            raise
        self.metrics.changed.inc(changed)
        self._deliver(now, refresh=tick)
        self._update_gauges()

    def run_once(self, *, tick: bool = True) -> None:
        """One cycle now, on the caller's thread (tests, benchmarks; not with start())."""
        self._cycle(tick)

    def _update_gauges(self) -> None:
        self.metrics.firing.set(self.store.firing_count())
        self.metrics.pending.set(self.store.pending_count())

    # --- deriving

    def _watched_sites(self) -> set[str]:
        """Sites whose alerts can change without their verdict changing: time to dark
        shrinks, fuel burns, a silent site's battery runs out, compliance moves."""
        sites = self.store.sites()
        for status in self.verdicts.select():
            if status.verdict != "ready" or status.dark_in_s is not None:
                sites.add(status.site)
        sites.update(s.site for s in self.states.all() if self._hardened(s))
        return sites

    def _hardened(self, snapshot: SiteSnapshot) -> bool:
        listed = self.inventory.get(snapshot.site)
        hardened = snapshot.hardened or (listed is not None and listed.hardened)
        kind = snapshot.site_kind or (listed.kind if listed else None)
        return hardened and kind in self.policy.compliance.kinds

    def _compliance(self, snapshot: SiteSnapshot, now: datetime) -> StationCompliance | None:
        if not self._hardened(snapshot):
            return None
        return station_compliance(snapshot, self.inventory.get(snapshot.site), self.policy, now)

    def _site_change(self, site: str, now: datetime) -> tuple[list[Alert], list[Alert]]:
        old = [a for a in self.store.site_alerts(site) if a.meeting is None]
        status, snapshot = self.verdicts.get(site), self.states.get(site)
        if status is None or snapshot is None:
            # not judged since the collector started: keep, for a while, what it had
            return old, (old if now < self._grace_until else [])
        last_dark_at = self._last_dark_at(status)
        new = site_alerts(
            status,
            meta=snapshot.meta,
            previous=old,
            policy=self.policy.alerts,
            now=now,
            compliance=self._compliance(snapshot, now),
            listening=self.listening(),
            listed=self.inventory.get(site),
            unheard_long=self._unheard_long(snapshot, now),
            last_dark_at=last_dark_at,
        )
        return old, new

    def _last_dark_at(self, status: Status) -> datetime | None:
        """When the site goes dark by its figures as it last reported them: noted while
        it reports (off mains), kept while it is silent (in memory: a restart forgets it,
        and its power alerts, kept on disk, say what they said)."""
        codes = {r.code for r in status.reasons if r.rule == "freshness"}
        if codes & (SILENT_CODES | UNKNOWN_YET_CODES):
            return self._dark_at.get(status.site)
        if status.dark_in_s is None:
            self._dark_at.pop(status.site, None)
            return None
        at = status.evaluated_at + timedelta(seconds=status.dark_in_s)
        self._dark_at[status.site] = at
        return at

    def _unheard_long(self, snapshot: SiteSnapshot, now: datetime) -> bool:
        """A site whose agent spoke (its meta, its birth) but never reported has been quiet
        ``offline_after_s`` since the collector first heard of it (``SiteStates.heard_at``,
        saved across a restart by collector/state_store.py) and since the collector
        started (a retained meta handed out at start is no news of the site: the window
        is counted from the start, as for the never-heard points of a meeting). A site
        known only from the register (its inventory meta) has never spoken: it is the
        compliance report's 'missing', not a page each."""
        if now < self._grace_until:
            return False
        if register_only(snapshot):
            return False
        heard = self.states.heard_at(snapshot.site)
        window = timedelta(seconds=self.policy.freshness.offline_after_s)
        return heard is not None and now - heard >= window

    def _watched_meetings(self, now: datetime) -> list[Meeting]:
        if time.monotonic() - self._meetings_at >= MEETINGS_REFRESH_S:
            self._meetings = self.meetings.all()
            self._meetings_at = time.monotonic()
        within = self.policy.alerts.meeting_at_risk_within_h
        return [m for m in self._meetings if _info(m).watched(now, within)]

    def _meeting_change(self, now: datetime) -> tuple[list[Alert], list[Alert]]:
        old = [a for a in self.store.site_alerts() if a.meeting is not None]
        new: list[Alert] = []
        listening = self.listening()
        # Since its start the collector has had the time to hear every point that talks.
        settled = now >= self._grace_until
        watched = self._watched_meetings(now)
        for meeting in watched:
            info = _info(meeting)
            rehearsals = self.meetings.latest_rehearsals(meeting.points)
            for site in meeting.points:
                status = self._point_for(meeting, site, rehearsals.get(site), now)
                previous = [a for a in old if a.site == site and a.meeting == meeting.id]
                snapshot = self.states.get(site)
                meta = snapshot.meta if snapshot is not None else None
                new += meeting_alerts(
                    info,
                    status,
                    meta=meta,
                    previous=previous,
                    now=now,
                    listening=listening,
                    settled=settled,
                    listed=self.inventory.get(site),
                )
        ids = {m.id for m in watched}
        self._held = {k: v for k, v in self._held.items() if k[0] in ids}
        return old, new

    def _never_heard(self, site: str, meeting: Meeting) -> SiteSnapshot:
        """A point never heard of, under the province its meeting names, else the one the
        register lists it in: its MeetingAtRisk goes to that province's IT (a meeting
        planned by its points names none, and 'unknown' is nobody's route)."""
        snapshot = never_heard(site, meeting)
        listed = self.inventory.get(site)
        if meeting.province is None and listed is not None:
            snapshot = SiteSnapshot(site=site, province=listed.province)
        return snapshot

    def _point_for(
        self, meeting: Meeting, site: str, rehearsal: Rehearsal | None, now: datetime
    ) -> Status:
        """The point judged for this meeting, as shown after its hold (no flapping); one
        never heard of as the meeting's page judges it (no report yet)."""
        snapshot = self.states.get(site) or self._never_heard(site, meeting)
        risk = self.risk_of(snapshot.province)
        policy = self.policy
        evaluation = evaluate(
            snapshot,
            policy,
            now,
            risk_level=risk,
            meeting_duration_s=meeting.duration_s,
            # as the meeting's page judges it (collector/meetings.py): the need runs to
            # the meeting's end, from its start on mains, from now on generator or battery
            meeting_starts_at=meeting.starts_at,
        )
        evaluation = for_meeting(
            evaluation,
            rehearsal,
            now=now,
            starts_at=meeting.starts_at,
            max_age_s=policy.meeting.rehearsal_max_age_s,
        )
        thresholds = effective(
            policy,
            snapshot.site_kind or "meeting_point",
            snapshot.site_class,
            risk,
            hardened=snapshot.hardened,
        )
        held, _ = debounce(self._held.get((meeting.id, site)), evaluation, thresholds.hold_s, now)
        self._held[(meeting.id, site)] = held
        return to_status(held.shown, snapshot)

    # --- delivering

    def _payload(self, held: Held, now: datetime) -> dict[str, object]:
        alert = held.alert
        if held.resolved_at is not None:
            ends = held.resolved_at
        else:
            ends = now + timedelta(seconds=ENDS_AFTER_RESENDS * self.config.resend_s)
        ends = max(ends, alert.started_at + timedelta(milliseconds=1))  # Alertmanager's rule
        url = alert.link(self.links)
        return {
            "labels": alert.labels,
            "annotations": alert.annotations(url),
            "startsAt": alert.started_at.isoformat(),
            "endsAt": ends.isoformat(),
            "generatorURL": url,
        }

    def _deliver(self, now: datetime, *, refresh: bool) -> None:
        firing = {a.key for a in self.store.firing()} if refresh else set()
        for target in self._targets:
            if target.down and time.monotonic() < target.retry_at:
                continue
            keys = sorted(self.store.pending[target.url] | firing)
            if not keys:
                continue
            size = self.config.max_alerts_per_post
            for start in range(0, len(keys), size):
                chunk = keys[start : start + size]
                held = [h for k in chunk if (h := self.store.get(k)) is not None]
                if not self._post(target, [self._payload(h, now) for h in held]):
                    break
                self.store.delivered(target.url, chunk)

    def _post(self, target: _Target, alerts: list[dict[str, object]]) -> bool:
        """One POST; True when Alertmanager took it (or refused it for good: 400)."""
        try:
            response = target.client.post("/api/v2/alerts", json=alerts)
        except httpx.HTTPError as exc:
            return self._failed(target, f"{type(exc).__name__}: {exc}")
        if response.status_code == 400:
            # Alertmanager kept the valid ones; resending the rest would fail the same way.
            self.metrics.posts.labels("rejected").inc()
            log.error("Alertmanager %s refused alerts: %s", target.url, response.text[:500])
            return True
        if response.status_code >= 300:
            return self._failed(target, f"HTTP {response.status_code}: {response.text[:200]}")
        self.metrics.posts.labels("ok").inc()
        self.metrics.delivered.inc(len(alerts))
        self.metrics.up.labels(target.url).set(1)
        if target.down:
            log.warning("Alertmanager %s is back", target.url)
            target.down = False
            target.backoff.reset()
        return True

    def _failed(self, target: _Target, why: str) -> bool:
        self.metrics.posts.labels("failed").inc()
        self.metrics.up.labels(target.url).set(0)
        if not target.down:
            log.warning("Alertmanager %s not reachable (%s); alerts kept", target.url, why)
            target.down = True
        # It may come back empty (restarted): everything it should hold goes again.
        self.store.resend_all(target.url)
        target.retry_at = time.monotonic() + target.backoff.next()
        return False


def _info(meeting: Meeting) -> MeetingInfo:
    return MeetingInfo(meeting.id, meeting.title, meeting.starts_at, meeting.duration_s)
