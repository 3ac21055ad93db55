"""The collector's alerts about itself: when its verdicts cannot be trusted. Pure.

Every site alert (collector/alerts.py) rests on the collector hearing its broker, storing
what it hears and running its loops. When one of those fails, the site alerts do not say
so: a collector cut from its broker says no site is silent and keeps each site's alerts
as they were (``listening``), so the NOC sees a quiet night. These alerts say it, to the
same Alertmanager, through the same store and sender (collector/alert_sender.py):

=======================  ========  ===============================================
alert                    severity  fires while
=======================  ========  ===============================================
KiencoHeartbeat          info      always, while the collector runs: it is refreshed
                                   every ``resend_s`` and ends 4 resends after the
                                   last, so its *resolved* notification says the
                                   collector stopped (a dead man's switch; the
                                   shipped alertmanager.yml routes it alone)
CollectorDisconnected    critical  not subscribed to its broker for
                                   ``system.broker_down_after_s``: no report comes in,
                                   the sites' alerts are held, each site reads "no
                                   report" past its stale window; with the cause and
                                   its fix
BrokerDroppedReports     critical  a broker (``own``, or a province's, bridged) dropped
                                   messages within the last 15 min
                                   (collector/broker_watch.py): reports lost for good
BrokerDropsUnwatched     warning   the own broker's counts never came (its ACL, or
                                   ``sys_interval 0``): drops would go unseen
BridgeDown               critical  a provincial broker's bridge to the centre down
                                   (its will) for ``system.bridge_down_after_s``: the
                                   province's reports wait there, its sites look
                                   silent (the shipped alertmanager.yml inhibits their
                                   ``SiteSilent`` by ``province``)
ReportsLate              warning   a province's reports read late: the freshest
                                   read in the last minute older than
                                   ``status.late_after_s`` (collector/backlog.py): a
                                   backlog worked off after a bridge or collector
                                   outage; its sites look silent until it is read (the
                                   shipped alertmanager.yml inhibits their
                                   ``SiteSilent`` by ``province``)
InfluxNotWriting         warning   InfluxDB has not taken a write for
                                   ``system.influx_down_after_s`` (spooling: nothing
                                   lost, the dashboards stale)
CollectorThreadFailing   critical  one of the collector's loops dead or stuck
                                   (collector/supervision.py): one alert per loop
=======================  ========  ===============================================

Labels are ``alertname, severity, cause="system", collector`` (the collector's name:
``alerts.system.collector``, else ``broker.client_id``), plus ``broker`` or ``thread``
where one is named, and ``province`` for a provincial broker's: stable for the alert's
life. Annotations are in Vietnamese and
English, times in Asia/Ho_Chi_Minh; the link is the collector's ``/healthz``. Text from
the network (a TLS error) passes through ``plumbing.untrusted.one_line``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict

from collector.alerts import AlertKey, SiteLinks, local_time
from collector.backlog import Late
from contract.wire import Severity, UtcTime
from plumbing.untrusted import one_line

__all__ = [
    "DROPS_QUIET_S",
    "SYSTEM_SCOPE",
    "DropRun",
    "SystemAlert",
    "SystemView",
    "dropping",
    "system_alerts",
]

SystemAlertName = Literal[
    "KiencoHeartbeat",
    "CollectorDisconnected",
    "BrokerDroppedReports",
    "BrokerDropsUnwatched",
    "BridgeDown",
    "ReportsLate",
    "InfluxNotWriting",
    "CollectorThreadFailing",
]
SEVERITY: Mapping[SystemAlertName, Severity] = MappingProxyType(
    {
        "KiencoHeartbeat": "info",
        "CollectorDisconnected": "critical",
        "BrokerDroppedReports": "critical",
        "BrokerDropsUnwatched": "warning",
        "BridgeDown": "critical",
        "ReportsLate": "warning",
        "InfluxNotWriting": "warning",
        "CollectorThreadFailing": "critical",
    }
)
# The alert store keeps alerts by scope: a site's id, or this for the collector's own
# (not a site id: those are slugs, never empty).
SYSTEM_SCOPE = ""
# A broker's drops stay alerted this long after the last one: a run of drops is one alert.
DROPS_QUIET_S = 900.0
# Text from the network, as much of it as an alert shows.
MAX_CAUSE_CHARS = 300

_TEXTS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "KiencoHeartbeat": (
            "collector {collector} đang chạy và đang theo dõi (từ {since}). Khi cảnh báo này "
            "kết thúc (resolved), collector đã ngừng: không còn phán định, không còn cảnh báo",
            "collector {collector} is running and watching (since {since}). When this alert "
            "ends (resolved), the collector has stopped: no more verdicts, no more alerts",
        ),
        "CollectorDisconnected": (
            "collector {collector} mất kết nối tới broker MQTT từ {since}: không nhận được "
            "báo cáo nào: cảnh báo của các điểm giữ như lúc đó, trên bảng mỗi điểm sẽ hiện "
            "«không có báo cáo» khi quá hạn — collector không nghe được, điểm có thể vẫn tốt",
            "collector {collector} has been disconnected from its MQTT broker since {since}: "
            "no report comes in: the sites' alerts are held as they were, and on the board "
            "each site reads «no report» once its stale window passes — the collector cannot "
            "hear, the sites may be fine",
        ),
        "BrokerDroppedReports": (
            "{broker_vi} đã bỏ {dropped} tin từ {since} ({total} từ khi broker khởi động): "
            "hàng đợi của một client đã đầy (max_queued_messages); tin bị bỏ là mất hẳn",
            "{broker_en} dropped {dropped} messages since {since} ({total} since it started): "
            "a client's queue is full (max_queued_messages); what it drops is lost for good",
        ),
        "BrokerDroppedBeforeLook": (
            "{broker_vi} đã bỏ {dropped} tin khi collector không theo dõi (thấy lúc {since}; "
            "{total} từ khi broker khởi động): hàng đợi của một client đã đầy "
            "(max_queued_messages); tin bị bỏ là mất hẳn",
            "{broker_en} dropped {dropped} messages while this collector was not watching "
            "(found at {since}; {total} since the broker started): a client's queue was full "
            "(max_queued_messages); what it drops is lost for good",
        ),
        "BrokerDropsUnwatched": (
            "collector {collector} không đọc được số tin broker của nó bỏ (từ {since}): ACL "
            "không cho tài khoản đọc $SYS/broker/publish/messages/dropped, hoặc sys_interval "
            "là 0; tin bị bỏ sẽ không ai biết",
            "collector {collector} cannot read how many messages its broker drops (since "
            "{since}): the ACL does not let its account read $SYS/broker/publish/messages/"
            "dropped, or sys_interval is 0; dropped reports would go unseen",
        ),
        "BridgeDown": (
            "broker tỉnh {broker} mất cầu nối (bridge) tới trung tâm từ {since}: đường truyền "
            "bị cắt hoặc broker tỉnh đã dừng; báo cáo của tỉnh chờ trong hàng đợi của broker "
            "tỉnh, các điểm của tỉnh trông như im lặng",
            "the {broker} provincial broker's bridge to the centre has been down since "
            "{since}: its backhaul is cut or the broker stopped; the province's reports wait "
            "in its queue and its sites look silent",
        ),
        "ReportsLate": (
            "báo cáo của tỉnh {province} tới chậm từ {since}: collector đang đọc báo cáo cũ "
            "{minutes} phút, tồn đọng sau khi cầu nối hoặc collector mất kết nối; các điểm "
            "của tỉnh hiện im lặng cho tới khi đọc hết",
            "the {province} province's reports have arrived late since {since}: the collector "
            "reads reports {minutes} min old, a backlog after a bridge or collector outage; "
            "the province's sites look silent until it is read",
        ),
        "InfluxNotWriting": (
            "collector {collector}: InfluxDB không nhận ghi từ {since}; số liệu đang lưu tạm "
            "trên đĩa, chưa mất gì, nhưng bảng Grafana không có số liệu mới",
            "collector {collector}: InfluxDB has not taken a write since {since}; the data "
            "waits on disk, nothing is lost, but the Grafana dashboards show nothing new",
        ),
        "CollectorThreadFailing": (
            "collector {collector}: {problem_vi} (từ {since})",
            "collector {collector}: {problem_en} (since {since})",
        ),
    }
)


class SystemAlert(AlertKey, BaseModel):
    """One of the collector's alerts about itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: SystemAlertName
    collector: str
    broker: str | None = None
    thread: str | None = None
    province: str | None = None  # a provincial broker's alert: its province
    summary_vi: str
    summary_en: str
    details_vi: tuple[str, ...] = ()
    details_en: tuple[str, ...] = ()
    started_at: UtcTime

    @property
    def scope(self) -> str:
        return SYSTEM_SCOPE

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.name]

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            "alertname": self.name,
            "severity": self.severity,
            "cause": "system",
            "collector": self.collector,
        }
        if self.broker is not None:
            labels["broker"] = self.broker
        if self.thread is not None:
            labels["thread"] = self.thread
        if self.province is not None:
            labels["province"] = self.province
        return labels

    def link(self, links: SiteLinks) -> str:
        return links.health_url

    def annotations(self, url: str) -> dict[str, str]:
        return {
            "summary": one_line(self.summary_vi),
            "summary_en": one_line(self.summary_en),
            "description": one_line("; ".join(self.details_vi or (self.summary_vi,))),
            "description_en": one_line("; ".join(self.details_en or (self.summary_en,))),
            "site_url": url,
        }


@dataclass(frozen=True, slots=True)
class DropRun:
    """A run of a broker's drops: none more than ``DROPS_QUIET_S`` after the previous."""

    first_at: datetime
    last_at: datetime
    dropped: int  # in this run
    total: int  # the broker's own count when last read (since it started)
    # The run began with the collector's first look: some drops may be older than it.
    before_look: bool = False


@dataclass(frozen=True, slots=True)
class BridgeState:
    """A provincial bridge as the centre holds it, and since when the collector saw it so."""

    up: bool
    since: datetime


@dataclass(frozen=True, slots=True)
class Trouble:
    """One of the collector's loops failing, as /healthz words it."""

    thread: str
    text_vi: str
    text_en: str
    since: datetime
    last_error: str | None = None  # may quote text from the field: one_line'd here


@dataclass(frozen=True, slots=True)
class SystemView:
    """What the collector knows of itself at one moment (collector/system_watch.py)."""

    collector: str
    started_at: datetime
    disconnected_since: datetime | None = None
    broker_cause: str | None = None  # from the network: one_line'd here
    broker_fix: str | None = None
    influx_down_since: datetime | None = None
    drops: Mapping[str, DropRun] = field(default_factory=lambda: MappingProxyType({}))
    drops_unwatched_since: datetime | None = None
    bridges: Mapping[str, BridgeState] = field(default_factory=lambda: MappingProxyType({}))
    late: Mapping[str, Late] = field(default_factory=lambda: MappingProxyType({}))
    threads: tuple[Trouble, ...] = ()


def dropping(run: DropRun, now: datetime) -> bool:
    """A broker's run of drops is on: ``BrokerDroppedReports`` fires for it (and the
    collector's health says so, collector/health_points.py)."""
    return run.dropped > 0 and now - run.last_at < timedelta(seconds=DROPS_QUIET_S)


def _alert(
    view: SystemView,
    name: SystemAlertName,
    since: datetime,
    *,
    more: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    text: str | None = None,  # the texts' name when not the alert's
    broker: str | None = None,
    thread: str | None = None,
    province: str | None = None,
    **values: object,
) -> SystemAlert:
    vi, en = _TEXTS[text or name]
    words = {
        "collector": view.collector,
        "since": local_time(since),
        "broker": broker,
        "province": province,
        **values,
    }
    summary_vi, summary_en = vi.format(**words), en.format(**words)
    return SystemAlert(
        name=name,
        collector=view.collector,
        broker=broker,
        thread=thread,
        province=province,
        summary_vi=summary_vi,
        summary_en=summary_en,
        details_vi=(summary_vi, *more[0]) if more[0] else (),  # the summary, then the more
        details_en=(summary_en, *more[1]) if more[1] else (),
        started_at=since,
    )


def _broker_words(broker: str) -> tuple[str, str]:
    if broker == "own":
        return "broker của collector", "the collector's broker"
    return f"broker tỉnh {broker}", f"the {broker} provincial broker"


def system_alerts(
    view: SystemView,
    now: datetime,
    *,
    broker_down_after_s: float,
    influx_down_after_s: float,
    bridge_down_after_s: float = 60.0,
    heartbeat: bool = True,
) -> list[SystemAlert]:
    """The collector's alerts about itself that should be firing at ``now``."""
    alerts: list[SystemAlert] = []
    if heartbeat:
        alerts.append(_alert(view, "KiencoHeartbeat", view.started_at))
    down = view.disconnected_since
    if down is not None and now - down >= timedelta(seconds=broker_down_after_s):
        vi: list[str] = []
        en: list[str] = []
        if view.broker_cause:
            cause = one_line(view.broker_cause)[:MAX_CAUSE_CHARS]
            vi.append(f"nguyên nhân: {cause}")
            en.append(f"cause: {cause}")
        if view.broker_fix:
            vi.append(f"cách sửa: {view.broker_fix}")
            en.append(f"fix: {view.broker_fix}")
        alerts.append(_alert(view, "CollectorDisconnected", down, more=(tuple(vi), tuple(en))))
    for broker, run in sorted(view.drops.items()):
        if dropping(run, now):
            broker_vi, broker_en = _broker_words(broker)
            alerts.append(
                _alert(
                    view,
                    "BrokerDroppedReports",
                    run.first_at,
                    text="BrokerDroppedBeforeLook" if run.before_look else None,
                    broker=broker,
                    province=None if broker == "own" else broker,
                    dropped=run.dropped,
                    total=run.total,
                    broker_vi=broker_vi,
                    broker_en=broker_en,
                )
            )
    if view.drops_unwatched_since is not None:
        alerts.append(
            _alert(view, "BrokerDropsUnwatched", view.drops_unwatched_since, broker="own")
        )
    for broker, bridge in sorted(view.bridges.items()):
        if not bridge.up and now - bridge.since >= timedelta(seconds=bridge_down_after_s):
            alerts.append(_alert(view, "BridgeDown", bridge.since, broker=broker, province=broker))
    for province, late in sorted(view.late.items()):
        since = datetime.fromtimestamp(late.since, UTC)
        minutes = f"{late.behind_s / 60:.0f}"
        alerts.append(_alert(view, "ReportsLate", since, province=province, minutes=minutes))
    influx = view.influx_down_since
    if influx is not None and now - influx >= timedelta(seconds=influx_down_after_s):
        alerts.append(_alert(view, "InfluxNotWriting", influx))
    for trouble in view.threads:
        error = one_line(trouble.last_error or "")[:MAX_CAUSE_CHARS]
        more = ((f"lỗi gần nhất: {error}",), (f"last error: {error}",)) if error else ((), ())
        alerts.append(
            _alert(
                view,
                "CollectorThreadFailing",
                trouble.since,
                more=more,
                thread=trouble.thread,
                problem_vi=trouble.text_vi,
                problem_en=trouble.text_en,
            )
        )
    return alerts
