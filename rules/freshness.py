"""Freshness: a site that stopped reporting, or whose Will fired, is unknown.

Judged by ``last_report_at`` — the newest report ever received — so a report replayed
late from an outbox neither raises a false alarm nor clears a real one. A report
stamped in the future (an agent's clock ahead, within the decoder's tolerance) is fresh,
and counted as taken when it was heard (:func:`newest_taken_by`): its silence is seen
as any site's, not as many minutes late as its clock is ahead. A site whose
reports keep arriving on their interval, each as old, is said to have its clock behind
(``clock_behind``, with how far and the fix): still not vouched for, but not called
silent while it talks (rules/snapshot.py, ``clock_behind_s``). When the collector also
ruled out every queue for those reports (``clock_correction_s``), the site is judged in
its own clock: its age is the time since its newest report in that clock, nearly the
time since it arrived, and its verdict is what its readings say, with ``clock_corrected``
beside it (info: how far behind, the fix; it changes no verdict, and the collector's
``SiteClockWrong`` alert carries it to the NOC). Its silence is then seen as any
site's: its age grows from its last report. A site whose reports are refused because
its agent's clock is ahead of the collector's past the tolerance (a box set to
Vietnam's time as if it were UTC is 7 h ahead) has nothing to judge, yet it is not
silent: while such a report came within its stale window, its reason says so
(``clock_ahead_refused``, how far ahead, the fix) instead of a silence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from contract.wire import Severity
from rules.findings import Finding
from rules.policy import FreshnessPolicy
from rules.snapshot import SiteSnapshot

FreshnessState = Literal["fresh", "stale", "offline", "never"]


@dataclass(frozen=True, slots=True)
class FreshnessResult:
    state: FreshnessState
    age_s: float | None
    findings: tuple[Finding, ...] = ()
    # How far the site's own clock is behind, when it is judged in it (0: in the collector's)
    clock_shift_s: float = 0.0

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"


class _Said(Protocol):
    """A finding or a status's reason: what both say."""

    @property
    def code(self) -> str: ...

    @property
    def numbers(self) -> Mapping[str, float | None]: ...


def corrected_by_s(reasons: Sequence[_Said]) -> float | None:
    """How far the site's times were set right, when it was judged as if its agent's
    clock were right (its first reason, a finding or a status's, ``clock_corrected``)."""
    first = reasons[0] if reasons else None
    if first is None or first.code != "clock_corrected":
        return None
    return first.numbers["behind_s"]


def interval_s(snapshot: SiteSnapshot, policy: FreshnessPolicy) -> float:
    return snapshot.interval_s or policy.default_interval_s


def stale_after_s(snapshot: SiteSnapshot, policy: FreshnessPolicy) -> float:
    return policy.stale_intervals * interval_s(snapshot, policy)


def silence_changes_after(snapshot: SiteSnapshot, policy: FreshnessPolicy) -> tuple[float, float]:
    """The ages of the site's newest report past which its silence changes its verdict:
    stale, then offline (s). Offline never comes before stale: a long reporting interval
    must not make a silent-but-on-schedule site "offline". :func:`check` judges by them;
    the collector looks at a silent site when they pass (collector/readiness.py)."""
    stale_after = stale_after_s(snapshot, policy)
    return stale_after, max(stale_after, policy.offline_after_s)


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else (later - earlier).total_seconds()


def _age(later: datetime, earlier: datetime | None) -> float | None:
    seconds = _seconds(later, earlier)
    return None if seconds is None else max(0.0, seconds)


def newest_taken_by(snapshot: SiteSnapshot) -> datetime | None:
    """When the site's newest report was taken, as far as the collector can vouch: at its
    stamp, but no later than it was heard. An agent whose clock is ahead by less than the
    decoder's tolerance (collector/decode.py: 300 s) stamps its reports in the collector's
    future; counted from the stamp, the site would stay fresh that much longer after its
    last report, ``ready`` for up to 5 min while it is silent. A report heard live cannot
    have been taken after it arrived, so its arrival bounds it (the newest of
    :attr:`SiteSnapshot.arrivals`, when it is that report). A report that was not heard
    live (replayed, restored) keeps its stamp. Both :func:`check` and the collector's
    silence sweep (collector/readiness.py) count a site's silence from it."""
    last = snapshot.last_report_at
    if last is None or not snapshot.arrivals:
        return last
    heard, taken, _ = snapshot.arrivals[-1]
    return heard if taken == last and heard < last else last


def refused_ahead(
    snapshot: SiteSnapshot, now: datetime, within_s: float
) -> tuple[float, float] | None:
    """How far ahead the agent's clock is, and the tolerance it passed, when a report of
    the site was refused for it (collector/decode.py) in the last ``within_s``: the agent
    talks, its clock is wrong."""
    held = snapshot.refused_ahead
    if held is None or (now - held[0]).total_seconds() > within_s:
        return None
    return held[1], held[2]


def check(
    snapshot: SiteSnapshot,
    policy: FreshnessPolicy,
    now: datetime,
    *,
    tightened_at_level: float | None = None,
) -> FreshnessResult:
    """``tightened_at_level``: the risk level, when it shortened the stale window."""
    site = snapshot.site
    last = newest_taken_by(snapshot)
    age = _seconds(now, last)
    stale_after, offline_after = silence_changes_after(snapshot, policy)
    # A clock proven behind (worked out only for a site that looks silent): judged in it.
    shift = None
    if age is not None and age > stale_after and snapshot.online is not False:
        shift = snapshot.clock_correction_s
    site_now = now if shift is None else now - timedelta(seconds=shift)
    if shift is not None:
        age = _seconds(site_now, last)
    numbers: dict[str, float | None] = {
        "age_s": _age(site_now, last),
        "interval_s": interval_s(snapshot, policy),
        "stale_after_s": stale_after,
        "tightened_at_level": tightened_at_level,
    }
    if snapshot.online is False:
        numbers["offline_for_s"] = _age(now, snapshot.state_at)
        finding = Finding("freshness", site, "critical", "agent_offline", numbers, impact="unknown")
        return FreshnessResult("offline", numbers["age_s"], (finding,))
    silent = age is None or age > stale_after
    refused = refused_ahead(snapshot, now, stale_after) if silent else None
    if refused is not None:
        numbers["ahead_s"], numbers["future_tolerance_s"] = refused
    if age is None:
        code = "no_report_yet" if refused is None else "clock_ahead_refused"
        finding = Finding("freshness", site, "warning", code, numbers, impact="unknown")
        return FreshnessResult("never", None, (finding,))
    if age > stale_after:
        offline = age > offline_after
        seen = _age(now, snapshot.last_seen_at)
        numbers["seen_s"] = seen
        # messages still arrive but all are old: an outbox draining its backlog, or, when
        # they keep coming on their interval each as old, the agent's clock behind
        code = "report_backlog" if seen is not None and seen <= stale_after else "no_recent_report"
        behind = snapshot.clock_behind_s if code == "report_backlog" else None
        if behind is not None:
            code = "clock_behind"
            numbers["behind_s"] = behind
        elif refused is not None:  # its live reports refused, stamped ahead: the clock
            code = "clock_ahead_refused"
        severity: Severity = "critical" if offline else "warning"
        finding = Finding("freshness", site, severity, code, numbers, impact="unknown")
        return FreshnessResult("offline" if offline else "stale", age, (finding,))
    findings: tuple[Finding, ...] = ()
    if shift is not None:
        corrected = {"behind_s": shift, "age_s": numbers["age_s"]}
        findings = (Finding("freshness", site, "info", "clock_corrected", corrected),)
        return FreshnessResult("fresh", max(0.0, age), findings, clock_shift_s=shift)
    # How far ahead the agent's clock is: its stamp past its arrival, when it was heard
    # before it was stamped (the same however long ago), else past now.
    stamp = snapshot.last_report_at
    ahead_s = _seconds(stamp, now if last == stamp else last) if stamp is not None else None
    if ahead_s is not None and ahead_s > policy.future_tolerance_s:
        ahead = {"ahead_s": ahead_s, "future_tolerance_s": policy.future_tolerance_s}
        findings = (Finding("freshness", site, "info", "clock_ahead", ahead),)
    return FreshnessResult("fresh", max(0.0, age), findings)
