"""Alerts end to end on the real things: agent, snmpsim, Mosquitto, the collector, and
Prometheus Alertmanager with the shipped config, whose receivers post to a webhook here.

One alert per root cause per site reaches Alertmanager and its receivers; a province's
sites losing mains at once are one notification per route; a transport cut is one
alert; Alertmanager (or the collector) stopped and started again loses none.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import SiteConfig
from agent.runner import Agent
from collector.config import CollectorConfig
from collector.meetings import MeetingRequest
from collector.service import Collector
from kienco.local_services import SHIPPED_ALERTMANAGER
from rules import Policy
from tests.support.alertmanager import AlertmanagerServer, Notification, Webhook
from tests.support.fleet import FleetSite, by_site, send, send_all
from tests.support.mosquitto import Broker
from tests.support.snmpsim import SnmpSim, snmp_set_many
from tests.support.waiting import async_wait, wait_until

UPS = "1.3.6.1.2.1.33.1"
ON_MAINS = {f"{UPS}.4.1.0": 3, f"{UPS}.2.2.0": 0, f"{UPS}.2.3.0": 48, f"{UPS}.3.3.1.3.1": 230}
# 3 h left (upsEstimatedMinutesRemaining 180): on battery, not yet "dark soon" (2 h)
ON_BATTERY = {f"{UPS}.4.1.0": 5, f"{UPS}.2.2.0": 120, f"{UPS}.2.3.0": 180, f"{UPS}.3.3.1.3.1": 0}
# Short holds: a recovery still waits out its hold (no flapping), in a second, not a minute.
HOLD = {"hold_s": 1}
POLICY = Policy.model_validate(
    {
        "backup_power": HOLD,
        "multipath": HOLD,
        "link_quality": HOLD,
        "meeting": {**HOLD, "devices": []},
    }
)
EXTERNAL = "https://noc.example.vn/kienco"


def collector_config(
    tmp: Path,
    broker: Broker,
    alertmanager: AlertmanagerServer,
    name: str,
    topic_filter: str,
    **alerts: Any,
) -> CollectorConfig:
    return CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"c-{name}",
                "topic_filter": topic_filter,
            },
            "influx": None,
            "data_dir": str(tmp / "collector"),
            "http": {"port": 0},
            "status": {"sweep_s": 0.2},
            "alerts": {
                "alertmanagers": [alertmanager.url],
                "external_url": EXTERNAL,
                "resend_s": 5,
                "batch_delay_s": 0.1,
                **alerts,
            },
        }
    )


@pytest.fixture
def make_collector(
    tmp_path: Path, mosquitto: Broker, alertmanager: AlertmanagerServer
) -> Iterator[Callable[..., Collector]]:
    running: list[Collector] = []

    def make(name: str, topic_filter: str = "kienco/v1/none/none/#", **alerts: Any) -> Collector:
        """A collector; by default its MQTT filter matches nothing of the shared broker
        (other tests' retained sites), and the test hands it messages itself."""
        config = collector_config(tmp_path, mosquitto, alertmanager, name, topic_filter, **alerts)
        collector = Collector(config, policy=POLICY)
        collector.start()
        assert collector.wait_connected(10)
        running.append(collector)
        return collector

    yield make
    for collector in running:
        if collector.alerts is not None and collector.alerts._thread.is_alive():
            collector.stop()


def metric(collector: Collector, name: str) -> float:
    assert collector.api is not None
    for line in httpx.get(f"{collector.api.url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def firing(alertmanager: AlertmanagerServer, site_prefix: str) -> dict[tuple[str, str], Any]:
    return {
        key: labels
        for key, labels in by_site(alertmanager.alerts()).items()
        if key[0].startswith(site_prefix)
    }


async def test_a_ups_on_battery_pages_once_with_its_labels_and_back_on_mains_resolves(
    tmp_path: Path,
    mosquitto: Broker,
    snmpsim: SnmpSim,
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector("ups", "kienco/v1/hp/ha-bts-ups/#")
    servers = [await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0) for _ in range(2)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    community = snmpsim.community("ups-mib")
    site = SiteConfig.model_validate(
        {
            "site": "ha-bts-ups",
            "province": "hp",
            "kind": "station",
            "name": "Trạm BTS Thử Nghiệm",
            "operator": "vnpt",
            "interval_s": 2,
            "broker": {"url": mosquitto.url},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "disk_path": str(tmp_path),
            "paths": [
                {
                    "path": path,
                    "media": media,
                    "srlg": [srlg],
                    "probes": 2,
                    "timeout_s": 3,
                    "target": {"host": "127.0.0.1", "port": port},
                }
                for (path, media, srlg), port in zip(
                    [("fibre-a", "fibre", "duct-1"), ("mw-b", "microwave", "tower-2")],
                    ports,
                    strict=True,
                )
            ],
            "snmp_credentials": {"sim": {"community": {"value": community}}},
            "devices": [
                {
                    "device": "ups1",
                    "profile": "ups-mib",
                    "host": snmpsim.host,
                    "port": snmpsim.port,
                    "credentials": "sim",
                }
            ],
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(Agent(site).run(stop))
    mine = "ha-bts-ups"
    try:
        await async_wait(lambda: (s := collector.verdicts.get(mine)) and s.verdict != "unknown")
        assert firing(alertmanager, mine) == {}
        await snmp_set_many(snmpsim.host, snmpsim.port, community, ON_BATTERY)
        alerts = await async_wait(lambda: firing(alertmanager, mine))
        assert alerts == {
            (mine, "SiteOnBattery"): {
                "alertname": "SiteOnBattery",
                "severity": "warning",
                "province": "hp",
                "site": mine,
                "kind": "station",
                "operator": "vnpt",
                "cause": "power",
            }
        }
        [held] = [a for a in alertmanager.alerts() if a["labels"].get("site") == mine]
        notes = held["annotations"]
        # the rules' own reason, with its numbers: 3 h left, no generator
        said = collector.verdicts.get(mine)
        assert said is not None
        [power] = [r for r in said.reasons if r.code == "on_battery_no_generator"]
        assert notes["summary"] == f"Trạm BTS Thử Nghiệm: {power.text_vi}"
        assert notes["summary_en"] == f"Trạm BTS Thử Nghiệm: {power.text_en}"
        assert "còn 3 giờ" in notes["summary"] and "không có máy phát" in notes["summary"]
        assert notes["site_url"] == f"{EXTERNAL}/sites/{mine}"
        assert held["generatorURL"] == f"{EXTERNAL}/sites/{mine}"
        # It reached the receivers: the national NOC and the carrier's.
        for receiver in ("noc", "vnpt-noc"):

            def sent(r: str = receiver) -> list[Notification]:
                return webhook.notifications(r)

            note = await async_wait(sent)
            assert note[0].status == "firing"
            assert [a["labels"]["site"] for a in note[0].alerts] == [mine]
        assert webhook.notifications("viettel-noc") == []
        await snmp_set_many(snmpsim.host, snmpsim.port, community, ON_MAINS)
        await async_wait(lambda: not firing(alertmanager, mine))
        resolved = await async_wait(
            lambda: webhook.notifications("vnpt-noc", lambda n: n.status == "resolved")
        )
        assert resolved[0].alerts[0]["labels"]["alertname"] == "SiteOnBattery"
        assert resolved[0].alerts[0]["endsAt"] > resolved[0].alerts[0]["startsAt"]
    finally:
        await snmp_set_many(snmpsim.host, snmpsim.port, community, ON_MAINS)
        stop.set()
        await task
        for server in servers:
            server.close()


def test_a_province_losing_mains_is_one_notification_per_route(
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    make_collector: Callable[..., Collector],
) -> None:
    # No resend during the test, and half a second to gather the burst, however slow
    # this machine is: the POSTs counted are the burst's.
    collector = make_collector("province", resend_s=600, batch_delay_s=0.5)
    now = datetime.now(UTC)
    stations = [
        FleetSite(f"hp-bts-{i:02d}", operator="viettel" if i % 2 else "vnpt") for i in range(40)
    ]
    points = [FleetSite(f"hp-dc-{i}", kind="meeting_point") for i in range(4)]
    fleet = stations + points
    send_all(collector, (s.meta(now) for s in fleet))
    send_all(collector, (s.report(now) for s in fleet))
    time.sleep(1.0)
    assert firing(alertmanager, "hp-") == {}
    posts_before = metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}')
    later = now + timedelta(seconds=5)
    send_all(collector, (s.report(later, mains=False) for s in fleet))  # the typhoon
    wait_until(lambda: len(firing(alertmanager, "hp-")) == 44)
    assert {name for _, name in firing(alertmanager, "hp-")} == {"SiteOnBattery"}
    time.sleep(4)  # group_wait (2 s) has passed, and more: any second notification shows
    counts = {
        receiver: [len(n.alerts) for n in webhook.notifications(receiver)]
        for receiver in ("noc", "viettel-noc", "vnpt-noc", "hp-it", "qn-it", "mobifone-noc")
    }
    assert counts == {
        "noc": [44],
        "viettel-noc": [20],
        "vnpt-noc": [24],
        "hp-it": [4],
        "qn-it": [],
        "mobifone-noc": [],
    }
    assert webhook.notifications("noc")[0].group == {
        "alertname": "SiteOnBattery",
        "province": "hp",
    }
    # 44 alerts in one POST: batched, not one call each
    posts = metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}') - posts_before
    assert posts == 1


def test_a_transport_cut_is_one_alert_and_it_replaces_the_lost_path(
    alertmanager: AlertmanagerServer, make_collector: Callable[..., Collector]
) -> None:
    collector = make_collector("cut")
    site = FleetSite("hc-bts-cut", operator="viettel")
    now = datetime.now(UTC)
    send_all(collector, [site.meta(now), site.report(now, down=["fibre-a"])])
    found = wait_until(lambda: firing(alertmanager, "hc-"))
    assert list(found) == [("hc-bts-cut", "PathLost")]
    send(collector, site.report(now + timedelta(seconds=1), down=["fibre-a", "mw-b", "vsat-c"]))
    found = wait_until(
        lambda: list(firing(alertmanager, "hc-")) == [("hc-bts-cut", "TransportLost")]
    )
    [alert] = [a for a in alertmanager.alerts() if a["labels"].get("site") == "hc-bts-cut"]
    assert alert["annotations"]["summary_en"].endswith("all paths down (3 of 3)")


def test_alertmanager_stopped_and_started_again_loses_no_alert(
    alertmanager: AlertmanagerServer, make_collector: Callable[..., Collector]
) -> None:
    collector = make_collector("restart-am")
    now = datetime.now(UTC)
    sites = [FleetSite(f"hr-bts-{i}") for i in range(6)]
    send_all(collector, (s.meta(now) for s in sites))
    send_all(collector, (s.report(now, mains=i >= 3) for i, s in enumerate(sites)))
    wait_until(lambda: len(firing(alertmanager, "hr-")) == 3)

    alertmanager.stop()
    later = now + timedelta(seconds=2)
    send(collector, sites[0].report(later))  # back on mains: its resolution waits
    send(collector, sites[3].report(later, mains=False))
    send(collector, sites[4].report(later, down=["fibre-a", "mw-b", "vsat-c"]))
    wait_until(lambda: metric(collector, 'kienco_alertmanager_posts_total{outcome="failed"}') > 0)
    assert metric(collector, "kienco_alerts_pending") > 0
    up = f'kienco_alertmanager_up{{url="{alertmanager.url}"}}'
    assert metric(collector, up) == 0

    alertmanager.start()  # empty: Alertmanager keeps alerts in memory only
    expected = {
        ("hr-bts-1", "SiteOnBattery"),
        ("hr-bts-2", "SiteOnBattery"),
        ("hr-bts-3", "SiteOnBattery"),
        ("hr-bts-4", "TransportLost"),
    }
    wait_until(lambda: set(firing(alertmanager, "hr-")) == expected, timeout_s=40)
    wait_until(lambda: metric(collector, "kienco_alerts_pending") == 0)
    assert metric(collector, up) == 1


def test_a_collector_restarted_while_alertmanager_is_down_delivers_what_it_kept(
    alertmanager: AlertmanagerServer, make_collector: Callable[..., Collector]
) -> None:
    first = make_collector("restart-1")
    now = datetime.now(UTC)
    sites = [FleetSite(f"hs-bts-{i}") for i in range(3)]
    send_all(first, (s.meta(now) for s in sites))
    send_all(first, (s.report(now, mains=i == 2) for i, s in enumerate(sites)))
    wait_until(lambda: len(firing(alertmanager, "hs-")) == 2)
    alertmanager.stop()
    later = now + timedelta(seconds=2)
    send(first, sites[1].report(later))  # resolved while Alertmanager is down
    send(first, sites[2].report(later, mains=False))  # raised while it is down
    # a recovery shows once it has held (1 s here): then it is a resolution to deliver
    assert first.alerts is not None
    wait_until(lambda: not first.alerts.store.firing("hs-bts-1"))  # type: ignore[union-attr]
    wait_until(lambda: metric(first, "kienco_alerts_pending") >= 2)
    first.stop()

    second = make_collector("restart-2")  # same data_dir, empty site state
    alertmanager.start()
    expected = {("hs-bts-0", "SiteOnBattery"), ("hs-bts-2", "SiteOnBattery")}
    wait_until(lambda: set(firing(alertmanager, "hs-")) == expected, timeout_s=40)
    # Judged again on fresh news, it follows the verdicts.
    send_all(second, [sites[0].meta(later), sites[0].report(later + timedelta(seconds=1))])
    wait_until(lambda: set(firing(alertmanager, "hs-")) == {("hs-bts-2", "SiteOnBattery")})


def test_a_meta_arriving_after_the_first_report_is_no_second_page_nor_a_false_resolved(
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    make_collector: Callable[..., Collector],
) -> None:
    """A station's first report (on battery) reaches the collector before its meta: its
    alert fires with the labels known then. The meta, arriving after, must not resolve it
    and fire another (Alertmanager's identity is the labels): one alert, no 'resolved'."""
    collector = make_collector("late-meta", resend_s=1)
    now = datetime.now(UTC)
    site = FleetSite("hl-bts-late", province="hl", operator="viettel")
    send(collector, site.report(now, mains=False))
    [first] = wait_until(lambda: held_by(alertmanager, "hl-bts-late"))
    assert first["labels"]["alertname"] == "SiteOnBattery"
    assert first["labels"]["operator"] == "unknown"
    wait_until(lambda: webhook.notifications("noc", lambda n: _about(n, "hl-bts-late")))
    send(collector, site.meta(now + timedelta(seconds=1)))
    assert collector.alerts is not None
    resends = metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}')
    wait_until(
        lambda: metric(collector, 'kienco_alertmanager_posts_total{outcome="ok"}') >= resends + 2
    )
    time.sleep(3)  # group_wait (2 s) and group_interval (1 s): a change would be notified
    held = held_by(alertmanager, "hl-bts-late")
    assert [(a["labels"]["alertname"], a["labels"]["operator"]) for a in held] == [
        ("SiteOnBattery", "unknown")
    ]
    assert held[0]["fingerprint"] == first["fingerprint"]
    noted = webhook.notifications("noc", lambda n: _about(n, "hl-bts-late"))
    assert [n.status for n in noted] == ["firing"]  # one page, and no 'resolved'


def held_by(alertmanager: AlertmanagerServer, site: str) -> list[dict[str, Any]]:
    return [a for a in alertmanager.alerts() if a["labels"].get("site") == site]


def _about(note: Notification, site: str) -> bool:
    return any(a["labels"].get("site") == site for a in note.alerts)


def test_a_meeting_at_risk_names_its_meeting_and_goes_to_the_province(
    alertmanager: AlertmanagerServer,
    webhook: Webhook,
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector("meeting")
    now = datetime.now(UTC)
    point = FleetSite("hp-dc-risk", kind="meeting_point", operator="vnpt")
    send_all(collector, [point.meta(now), point.report(now, down=["mw-b", "vsat-c"])])
    meeting = collector.plan_meeting(
        MeetingRequest(
            title="Họp khẩn ứng phó bão số 3",
            starts_at=now + timedelta(hours=1),
            duration_s=3 * 3600,
            points=("hp-dc-risk",),
        ),
        ["hp-dc-risk"],
    )
    alerts = wait_until(
        lambda: [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "MeetingAtRisk"]
    )
    assert alerts[0]["labels"]["meeting"] == meeting.id
    assert alerts[0]["labels"]["site"] == "hp-dc-risk"
    assert "this point will not hold" in alerts[0]["annotations"]["summary_en"]
    note = wait_until(
        lambda: webhook.notifications(
            "hp-it", lambda n: any(a["labels"]["alertname"] == "MeetingAtRisk" for a in n.alerts)
        )
    )
    assert note[0].status == "firing"


def test_the_sender_survives_an_unexpected_error_and_forgets_nothing(
    alertmanager: AlertmanagerServer, make_collector: Callable[..., Collector]
) -> None:
    collector = make_collector("errors")
    sender = collector.alerts
    assert sender is not None
    calls = {"n": 0}
    real = sender.store.replace

    def flaky(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    sender.store.replace = flaky  # type: ignore[method-assign]
    site = FleetSite("hx-bts-err")
    now = datetime.now(UTC)
    send_all(collector, [site.meta(now), site.report(now, mains=False)])
    wait_until(lambda: firing(alertmanager, "hx-"))
    assert metric(collector, 'kienco_thread_errors_total{thread="alerts"}') == 1
    assert metric(collector, 'kienco_thread_alive{thread="alerts"}') == 1
    assert sender._thread.is_alive()


def test_the_shipped_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not installed: apt-get install -y prometheus-alertmanager")
    done = subprocess.run(
        [amtool, "check-config", str(SHIPPED_ALERTMANAGER)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "6 inhibit rules" in done.stdout
