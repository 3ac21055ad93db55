"""Alerts: one per root cause per site, from the verdicts as shown. Pure: no I/O, no clock.

The collector turns each site's shown status (after hysteresis, collector/readiness.py)
into the alerts that should be firing now; ``collector/alert_sender.py`` keeps them,
sends them to Alertmanager, re-sends them while they last and resolves the rest.

==========================  ========  ============  ===========================================
alert                       severity  cause         fires while
==========================  ========  ============  ===========================================
SiteOnBattery               warning   power         off mains, on battery, time left above the
                                                    policy's ``alerts.dark_soon_below_h``
SiteDarkSoon                critical  power         off mains with less than that left now (its
                                                    time to dark less the time since it was
                                                    judged: battery, or a generator short of
                                                    fuel); clears only
                                                    ``dark_soon_clear_pct`` above it
SiteDark                    critical  power         battery depleted, or silent past the time
                                                    its last figures gave it
TransportLost               critical  transport     every path down: one alert, not one per path
PathLost                    warning   transport     some paths down, others up: one per site
SiteSilent                  warning   silence       stale (or its reports refused, stamped
                                                    ahead: ``clock_ahead_refused``), or the
                                                    agent's Will fired, and neither power
                                                    nor transport explains it; or its agent
                                                    announced itself (meta, birth) and never
                                                    reported, quiet ``offline_after_s`` since
                                                    first heard of and since the collector
                                                    started (the inventory's word is not its
                                                    agent's: a listed site never heard is
                                                    compliance's 'missing')
MeetingPointNotReady        warning   its reason's  a meeting point ``not_ready`` for a reason
                                                    no other alert of the site says already
MeetingAtRisk               critical  its reason's  a point of a planned meeting (watched from
                                                    ``meeting_at_risk_within_h`` before it to
                                                    its end) ``not_ready`` or silent for it,
                                                    or never heard from
HardenedStationNonCompliant warning   compliance    a hardened station failing a criterion
                                                    other than silence (rules/compliance.py)
SiteClockWrong              warning   clock         the agent's clock proven behind (the site
                                                    judged as if it were right:
                                                    ``clock_corrected``) or ahead past the
                                                    policy's tolerance (``clock_ahead``): its
                                                    verdict holds, its history is misdated
==========================  ========  ============  ===========================================

A site whose state is not known (no report since the collector started) keeps the
alerts it had: nothing is resolved for lack of news. A silent site keeps them too, their
summary and description saying how old their figures are; ``SiteOnBattery`` whose time
left by those figures falls under the line becomes ``SiteDarkSoon``, and a power alert
whose time has run out ``SiteDark`` ("presumed"). While the
collector itself hears nothing (its broker connection is down), silence is its own:
no site is said silent, and each keeps what it had.

Labels are ``alertname, severity, province, site, kind, operator, cause`` (and
``meeting`` on MeetingAtRisk); ``kind`` and ``operator`` are the meta's, or the
register's (the inventory) where the meta has not said, ``unknown`` only where neither
knows. Each is stable for the alert's life, so its Alertmanager fingerprint is: a firing
alert keeps the labels it started with (a meta arriving after the first report changes
the next alert's, not this one's: no second page, no false "resolved").
Annotations carry the texts, in Vietnamese (``summary``, ``description``) and English
(``summary_en``, ``description_en``), with the numbers, and the link to the site's page
(``site_url``). Site names and reason texts come from the field: they pass through
``plumbing.untrusted.one_line``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from contract.wire import Meta, Reason, Severity, SiteIdentity, Status, UtcTime
from plumbing.untrusted import one_line
from rules.alert_policy import AlertPolicy
from rules.compliance import StationCompliance

AlertName = Literal[
    "SiteOnBattery",
    "SiteDarkSoon",
    "SiteDark",
    "TransportLost",
    "PathLost",
    "SiteSilent",
    "MeetingPointNotReady",
    "MeetingAtRisk",
    "HardenedStationNonCompliant",
    "SiteClockWrong",
]
Cause = Literal[
    "power", "transport", "silence", "link_quality", "room", "rehearsal", "compliance", "clock"
]

SEVERITY: Mapping[AlertName, Severity] = MappingProxyType(
    {
        "SiteOnBattery": "warning",
        "SiteDarkSoon": "critical",
        "SiteDark": "critical",
        "TransportLost": "critical",
        "PathLost": "warning",
        "SiteSilent": "warning",
        "MeetingPointNotReady": "warning",
        "MeetingAtRisk": "critical",
        "HardenedStationNonCompliant": "warning",
        "SiteClockWrong": "warning",
    }
)
POWER_ALERTS: frozenset[AlertName] = frozenset({"SiteOnBattery", "SiteDarkSoon", "SiteDark"})
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# What the site says is not to be vouched for: its alert is SiteSilent, with the reason's
# text (an agent whose clock is behind still talks: its SiteSilent says that and the fix).
SILENT_CODES = frozenset(
    {"no_recent_report", "report_backlog", "clock_behind", "clock_ahead_refused", "agent_offline"}
)
UNKNOWN_YET_CODES = frozenset({"no_report_yet"})
# The agent's clock is wrong, and its verdict holds all the same: SiteClockWrong.
CLOCK_CODES = frozenset({"clock_corrected", "clock_ahead"})
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

# The words around the reasons' own texts (rules/texts.py says the reasons).
_WORDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        # {at}: when, by those figures, in Vietnam time: it does not age between reports
        # as the text's "… left" does (the sender resends between judgements)
        "dark_soon": ("sắp mất nguồn, lúc {at}: {text}", "going dark soon, at {at}: {text}"),
        "presumed_dark": (
            "không còn báo cáo; theo số liệu cuối, đã hết điện lúc {at}",
            "no reports; by its last figures it ran out of power at {at}",
        ),
        "runs_out": (
            "sắp mất nguồn: không còn báo cáo; theo số liệu cuối, sẽ hết điện lúc {at}",
            "going dark soon: no reports; by its last figures it runs out of power at {at}",
        ),
        "as_of": (
            "{text} (số liệu lúc {at}, trạm không còn báo cáo)",
            "{text} (as of {at}; the site stopped reporting)",
        ),
        "not_ready": ("điểm cầu chưa sẵn sàng: {text}", "meeting point not ready: {text}"),
        "at_risk": (
            "cuộc họp «{title}» lúc {at}: điểm cầu không bảo đảm được — {text}",
            "meeting «{title}» at {at}: this point will not hold — {text}",
        ),
        "non_compliant": (
            "trạm kiên cố không đạt chuẩn: {text}",
            "hardened station not compliant: {text}",
        ),
    }
)


def local_time(at: datetime) -> str:
    """A UTC time as people in Vietnam read it on a phone: ``14:20 07/09``."""
    return at.astimezone(LOCAL_TZ).strftime("%H:%M %d/%m")


class AlertKey:
    """An alert's identity: its labels, as Alertmanager fingerprints them."""

    @property
    def labels(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return "\x1f".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


class Alert(AlertKey, BaseModel):
    """One alert that should be firing: what it is about, its texts, since when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: AlertName
    site: str
    province: str
    kind: str
    operator: str
    cause: Cause
    meeting: str | None = None
    site_name: str | None = None
    summary_vi: str
    summary_en: str
    details_vi: tuple[str, ...] = ()
    details_en: tuple[str, ...] = ()
    started_at: UtcTime
    dark_at: UtcTime | None = None  # power alerts: when the site goes (went) dark
    as_of: UtcTime | None = None  # carried while silent: the figures are this old

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.name]

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            "alertname": self.name,
            "severity": self.severity,
            "province": self.province,
            "site": self.site,
            "kind": self.kind,
            "operator": self.operator,
            "cause": self.cause,
        }
        if self.meeting is not None:
            labels["meeting"] = self.meeting
        return labels

    @property
    def scope(self) -> str:
        """What the alert store files it under: its site."""
        return self.site

    def link(self, links: SiteLinks) -> str:
        return links.site_url(self.site)

    def same_firing(self, other: Alert) -> bool:
        """Same identity and texts: re-sending it changes nothing Alertmanager shows."""
        return self.key == other.key and self.annotations_base() == other.annotations_base()

    def annotations_base(self) -> tuple[object, ...]:
        return (self.summary_vi, self.summary_en, self.details_vi, self.details_en, self.dark_at)

    def annotations(self, site_url: str) -> dict[str, str]:
        who = self.site_name or self.site
        vi, en = self.summary_vi, self.summary_en
        details_vi = "; ".join(self.details_vi or (vi,))
        details_en = "; ".join(self.details_en or (en,))
        if self.as_of is not None:
            # Both texts: a receiver that shows the description alone must not read a
            # silent site's last figures ("3 h left") as the site's word now.
            at = local_time(self.as_of)
            vi, details_vi = (_WORDS["as_of"][0].format(text=t, at=at) for t in (vi, details_vi))
            en, details_en = (_WORDS["as_of"][1].format(text=t, at=at) for t in (en, details_en))
        notes = {
            "summary": one_line(f"{who}: {vi}"),
            "summary_en": one_line(f"{who}: {en}"),
            "description": one_line(details_vi),
            "description_en": one_line(details_en),
            "site_url": site_url,
        }
        if self.dark_at is not None:
            notes["dark_at"] = self.dark_at.isoformat()
            notes["dark_at_local"] = local_time(self.dark_at)
        return notes


@dataclass(frozen=True, slots=True)
class SiteLinks:
    """Where a site's page is: ``external_url`` + ``site_path`` with ``{site}`` filled."""

    external_url: str
    site_path: str = "/sites/{site}"  # the board's page of the site

    def site_url(self, site: str) -> str:
        return self.external_url.rstrip("/") + self.site_path.format(site=site)

    @property
    def health_url(self) -> str:
        """The collector's own /healthz: what its alerts about itself link to."""
        return self.external_url.rstrip("/") + "/healthz"


def _cause_of(reason: Reason) -> Cause:
    match reason.rule:
        case "freshness" if reason.code in CLOCK_CODES:
            return "clock"
        case "freshness":
            return "silence"
        case "multipath":
            return "transport"
        case "link_quality":
            return "link_quality"
        case "rehearsal":
            return "rehearsal"
        case "meeting" if not reason.code.startswith(("meeting_power", "meeting_ups")):
            return "room"
    return "power"


def _is_power(reason: Reason) -> bool:
    return reason.rule in ("backup_power", "station_state") or (
        reason.rule == "meeting" and reason.code.startswith(("meeting_power", "meeting_ups"))
    )


def _ordered(reasons: Iterable[Reason]) -> list[Reason]:
    return sorted(
        (r for r in reasons if r.severity != "info"), key=lambda r: _SEVERITY_ORDER[r.severity]
    )


@dataclass(frozen=True, slots=True)
class _Site:
    """Who the alert is about: ids from the status, kind and operator from the meta, or,
    where the meta has not said (not arrived yet), from the register (the inventory):
    a routing label is not guessed ``unknown`` when the register knows it."""

    status: Status
    meta: Meta | None
    listed: SiteIdentity | None = None

    @property
    def kind(self) -> str:
        listed = self.listed.kind if self.listed is not None else None
        return self.status.site_kind or listed or "unknown"

    @property
    def operator(self) -> str:
        said = self.meta.operator if self.meta is not None else None
        listed = self.listed.operator if self.listed is not None else None
        return said or listed or "unknown"

    def alert(
        self,
        name: AlertName,
        cause: Cause,
        summary: tuple[str, str],
        details: Sequence[Reason] = (),
        *,
        started_at: datetime,
        **extra: object,
    ) -> Alert:
        status = self.status
        return Alert(
            name=name,
            site=status.site,
            province=status.province,
            kind=self.kind,
            operator=self.operator,
            cause=cause,
            site_name=status.name,
            summary_vi=summary[0],
            summary_en=summary[1],
            details_vi=tuple(r.text_vi for r in details),
            details_en=tuple(r.text_en for r in details),
            started_at=started_at,
            **extra,
        )


def _same_identity(fired: Sequence[Alert], previous: Sequence[Alert]) -> list[Alert]:
    """Each alert still firing keeps the labels it started with (``kind``, ``operator``):
    its Alertmanager identity is its labels, so a meta arriving after the site's first
    report (``operator=unknown`` → ``viettel``) would otherwise resolve the alert and fire
    another for the same condition, two pages and a false "resolved". A new alert of the
    site takes the labels as they are now."""
    started = {(a.name, a.cause, a.meeting): a for a in previous}
    kept = []
    for alert in fired:
        before = started.get((alert.name, alert.cause, alert.meeting))
        if before is not None and (before.kind, before.operator) != (alert.kind, alert.operator):
            alert = alert.model_copy(update={"kind": before.kind, "operator": before.operator})
        kept.append(alert)
    return kept


def _since(previous: Sequence[Alert], name: AlertName, cause: Cause, now: datetime) -> datetime:
    """When the alert began: kept from the one already firing, or now."""
    for alert in previous:
        if alert.name == name and alert.cause == cause and alert.meeting is None:
            return alert.started_at
    return now


def _say(key: str, text: tuple[str, str] = ("", ""), **common: str) -> tuple[str, str]:
    """The words ``key`` around a text given in both languages."""
    vi, en = _WORDS[key]
    return vi.format(text=text[0], **common), en.format(text=text[1], **common)


def left_now_s(status: Status, now: datetime) -> float | None:
    """The time a site off mains has left *now*: its judgement's time to dark less the
    time since that judgement. The sender looks at it every resend, between reports: a
    site judged 'dark in 2 h 10 min' a quarter of an hour ago has 1 h 55 min left, and
    is under a 2 h line now, not at its next report. None when not known."""
    if status.dark_in_s is None:
        return None
    since_s = max(0.0, (now - status.evaluated_at).total_seconds())
    return max(0.0, status.dark_in_s - since_s)


# the site's power is gone (rules/station_state.py), whatever the cause
_DARK_CODES = frozenset({"power_down", "power_down_input_failed", "power_output_off"})


def _power(
    site: _Site, previous: Sequence[Alert], policy: AlertPolicy, now: datetime
) -> list[Alert]:
    status = site.status
    reasons = status.reasons
    down = next((r for r in reasons if r.code in _DARK_CODES), None)
    if down is not None or status.station_state == "down_power":
        text = (down.text_vi, down.text_en) if down else ("mất điện", "power down")
        since = _since(previous, "SiteDark", "power", now)
        return [site.alert("SiteDark", "power", text, [r for r in reasons if _is_power(r)],
                           started_at=since, dark_at=since)]  # fmt: skip
    grid_gone = [
        r
        for r in reasons
        if r.rule == "backup_power" and r.code.startswith(("on_battery", "on_generator"))
    ]
    if not grid_gone:
        return []
    main = grid_gone[0]
    dark_in = status.dark_in_s
    dark_at = None if dark_in is None else status.evaluated_at + timedelta(seconds=dark_in)
    threshold_s = policy.dark_soon_below_h.for_kind(status.site_kind) * 3600
    if any(a.name == "SiteDarkSoon" for a in previous):
        threshold_s *= 1 + policy.dark_soon_clear_pct / 100  # no flapping around the line
    details = [r for r in _ordered(reasons) if _is_power(r)] or [main]
    left_s = left_now_s(status, now)
    if left_s is not None and dark_at is not None and left_s < threshold_s:
        summary = _say("dark_soon", (main.text_vi, main.text_en), at=local_time(dark_at))
        since = _since(previous, "SiteDarkSoon", "power", now)
        return [site.alert("SiteDarkSoon", "power", summary, details, started_at=since,
                           dark_at=dark_at)]  # fmt: skip
    if main.code.startswith("on_generator"):
        return []  # a generator with fuel for longer than the threshold: what it is for
    since = _since(previous, "SiteOnBattery", "power", now)
    return [site.alert("SiteOnBattery", "power", (main.text_vi, main.text_en), details,
                       started_at=since, dark_at=dark_at)]  # fmt: skip


def _transport(site: _Site, previous: Sequence[Alert], now: datetime) -> list[Alert]:
    reasons = site.status.reasons
    lost = next((r for r in reasons if r.code == "path_all_down"), None)
    if lost is not None:
        since = _since(previous, "TransportLost", "transport", now)
        text = (lost.text_vi, lost.text_en)
        return [site.alert("TransportLost", "transport", text, [lost], started_at=since)]
    down = [r for r in reasons if r.code in ("path_down", "path_lossy")]
    if not down:
        return []
    summary = ("; ".join(r.text_vi for r in down), "; ".join(r.text_en for r in down))
    details = down + [r for r in _ordered(reasons) if r.rule == "multipath"]
    since = _since(previous, "PathLost", "transport", now)
    return [site.alert("PathLost", "transport", summary, details, started_at=since)]


def _meeting_point(
    site: _Site, fired: Sequence[Alert], previous: Sequence[Alert], now: datetime
) -> list[Alert]:
    status = site.status
    if status.site_kind != "meeting_point" or status.verdict != "not_ready":
        return []
    said = {a.cause for a in fired}  # what the site's other alerts already say
    if "transport" in said:
        said.add("link_quality")  # a lost path's quality is that path's story
    rest = [r for r in _ordered(status.reasons) if _cause_of(r) not in said]
    if not rest:
        return []
    cause = _cause_of(rest[0])
    summary = _say("not_ready", (rest[0].text_vi, rest[0].text_en))
    since = _since(previous, "MeetingPointNotReady", cause, now)
    return [site.alert("MeetingPointNotReady", cause, summary, rest, started_at=since)]


def _clock(site: _Site, previous: Sequence[Alert], now: datetime) -> list[Alert]:
    wrong = next((r for r in site.status.reasons if r.code in CLOCK_CODES), None)
    if wrong is None:
        return []
    since = _since(previous, "SiteClockWrong", "clock", now)
    text = (wrong.text_vi, wrong.text_en)
    return [site.alert("SiteClockWrong", "clock", text, [wrong], started_at=since)]


def _compliance(
    site: _Site, compliance: StationCompliance | None, previous: Sequence[Alert], now: datetime
) -> list[Alert]:
    if compliance is None or compliance.status != "non_compliant":
        return []
    # silence has its own alert; the inventory's own bookkeeping is not the station's fault
    failed = [c for c in compliance.failed if c.code not in ("silent", "not_in_inventory")]
    if not failed:
        return []
    texts_vi = [c.text("vi") for c in failed]
    texts_en = [c.text("en") for c in failed]
    summary = _say("non_compliant", (texts_vi[0], texts_en[0]))
    since = _since(previous, "HardenedStationNonCompliant", "compliance", now)
    alert = site.alert("HardenedStationNonCompliant", "compliance", summary, started_at=since)
    return [alert.model_copy(update={"details_vi": tuple(texts_vi), "details_en": tuple(texts_en)})]


def _carried(
    previous: Sequence[Alert], status: Status, policy: AlertPolicy, now: datetime
) -> list[Alert]:
    """What a site had, kept while it is silent; a power alert past its time turns SiteDark,
    and ``SiteOnBattery`` whose time left by its last figures falls under the policy's line
    turns ``SiteDarkSoon`` (critical), as it would have had the site kept reporting."""
    kept: list[Alert] = []
    threshold_s = policy.dark_soon_below_h.for_kind(status.site_kind) * 3600
    for alert in previous:
        if alert.name == "SiteSilent":
            continue
        if alert.name == "SiteDark":
            kept.append(alert)
        elif (
            alert.name == "SiteOnBattery"
            and alert.dark_at is not None
            and now < alert.dark_at
            and (alert.dark_at - now).total_seconds() < threshold_s
        ):
            summary_vi, summary_en = _say(
                "dark_soon", (alert.summary_vi, alert.summary_en), at=local_time(alert.dark_at)
            )
            update = {
                "name": "SiteDarkSoon",
                "summary_vi": summary_vi,
                "summary_en": summary_en,
                "started_at": now,
                "as_of": alert.as_of or status.last_report_at or alert.started_at,
            }
            kept.append(alert.model_copy(update=update))
        elif alert.name in POWER_ALERTS and alert.dark_at is not None and alert.dark_at <= now:
            summary = _say("presumed_dark", at=local_time(alert.dark_at))
            update = {
                "name": "SiteDark",
                "summary_vi": summary[0],
                "summary_en": summary[1],
                "details_vi": (*alert.details_vi, summary[0]),
                "details_en": (*alert.details_en, summary[1]),
                "started_at": alert.dark_at,
                "as_of": None,
            }
            kept.append(alert.model_copy(update=update))
        else:
            as_of = alert.as_of or status.last_report_at or alert.started_at
            kept.append(alert.model_copy(update={"as_of": as_of}))
    return kept


def _runs_out(
    site: _Site, previous: Sequence[Alert], dark_at: datetime, policy: AlertPolicy, now: datetime
) -> list[Alert]:
    """A silent site that had no power alert (a generator with fuel for longer than the
    line), by its last figures going dark at ``dark_at``: dark soon, then dark."""
    at = local_time(dark_at)
    if dark_at <= now:
        summary = _say("presumed_dark", at=at)
        return [site.alert("SiteDark", "power", summary, started_at=dark_at, dark_at=dark_at)]
    threshold_s = policy.dark_soon_below_h.for_kind(site.status.site_kind) * 3600
    if (dark_at - now).total_seconds() >= threshold_s:
        return []
    since = _since(previous, "SiteDarkSoon", "power", now)
    summary = _say("runs_out", at=at)
    return [site.alert("SiteDarkSoon", "power", summary, started_at=since, dark_at=dark_at)]


def site_alerts(
    status: Status,
    *,
    meta: Meta | None,
    previous: Sequence[Alert],
    policy: AlertPolicy,
    now: datetime,
    compliance: StationCompliance | None = None,
    listening: bool = True,
    listed: SiteIdentity | None = None,
    unheard_long: bool = False,
    last_dark_at: datetime | None = None,
) -> list[Alert]:
    """The alerts that should fire for one site now, from its shown status.

    ``previous`` are the site's alerts firing until now (not MeetingAtRisk: see
    :func:`meeting_alerts`); they give each alert its start, keep ``SiteDarkSoon``
    from flapping, keep their labels, and are what a silent site keeps. ``listening`` is
    False while the collector hears nothing at all: a silence then says nothing about
    the site. ``listed``: the site as the register lists it (its kind and operator where
    its meta has not said them). ``unheard_long``: a site known (its meta, its birth)
    that has never reported (``no_report_yet``) has been quiet ``offline_after_s`` since
    the collector first knew of it and since the collector started: it is silent, as a
    site that stopped reporting (an agent dead before its first report); before that,
    nothing is said of it (it may be about to report; a restart has not heard it yet).
    ``last_dark_at``: when the site goes dark by its last figures while it reported (off
    mains: a generator with fuel for longer than the line fires nothing then); silent,
    it is ``SiteDarkSoon`` once that time is under the line and ``SiteDark`` once it has
    passed, as a power alert it had would be (:func:`_carried`).
    """
    mine = [a for a in previous if a.meeting is None]
    codes = {r.code for r in status.reasons if r.rule == "freshness"}
    silent_codes = SILENT_CODES | (UNKNOWN_YET_CODES if unheard_long else frozenset())
    if (codes & UNKNOWN_YET_CODES and not unheard_long) or (codes & silent_codes and not listening):
        return list(mine)  # nothing known of it now: keep what was said
    site = _Site(status, meta, listed)
    if codes & silent_codes:
        kept = _carried(mine, status, policy, now)
        if last_dark_at is not None and not any(a.name in POWER_ALERTS for a in kept):
            kept += _runs_out(site, mine, last_dark_at, policy, now)
        if not any(a.name in ("SiteDark", "TransportLost") for a in kept):
            silence = next(r for r in status.reasons if r.code in silent_codes)
            since = _since(mine, "SiteSilent", "silence", now)
            text = (silence.text_vi, silence.text_en)
            kept.append(site.alert("SiteSilent", "silence", text, [silence], started_at=since))
        return _same_identity(kept, mine)
    fired = _power(site, mine, policy, now)
    if not any(a.name == "SiteDark" for a in fired):  # a dark site: its power says it all
        fired += _transport(site, mine, now)
        fired += _meeting_point(site, fired, mine, now)
        fired += _clock(site, mine, now)
    fired += _compliance(site, compliance, mine, now)
    return _same_identity(fired, mine)


@dataclass(frozen=True, slots=True)
class MeetingInfo:
    """A planned meeting, as the alerts need it."""

    id: str
    title: str
    starts_at: datetime
    duration_s: float

    def watched(self, now: datetime, within_h: float) -> bool:
        """From ``within_h`` hours before its start until its end."""
        start, end = self.starts_at, self.starts_at + timedelta(seconds=self.duration_s)
        return start - timedelta(hours=within_h) <= now <= end


def meeting_alerts(
    meeting: MeetingInfo,
    point: Status,
    *,
    meta: Meta | None,
    previous: Sequence[Alert],
    now: datetime,
    listening: bool = True,
    settled: bool = True,
    listed: SiteIdentity | None = None,
) -> list[Alert]:
    """MeetingAtRisk for one point of a watched meeting, judged for *that* meeting.

    A point never heard from (``no_report_yet``) cannot be vouched for any more than a
    silent one: it is at risk once the collector, ``settled``, has been up long enough
    to have heard every point that talks (just after a start, nothing is said of it)."""
    mine = [a for a in previous if a.meeting == meeting.id]
    codes = {r.code for r in point.reasons if r.rule == "freshness"}
    unheard = SILENT_CODES | UNKNOWN_YET_CODES
    if (codes & UNKNOWN_YET_CODES and not settled) or (codes & unheard and not listening):
        return mine
    if codes & unheard:
        reasons = [r for r in point.reasons if r.code in unheard]
    elif point.verdict == "not_ready":
        reasons = _ordered(point.reasons)
    else:
        return []
    if not reasons:
        return []
    cause = _cause_of(reasons[0])
    text = (reasons[0].text_vi, reasons[0].text_en)
    summary = _say("at_risk", text, title=meeting.title, at=local_time(meeting.starts_at))
    since = next((a.started_at for a in mine if a.cause == cause), now)
    alert = _Site(point, meta, listed).alert(
        "MeetingAtRisk", cause, summary, reasons, started_at=since, meeting=meeting.id
    )
    if alert.kind == "unknown":  # never said what it is: a point of a meeting is a meeting
        alert = alert.model_copy(update={"kind": "meeting_point"})  # point (its IT's route)
    return _same_identity([alert], mine)


__all__ = [
    "POWER_ALERTS",
    "SEVERITY",
    "Alert",
    "AlertName",
    "Cause",
    "MeetingInfo",
    "SiteLinks",
    "local_time",
    "meeting_alerts",
    "site_alerts",
]
