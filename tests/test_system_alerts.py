"""The collector's alerts about itself (collector/system_alerts.py), from what it knows of
itself (collector/system_watch.py) and of its brokers' drops (collector/broker_watch.py):
a table of cases for the pure rules, the watch remembering since when a trouble lasts,
the drops' runs, and the store keeping these alerts apart from the sites'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.alert_store import AlertStore
from collector.alerts import Alert, SiteLinks
from collector.backlog import Late
from collector.broker_watch import OWN, QUIET_AFTER_S, BrokerWatch
from collector.config import AlertsConfig, SystemAlertsConfig
from collector.connection_log import Failing
from collector.health import Health, assess
from collector.supervision import LoopHealth
from collector.system_alerts import (
    DROPS_QUIET_S,
    MAX_CAUSE_CHARS,
    SYSTEM_SCOPE,
    BridgeState,
    DropRun,
    SystemAlert,
    SystemView,
    Trouble,
    system_alerts,
)
from collector.system_watch import Sources, SystemWatch

T0 = datetime(2024, 9, 7, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi, Yagi's landfall morning
LINKS = SiteLinks("https://noc.example.vn/kienco")


def judge(view: SystemView, now: datetime, **rules: float) -> dict[str, SystemAlert]:
    alerts = system_alerts(
        view,
        now,
        broker_down_after_s=rules.get("broker_down_after_s", 60),
        influx_down_after_s=rules.get("influx_down_after_s", 300),
        bridge_down_after_s=rules.get("bridge_down_after_s", 60),
        heartbeat=bool(rules.get("heartbeat", True)),
    )
    found = {}
    for a in alerts:
        named = a.broker or a.thread or a.province
        found[a.name + (f":{named}" if named else "")] = a
    assert len(found) == len(alerts), "two alerts with one identity"
    return found


def view(**values: object) -> SystemView:
    return SystemView(collector="a1", started_at=T0, **values)  # type: ignore[arg-type]


# --- the rules: a table of cases ------------------------------------------------------------

NOW = T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    "case, state, expected",
    [
        ("all well: the heartbeat alone", view(), {"KiencoHeartbeat"}),
        (
            "disconnected 59 s: not yet",
            view(disconnected_since=NOW - timedelta(seconds=59)),
            {"KiencoHeartbeat"},
        ),
        (
            "disconnected 60 s",
            view(disconnected_since=NOW - timedelta(seconds=60)),
            {"KiencoHeartbeat", "CollectorDisconnected"},
        ),
        (
            "InfluxDB down 299 s: not yet",
            view(influx_down_since=NOW - timedelta(seconds=299)),
            {"KiencoHeartbeat"},
        ),
        (
            "InfluxDB down 300 s",
            view(influx_down_since=NOW - timedelta(seconds=300)),
            {"KiencoHeartbeat", "InfluxNotWriting"},
        ),
        (
            "drops within the quiet time, own and a province's: one alert each",
            view(
                drops={
                    OWN: DropRun(NOW - timedelta(hours=1), NOW - timedelta(seconds=10), 7, 9),
                    "hp": DropRun(NOW, NOW, 1, 1),
                }
            ),
            {"KiencoHeartbeat", "BrokerDroppedReports:own", "BrokerDroppedReports:hp"},
        ),
        (
            "drops last seen 15 min ago: over",
            view(drops={OWN: DropRun(T0, NOW - timedelta(seconds=DROPS_QUIET_S), 7, 7)}),
            {"KiencoHeartbeat"},
        ),
        (
            "hp's bridge down 59 s, qn's up: not yet",
            view(
                bridges={
                    "hp": BridgeState(False, NOW - timedelta(seconds=59)),
                    "qn": BridgeState(True, T0),
                }
            ),
            {"KiencoHeartbeat"},
        ),
        (
            "hp's bridge down 60 s",
            view(bridges={"hp": BridgeState(False, NOW - timedelta(seconds=60))}),
            {"KiencoHeartbeat", "BridgeDown:hp"},
        ),
        (
            "hp's reports read 10 min late, qn's not at all: hp's alone",
            view(late={"hp": Late(600.0, (NOW - timedelta(minutes=2)).timestamp())}),
            {"KiencoHeartbeat", "ReportsLate:hp"},
        ),
        (
            "the own broker's counts never came",
            view(drops_unwatched_since=NOW),
            {"KiencoHeartbeat", "BrokerDropsUnwatched:own"},
        ),
        (
            "two loops failing: one alert each, at once",
            view(
                threads=(
                    Trouble("writer", "luồng writer đã dừng", "thread writer is dead", NOW),
                    Trouble("alerts", "treo", "stuck", NOW),
                )
            ),
            {
                "KiencoHeartbeat",
                "CollectorThreadFailing:writer",
                "CollectorThreadFailing:alerts",
            },
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_what_fires(case: str, state: SystemView, expected: set[str]) -> None:
    assert set(judge(state, NOW)) == expected


def test_the_heartbeat_can_be_turned_off() -> None:
    assert judge(view(), NOW, heartbeat=0) == {}


def test_labels_are_the_collector_s_and_stable_texts_in_both_languages_in_hanoi_time() -> None:
    since = datetime(2024, 9, 6, 20, 5, tzinfo=UTC)  # 03:05 on the 7th in Hanoi
    failing = view(
        disconnected_since=since,
        broker_cause="cannot connect: [Errno 111] Connection refused",
        broker_fix="check the broker runs and listens on broker.url's port",
    )
    alert = judge(failing, NOW)["CollectorDisconnected"]
    assert alert.labels == {
        "alertname": "CollectorDisconnected",
        "severity": "critical",
        "cause": "system",
        "collector": "a1",
    }
    assert alert.started_at == since
    notes = alert.annotations(alert.link(LINKS))
    assert notes["site_url"] == "https://noc.example.vn/kienco/healthz"
    assert "03:05 07/09" in notes["summary"] and "03:05 07/09" in notes["summary_en"]
    assert "mất kết nối tới broker MQTT" in notes["summary"]
    assert notes["description_en"].endswith(
        "cause: cannot connect: [Errno 111] Connection refused; "
        "fix: check the broker runs and listens on broker.url's port"
    )
    assert "cách sửa: check the broker" in notes["description"]
    # The same trouble a minute later is the same alert: nothing re-sent for it.
    assert judge(failing, NOW + timedelta(minutes=1))["CollectorDisconnected"] == alert


def test_a_cause_from_the_network_reaches_the_alert_as_one_bounded_plain_line() -> None:
    evil = "refused: <b>x</b>\r\nX-Injected: 1\x1b[31m\u202e" + "é" * 1000
    alert = judge(view(disconnected_since=T0, broker_cause=evil), NOW)["CollectorDisconnected"]
    for text in alert.annotations("u").values():
        assert text.isprintable(), text
    description = alert.annotations("u")["description_en"]
    cause = description.split("cause: ", 1)[1]
    assert len(cause) == MAX_CAUSE_CHARS
    assert cause.startswith("refused: <b>x</b> X-Injected: 1")


def test_drops_say_how_many_and_whose_broker() -> None:
    runs = {
        OWN: DropRun(T0, NOW, 7, 9),
        "hp": DropRun(T0, NOW, 12, 40, before_look=True),
    }
    alerts = judge(view(drops=runs), NOW)
    own, hp = alerts["BrokerDroppedReports:own"], alerts["BrokerDroppedReports:hp"]
    assert own.labels["broker"] == "own" and own.labels["severity"] == "critical"
    assert own.summary_en.startswith("the collector's broker dropped 7 messages since 10:00")
    assert "(9 since it started)" in own.summary_en
    assert own.summary_vi.startswith("broker của collector đã bỏ 7 tin")
    # What the collector found at its first look may be older than it: it says so.
    assert hp.summary_en.startswith(
        "the hp provincial broker dropped 12 messages while this collector was not watching "
        "(found at 10:00 07/09; 40 since the broker started)"
    )
    assert hp.started_at == T0


# --- the watch: since when --------------------------------------------------------------


class Box:
    """The collector's state as the watch reads it, set by the test: /healthz's account
    of it made by collector/health.py's own ``assess``, at the test's time."""

    def __init__(self) -> None:
        self.lost_at: datetime | None = None  # the broker connection lost then; None: up
        self.failing: Failing | None = None
        self.influx_since: datetime | None = None  # InfluxDB down since then; None: up
        self.loops: list[tuple[str, bool, datetime, str | None]] = []  # alive, last beat
        self.brokers = BrokerWatch(CollectorRegistry(), None, wall=lambda: self.now)
        self.now = T0
        self.stopping = False

    def health(self) -> Health:
        now = self.now.timestamp()
        return assess(
            broker_connected=self.lost_at is None and self.failing is None,
            broker_failure=self.failing,
            broker_lost_at=None if self.lost_at is None else self.lost_at.timestamp(),
            influx_configured=True,
            influx_down=self.influx_since is not None,
            influx_down_since=None if self.influx_since is None else self.influx_since.timestamp(),
            spooled_batches=3,
            loops=[
                LoopHealth(name, alive, False, now - beat.timestamp(), 0.0, 1, error)
                for name, alive, beat, error in self.loops
            ],
            now=now,
        )

    def watch(self, **config: object) -> SystemWatch:
        sources = Sources(
            health=self.health,
            failing=lambda: self.failing,
            brokers=self.brokers,
            stopping=lambda: self.stopping,
        )
        return SystemWatch("a1", SystemAlertsConfig.model_validate(config), sources, T0)

    def alerts(self, watch: SystemWatch, at: datetime) -> list[SystemAlert]:
        self.now = at
        return watch.alerts(at)


def names(alerts: list[SystemAlert]) -> set[str]:
    return {a.name for a in alerts}


def test_a_trouble_fires_after_its_delay_from_when_it_began_and_ends_with_it() -> None:
    box = Box()
    watch = box.watch(broker_down_after_s=60, influx_down_after_s=300)
    box.lost_at = box.influx_since = T0
    assert names(box.alerts(watch, T0)) == {"KiencoHeartbeat"}
    assert names(box.alerts(watch, T0 + timedelta(seconds=59))) == {"KiencoHeartbeat"}
    at_60 = box.alerts(watch, T0 + timedelta(seconds=60))
    assert names(at_60) == {"KiencoHeartbeat", "CollectorDisconnected"}
    assert [a.started_at for a in at_60 if a.name == "CollectorDisconnected"] == [T0]
    assert "InfluxNotWriting" in names(box.alerts(watch, T0 + timedelta(seconds=300)))
    box.lost_at = box.influx_since = None
    assert names(box.alerts(watch, T0 + timedelta(seconds=301))) == {"KiencoHeartbeat"}
    box.lost_at = T0 + timedelta(seconds=302)  # a new trouble waits its delay again
    assert names(box.alerts(watch, T0 + timedelta(seconds=302))) == {"KiencoHeartbeat"}


def test_a_run_of_failed_connections_gives_the_start_and_the_cause() -> None:
    box = Box()
    watch = box.watch(broker_down_after_s=60)
    began = T0 - timedelta(minutes=5)
    box.failing = Failing("refused: not authorised", "check broker.username", 40, began.timestamp())
    [down] = [a for a in box.alerts(watch, T0) if a.name == "CollectorDisconnected"]
    assert down.started_at == began
    assert down.details_en[1:] == ("cause: refused: not authorised", "fix: check broker.username")


def test_a_subscription_refused_is_no_report_coming_in_with_the_fix() -> None:
    box = Box()
    watch = box.watch(broker_down_after_s=0)
    box.failing = Failing(
        "subscription to kienco/v1/hp/# refused: Not authorized (0x87)",
        "the broker's ACL must grant the collector's account read on its filters",
        0,
        T0.timestamp(),
        "subscription_refused",
    )
    [down] = [a for a in box.alerts(watch, T0) if a.name == "CollectorDisconnected"]
    assert down.details_en[1].startswith("cause: subscription to kienco/v1/hp/# refused")


def test_a_loop_failing_is_alerted_by_its_name_from_its_last_beat_with_its_error() -> None:
    box = Box()
    watch = box.watch()
    box.loops = [("writer", False, T0, "OSError: disk full"), ("staleness", True, T0, None)]
    [failing] = [a for a in box.alerts(watch, T0) if a.name == "CollectorThreadFailing"]
    assert failing.labels["thread"] == "writer"
    assert failing.summary_en == "collector a1: thread writer is dead (since 10:00 07/09)"
    assert failing.details_en[1:] == ("last error: OSError: disk full",)
    assert failing.details_vi[1:] == ("lỗi gần nhất: OSError: disk full",)
    later = box.alerts(watch, T0 + timedelta(minutes=3))
    assert [a for a in later if a.thread == "writer"] == [failing]  # the same alert: unchanged


# --- the drops' runs (BrokerWatch) --------------------------------------------------------


def test_drops_within_15_minutes_are_one_run_and_after_a_quiet_15_a_new_one() -> None:
    box = Box()
    brokers, topic = box.brokers, "$SYS/broker/publish/messages/dropped"
    brokers.observe(topic, b"0")  # the first look: nothing dropped yet
    assert brokers.runs == {}
    box.now = T0 + timedelta(minutes=1)
    brokers.observe(topic, b"4")
    box.now = T0 + timedelta(minutes=15)
    brokers.observe(topic, b"4")  # no growth: the run stands as it was
    brokers.observe(topic, b"6")
    assert brokers.runs[OWN] == DropRun(T0 + timedelta(minutes=1), T0 + timedelta(minutes=15), 6, 6)
    box.now = T0 + timedelta(minutes=15) + timedelta(seconds=DROPS_QUIET_S)
    brokers.observe(topic, b"1")  # restarted broker, and quiet for 15 min: a new run
    assert brokers.runs[OWN] == DropRun(box.now, box.now, 1, 1)


def test_drops_found_at_the_first_look_are_a_run_that_says_so() -> None:
    box = Box()
    box.brokers.observe("kienco/brokers/hp/publish/messages/dropped", b"12")
    assert box.brokers.runs["hp"] == DropRun(T0, T0, 12, 12, before_look=True)


def test_counts_never_heard_are_a_trouble_until_they_come() -> None:
    clock = [0.0]
    brokers = BrokerWatch(CollectorRegistry(), None, clock=lambda: clock[0], wall=lambda: T0)
    brokers.subscribed()
    clock[0] = QUIET_AFTER_S
    brokers.check_heard()
    assert brokers.unwatched_since == T0
    brokers.observe("$SYS/broker/store/messages/count", b"3")
    assert brokers.unwatched_since is None


# --- the store ---------------------------------------------------------------------------


def test_the_store_keeps_the_collector_s_alerts_apart_and_across_a_restart(tmp_path: Path) -> None:
    urls = ["http://127.0.0.1:9093"]
    store = AlertStore(tmp_path / "alerts.sqlite", urls)
    mine = judge(view(disconnected_since=T0), NOW)
    store.replace([((), list(mine.values()))], NOW)
    store.close()
    again = AlertStore(tmp_path / "alerts.sqlite", urls)
    assert sorted(a.key for a in again.system_alerts()) == sorted(a.key for a in mine.values())
    assert again.sites() == set()  # never taken for a site to look at
    assert again.site_alerts() == []
    assert again.firing(SYSTEM_SCOPE) == again.system_alerts()
    assert all(not isinstance(a, Alert) for a in again.firing())
    assert again.pending[urls[0]] == {a.key for a in mine.values()}
    again.close()


def test_the_shipped_alerts_config_turns_them_on() -> None:
    config = AlertsConfig.model_validate(
        {"alertmanagers": ["http://127.0.0.1:9093"], "external_url": "https://x.vn"}
    )
    assert config.system == SystemAlertsConfig()
    assert config.system.enabled and config.system.heartbeat


def test_a_clean_stop_is_no_trouble_and_ends_the_heartbeat() -> None:
    box = Box()
    watch = box.watch(broker_down_after_s=0)
    box.lost_at = T0
    box.loops = [("writer", False, T0, None)]
    assert names(box.alerts(watch, T0)) == {
        "KiencoHeartbeat",
        "CollectorDisconnected",
        "CollectorThreadFailing",
    }
    box.stopping = True  # its loops end and its connection closes, on purpose
    assert box.alerts(watch, T0) == []


def test_a_restarted_collector_counts_only_what_was_dropped_while_it_was_away(
    tmp_path: Path,
) -> None:
    """Without the kept counts, every restart would page again for drops of days ago."""
    saved, topic = tmp_path / "broker_counts.json", "kienco/brokers/hp/publish/messages/dropped"

    def run() -> BrokerWatch:
        return BrokerWatch(CollectorRegistry(), ["hp"], wall=lambda: T0, saved=saved)

    first = run()
    first.observe(topic, b"12")  # dropped before anyone looked: said once
    assert first.runs["hp"] == DropRun(T0, T0, 12, 12, before_look=True)
    same = run()  # restarted, nothing dropped meanwhile: no run, no page
    same.observe(topic, b"12")
    assert same.runs == {}
    away = run()
    away.observe(topic, b"15")  # 3 dropped while the collector was away
    assert away.runs["hp"] == DropRun(T0, T0, 3, 15, before_look=True)
    rebooted = run()
    rebooted.observe(topic, b"2")  # the broker restarted meanwhile: its 2 are new
    assert rebooted.runs["hp"] == DropRun(T0, T0, 2, 2, before_look=True)


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", '{"hp": "12"}', '{"hp\n": 5, "own": -1, "qn": 1e30}', "[" * 100_000],
)
def test_kept_counts_not_ours_are_an_empty_start(tmp_path: Path, text: str) -> None:
    saved = tmp_path / "broker_counts.json"
    saved.write_text(text)
    watch = BrokerWatch(CollectorRegistry(), None, wall=lambda: T0, saved=saved)
    watch.observe("kienco/brokers/hp/publish/messages/dropped", b"7")
    assert watch.runs["hp"].dropped == 7  # all of it: nothing trusted from the file


def test_a_folder_the_counts_cannot_be_kept_in_is_said_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    saved = tmp_path / "missing-folder" / "broker_counts.json"
    watch = BrokerWatch(CollectorRegistry(), None, wall=lambda: T0, saved=saved)
    watch.observe("$SYS/broker/publish/messages/dropped", b"4")
    watch.observe("$SYS/broker/publish/messages/dropped", b"5")
    said = [r.message for r in caplog.records if "cannot keep" in r.message]
    assert len(said) == 1
    assert watch.runs[OWN].dropped == 5


def test_a_bridge_down_names_its_province_for_the_inhibition_of_its_sites_silence() -> None:
    since = datetime(2024, 9, 7, 1, 40, tzinfo=UTC)  # 08:40 in Hanoi
    [down] = judge(view(bridges={"hp": BridgeState(False, since)}), NOW, heartbeat=0).values()
    assert down.labels == {
        "alertname": "BridgeDown",
        "severity": "critical",
        "cause": "system",
        "collector": "a1",
        "broker": "hp",
        "province": "hp",  # alertmanager.yml: BridgeDown inhibits SiteSilent, equal province
    }
    assert down.summary_en.startswith(
        "the hp provincial broker's bridge to the centre has been down since 08:40 07/09"
    )
    assert down.summary_vi.startswith("broker tỉnh hp mất cầu nối (bridge) tới trung tâm")


def test_a_province_read_late_names_it_for_the_inhibition_of_its_sites_silence() -> None:
    since = datetime(2024, 9, 7, 1, 40, tzinfo=UTC)  # 08:40 in Hanoi
    [late] = judge(view(late={"hp": Late(754.0, since.timestamp())}), NOW, heartbeat=0).values()
    assert late.labels == {
        "alertname": "ReportsLate",
        "severity": "warning",
        "cause": "system",
        "collector": "a1",
        "province": "hp",  # alertmanager.yml: ReportsLate inhibits SiteSilent, equal province
    }
    assert late.started_at == since
    assert late.summary_en.startswith(
        "the hp province's reports have arrived late since 08:40 07/09: the collector reads "
        "reports 13 min old"
    )
    assert late.summary_vi.startswith("báo cáo của tỉnh hp tới chậm từ 08:40 07/09")


def test_a_bridge_s_state_is_kept_from_when_it_moved_and_anything_else_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box = Box()
    brokers, topic = box.brokers, "kienco/brokers/hp/bridge"
    brokers.observe(topic, b"1")
    assert brokers.bridges["hp"] == BridgeState(True, T0)
    box.now = T0 + timedelta(minutes=5)
    brokers.observe(topic, b"0")  # its will at the centre: the link died
    box.now = T0 + timedelta(minutes=6)
    brokers.observe(topic, b"0")  # said again (retained, a resubscription): since stays
    assert brokers.bridges["hp"] == BridgeState(False, T0 + timedelta(minutes=5))
    assert brokers.bridge_up.labels("hp")._value.get() == 0
    for bad in (b"2", b"up", b"", b"1\n0"):
        brokers.observe(topic, bad)
    assert brokers.bridges["hp"].up is False
    assert [r.message for r in caplog.records if "not a bridge state" in r.message]
    watch = box.watch(bridge_down_after_s=60)
    box.now = T0 + timedelta(minutes=7)
    assert "BridgeDown" in names(watch.alerts(box.now))
    brokers.observe(topic, b"1")
    assert "BridgeDown" not in names(watch.alerts(box.now))
