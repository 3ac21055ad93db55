"""SNMP traps become immediate events: the mapping (tables), and the real path
net-snmp's ``snmptrap`` -> the agent's receiver -> outbox -> Mosquitto -> collector -> status.

The status test uses a policy with no hold (``hold_s: 0``): the shipped policy holds a
change of the backup-power findings 60 s against flapping, which would delay the
status, not the event; that hold is a policy decision, not the trap path under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import DeviceConfig, SiteConfig
from agent.profiles import Profile, load_profile_by_name
from agent.runner import Agent
from agent.trap_profile import decode_trap
from agent.traps import (
    SNMP_TRAP_ADDRESS,
    SNMP_TRAP_OID,
    SYS_UPTIME,
    TrapReceiver,
    TrapValue,
    parse_engine_id,
    trap_to_event,
)
from collector.config import CollectorConfig
from collector.service import Collector
from collector.state import SiteStates
from contract.wire import Event, PowerReading, Report, Status
from kienco.local_services import free_port
from rules import Policy, SiteSnapshot, evaluate, load_policy
from tests.support.mosquitto import Broker
from tests.support.snmptrap import SnmpTrapSender
from tests.support.subscriber import Subscriber

UPS = "1.3.6.1.2.1.33"
ON_BATTERY_TRAP = f"{UPS}.2.1"
MINUTES_LEFT = f"{UPS}.1.2.3.0"
SECONDS_ON_BATTERY = f"{UPS}.1.2.2.0"
ALARM_DESCR_1 = f"{UPS}.1.6.2.1.2.1"
ALARM_ON_BATTERY = f"{UPS}.1.6.3.2"
APC = "1.3.6.1.4.1.318"
# Any octet string under the enterprise: the detail takes the last one (PowerNet-MIB puts
# mtrapargsString last), so the test needs no exact OID for it.
APC_ARGS = f"{APC}.2.3.3.0"
COMMUNITY = "kienco-trap"
V3_USER, V3_AUTH, V3_PRIV = "kienco-ups", "auth-secret-1", "priv-secret-1"
ENGINE_ID = "0x80001f8880c0ffee0102030405"
NOW = datetime(2025, 9, 7, 3, 0, tzinfo=UTC)
NO_HOLD = Policy.model_validate(
    {
        "backup_power": {"hold_s": 0},
        "multipath": {"hold_s": 0},
        "link_quality": {"hold_s": 0},
        "meeting": {"hold_s": 0},
    }
)

# --- trap_to_event: tables ---------------------------------------------------------------

DEVICES = (
    DeviceConfig(device="ups1", host="10.0.0.5", credentials="c", profile="ups-mib"),
    DeviceConfig(device="genset", protocol="modbus", host="10.0.0.9", profile="x"),
)


def binds(oid: str, *extra: tuple[str, TrapValue]) -> list[tuple[str, TrapValue]]:
    return [(SYS_UPTIME, 1234), (SNMP_TRAP_OID, oid), *extra]


def event_of(varbinds: list[tuple[str, TrapValue]], source: str = "10.0.0.5") -> Event | None:
    return trap_to_event(
        source, varbinds, devices=DEVICES, site="hp-bts-9", province="hp", seq=7, now=NOW
    )


ON_BATTERY = {"on_battery": True, "mains_present": False}
ON_MAINS = {"on_battery": False, "mains_present": True, "on_battery_for_s": 0.0}

TABLE: list[tuple[str, list[tuple[str, TrapValue]], str, dict[str, Any] | None, str]] = [
    (
        "upsTrapOnBattery (v2c form)",
        binds(ON_BATTERY_TRAP, (MINUTES_LEFT, 10), (SECONDS_ON_BATTERY, 120)),
        "on_battery",
        {**ON_BATTERY, "battery_runtime_s": 600.0, "on_battery_for_s": 120.0},
        "upsTrapOnBattery",
    ),
    (
        "upsTrapOnBattery (v1 form upsTraps.0.1)",
        binds(f"{UPS}.2.0.1", (MINUTES_LEFT, 10)),
        "on_battery",
        {**ON_BATTERY, "battery_runtime_s": 600.0},
        "upsTrapOnBattery",
    ),
    (
        "upsTrapOnBattery, runtime at the 16-bit cap is unknown",
        binds(ON_BATTERY_TRAP, (MINUTES_LEFT, 65535)),
        "on_battery",
        ON_BATTERY,
        "upsTrapOnBattery",
    ),
    (
        "alarm added: upsAlarmOnBattery",
        binds(f"{UPS}.2.3", (f"{UPS}.1.6.2.1.1.1", 1), (ALARM_DESCR_1, ALARM_ON_BATTERY)),
        "on_battery",
        ON_BATTERY,
        "upsAlarmOnBattery",
    ),
    (
        "alarm removed: upsAlarmOnBattery is back on mains",
        binds(f"{UPS}.2.4", (ALARM_DESCR_1, ALARM_ON_BATTERY)),
        "on_mains",
        ON_MAINS,
        "upsTrapAlarmEntryRemoved: upsAlarmOnBattery",
    ),
    (
        "alarm added: upsAlarmLowBattery (v1 form)",
        binds(f"{UPS}.2.0.3", (ALARM_DESCR_1, f"{UPS}.1.6.3.3")),
        "battery_low",
        {"battery_status": "low"},
        "upsAlarmLowBattery",
    ),
    (
        "alarm added: upsAlarmDepletedBattery",
        binds(f"{UPS}.2.3", (ALARM_DESCR_1, f"{UPS}.1.6.3.4")),
        "battery_low",
        {"battery_status": "depleted"},
        "upsAlarmDepletedBattery",
    ),
    (
        "alarm added: upsAlarmFanFailure",
        binds(f"{UPS}.2.3", (ALARM_DESCR_1, f"{UPS}.1.6.3.16")),
        "alarm",
        None,
        "upsTrapAlarmEntryAdded: upsAlarmFanFailure",
    ),
    (
        "alarm removed: upsAlarmInputBad",
        binds(f"{UPS}.2.4", (ALARM_DESCR_1, f"{UPS}.1.6.3.6")),
        "alarm_cleared",
        None,
        "upsAlarmInputBad",
    ),
    (
        "upsTrapTestCompleted",
        binds(f"{UPS}.2.2", (f"{UPS}.1.7.3.0", 3), (f"{UPS}.1.7.4.0", b"battery weak")),
        "test",
        None,
        "upsTrapTestCompleted: doneError battery weak",
    ),
    (
        "APC upsOnBattery (::= 5)",
        binds(f"{APC}.0.5", (APC_ARGS, b"UPS: On battery power in response to an input power")),
        "on_battery",
        ON_BATTERY,
        "upsOnBattery: UPS: On battery power",
    ),
    (
        "APC powerRestored (::= 9)",
        binds(f"{APC}.0.9", (APC_ARGS, b"UPS: No longer on battery power.")),
        "on_mains",
        ON_MAINS,
        "powerRestored",
    ),
    (
        "APC lowBattery (::= 7) is on battery and low",
        binds(f"{APC}.0.7"),
        "battery_low",
        {**ON_BATTERY, "battery_status": "low"},
        "lowBattery",
    ),
    (
        "APC returnFromLowBattery (::= 11)",
        binds(f"{APC}.0.11"),
        "alarm_cleared",
        None,
        "returnFromLowBattery",
    ),
]


@pytest.mark.parametrize(
    ("varbinds", "name", "power", "detail"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_trap_to_event(
    varbinds: list[tuple[str, TrapValue]],
    name: str,
    power: dict[str, Any] | None,
    detail: str,
) -> None:
    event = event_of(varbinds)
    assert event is not None
    assert (event.event, event.device, event.seq, event.at) == (name, "ups1", 7, NOW)
    assert event.site == "hp-bts-9" and event.province == "hp"
    assert event.detail is not None and detail in event.detail and "10.0.0.5" in event.detail
    if power is None:
        assert event.power is None
    else:
        assert event.power == PowerReading(device="ups1", **power)


@pytest.mark.parametrize(
    "varbinds",
    [
        binds("1.3.6.1.6.3.1.1.5.3"),  # linkDown: not a power trap
        binds(f"{APC}.0.268"),  # rPDUOutletOn: an APC trap kienco does not map
        binds(f"{UPS}.2.9"),
        [(SYS_UPTIME, 1)],  # no snmpTrapOID at all
    ],
    ids=["linkDown", "apc-unmapped", "ups-mib-unknown", "no-trap-oid"],
)
def test_unknown_traps_give_no_event(varbinds: list[tuple[str, TrapValue]]) -> None:
    assert event_of(varbinds) is None


def test_a_trap_from_an_unknown_address_is_reported_without_a_device() -> None:
    event = event_of(binds(ON_BATTERY_TRAP, (MINUTES_LEFT, 10)), source="10.9.9.9")
    assert event is not None and event.event == "on_battery"
    assert event.device is None and event.power is None, "it must not change any device"
    assert event.detail is not None and "10.9.9.9" in event.detail


def test_the_v1_agent_address_names_the_device_behind_a_relay() -> None:
    varbinds = binds(f"{UPS}.2.0.1", (SNMP_TRAP_ADDRESS, "10.0.0.5"))
    event = event_of(varbinds, source="192.0.2.1")
    assert event is not None and event.device == "ups1"


def test_engine_ids_are_read_as_net_snmp_writes_them() -> None:
    expected = bytes.fromhex("80001f8880c0ffee0102030405")
    assert parse_engine_id(ENGINE_ID) == expected
    assert parse_engine_id("80:00:1f:88:80:c0:ff:ee:01:02:03:04:05") == expected
    with pytest.raises(ValueError):
        parse_engine_id("0x0102")  # fewer than 5 octets


# --- the real thing: snmptrap -> agent -> Mosquitto ----------------------------------------


class Sender(SnmpTrapSender):
    """The trap tests' traps: upsTrapOnBattery over each SNMP version."""

    async def v2c(self, community: str = COMMUNITY) -> float:
        return await self.send(
            "-v", "2c", "-c", community, self.target(), "", ON_BATTERY_TRAP, *ON_BATTERY_VARBINDS
        )

    async def v1(self) -> float:
        # enterprise upsTraps, generic 6 (enterpriseSpecific), specific 1: upsTrapOnBattery
        return await self.send(
            "-v", "1", "-c", COMMUNITY, self.target(), f"{UPS}.2", "", "6", "1", "",
            *ON_BATTERY_VARBINDS,
        )  # fmt: skip

    async def v3(self) -> float:
        return await self.send(
            "-v", "3", "-e", ENGINE_ID, "-u", V3_USER, "-l", "authPriv",
            "-a", "SHA", "-A", V3_AUTH, "-x", "AES", "-X", V3_PRIV,
            self.target(), "", ON_BATTERY_TRAP, *ON_BATTERY_VARBINDS,
        )  # fmt: skip


ON_BATTERY_VARBINDS = (MINUTES_LEFT, "i", "10", SECONDS_ON_BATTERY, "i", "120")


def trap_site(tmp_path: Path, broker: Broker, site: str, **overrides: Any) -> SiteConfig:
    data: dict[str, Any] = {
        "site": site,
        "province": "hp",
        "kind": "station",
        "name": "Trạm có bẫy SNMP",
        "interval_s": 3600,  # no poll between the first report and the trap
        "broker": {"url": broker.url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / f"{site}.sqlite")},
        "disk_path": str(tmp_path),
        "snmp_credentials": {
            "ups-v3": {
                "version": "3",
                "user": V3_USER,
                "auth_key": {"value": V3_AUTH},
                "priv_key": {"value": V3_PRIV},
            }
        },
        "devices": [
            {
                "device": "ups1",
                "profile": "ups-mib",
                "host": "127.0.0.1",  # where snmptrap sends from
                "port": 1161,
                "credentials": "ups-v3",
            }
        ],
        "traps": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": free_port(socket.SOCK_DGRAM),
            "communities": [{"value": COMMUNITY}],
            "v3_users": ["ups-v3"],
        },
    }
    data.update(overrides)
    return SiteConfig.model_validate(data)


class FakeUps:
    """Stands in for the probes: the UPS as the agent's polls would read it.

    Polls after the first wait for ``release``, so a test can show that what it saw
    came from the trap and not from a poll.
    """

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.on_battery = False
        self.calls = 0
        self.release = asyncio.Event()

    async def measure(self, seq: int, now: datetime) -> Report:
        self.calls += 1
        if self.calls > 1:
            await self.release.wait()
        reading = PowerReading(
            device="ups1",
            on_battery=self.on_battery,
            mains_present=not self.on_battery,
            on_battery_for_s=5.0 if self.on_battery else 0.0,
            battery_runtime_s=600.0 if self.on_battery else 2880.0,
            battery_charge_pct=97.0,
            load_pct=35.0,
        )
        return Report(
            site=self.config.site,
            province=self.config.province,
            seq=seq,
            taken_at=now,
            interval_s=self.config.interval_s,
            power=(reading,),
        )


async def wait_until(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def events(sub: Subscriber) -> list[Event]:
    return [Event.model_validate_json(p) for t, p in sub.received() if t.endswith("/event")]


async def running(agent: Agent) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await wait_until(lambda: agent.connected and agent.traps is not None)
    return stop, task


@pytest.mark.parametrize("version", ["v2c", "v1", "v3"])
async def test_snmptrap_on_battery_arrives_on_the_broker_as_an_event(
    tmp_path: Path, mosquitto: Broker, snmptrap: str, version: str
) -> None:
    site = f"hp-trap-{version}"
    config = trap_site(tmp_path, mosquitto, site)
    receiver = TrapReceiver.from_config(config, engine_ids=[parse_engine_id(ENGINE_ID)])
    ups = FakeUps(config)
    ups.release.set()
    agent = Agent(config, measure=ups.measure, traps=receiver)
    sub = Subscriber(mosquitto.port, f"kienco/v1/hp/{site}/event", client_id=f"t-{site}")
    stop, task = await running(agent)
    sender = Sender(snmptrap, receiver.bound_port, tmp_path / "snmp")
    try:
        send: Callable[[], Awaitable[float]] = getattr(sender, version)
        sent_at = await send()
        got = await wait_until(lambda: events(sub), timeout_s=5)
        arrived_s = time.monotonic() - sent_at
        await wait_until(lambda: ups.calls >= 2)  # an on-battery trap starts a poll at once
    finally:
        stop.set()
        await task
        sub.close()
    (event,) = got
    assert (event.event, event.device, event.site, event.province) == (
        "on_battery",
        "ups1",
        site,
        "hp",
    )
    assert event.power == PowerReading(
        device="ups1",
        on_battery=True,
        mains_present=False,
        battery_runtime_s=600.0,
        on_battery_for_s=120.0,
    )
    via = {"v2c": "v2c", "v1": "v1", "v3": f"v3 {V3_USER}"}[version]
    assert event.detail == f"upsTrapOnBattery (from 127.0.0.1 {via})"
    assert arrived_s < 2.0, f"the event took {arrived_s:.2f} s"


async def test_a_trap_with_a_wrong_community_is_ignored(
    tmp_path: Path, mosquitto: Broker, snmptrap: str
) -> None:
    config = trap_site(tmp_path, mosquitto, "hp-trap-wrong")
    ups = FakeUps(config)
    ups.release.set()
    agent = Agent(config, measure=ups.measure)  # the receiver straight from the config
    sub = Subscriber(mosquitto.port, "kienco/v1/hp/hp-trap-wrong/event", client_id="t-wrong")
    stop, task = await running(agent)
    assert agent.traps is not None
    sender = Sender(snmptrap, agent.traps.bound_port, tmp_path / "snmp")
    try:
        await sender.v2c(community="not-the-community")
        await sender.v2c()  # then a good one: once it is here, the bad one had its chance
        await wait_until(lambda: events(sub), timeout_s=5)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task
        sub.close()
    assert len(events(sub)) == 1
    assert agent.traps.received_total == 1
    assert agent.events_total == 1


async def test_an_event_stored_during_an_outage_goes_before_the_backlog(
    tmp_path: Path, fresh_broker: Broker, snmptrap: str
) -> None:
    config = trap_site(tmp_path, fresh_broker, "hp-trap-outage")
    ups = FakeUps(config)
    ups.release.set()
    agent = Agent(config, measure=ups.measure)
    sub = Subscriber(fresh_broker.port, "kienco/v1/hp/hp-trap-outage/+", client_id="t-outage")
    stop, task = await running(agent)
    assert agent.traps is not None
    sender = Sender(snmptrap, agent.traps.bound_port, tmp_path / "snmp")
    try:
        await wait_until(lambda: [t for t, _ in sub.received() if t.endswith("/report")])
        fresh_broker.stop()
        await wait_until(lambda: not agent.connected)
        for _ in range(300):  # a backlog: the link was down for a while
            await agent.poll_and_store()
        await sender.v2c()
        await wait_until(lambda: agent.events_total == 1)
        await asyncio.to_thread(fresh_broker.start)
        await wait_until(lambda: agent.outbox.depth() == 0, timeout_s=30)
        await wait_until(lambda: len(sub.received()) >= 300 + 2)
    finally:
        stop.set()
        await task
        sub.close()
    data = [
        (t.rsplit("/", 1)[1], json.loads(p)["seq"])
        for t, p in sub.received()
        if t.endswith(("/report", "/event"))
    ]
    # The report from before the outage may come again (QoS 1 redelivery after the broker's
    # restart, when its PUBACK was not in yet): only what was stored during it counts.
    first_seq = data[0][1]
    after_outage = [kind for kind, seq in data if seq > first_seq]
    assert after_outage[0] == "event", f"the event waited behind the backlog: {after_outage[:5]}"
    kinds = [kind for kind, _ in data]
    assert kinds.count("event") == 1, "published once, not again by the drain"


# --- end to end: the collector's status flips from the trap alone ----------------------------


@pytest.fixture
def collector(tmp_path: Path, mosquitto: Broker) -> Iterator[Collector]:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": f"c-traps-{os.getpid()}",
                "topic_filter": "kienco/v1/hp/hp-trap-e2e/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "status": {"sweep_s": 0.2},
        }
    )
    running_collector = Collector(config, policy=NO_HOLD)
    running_collector.start(serve_http=False)
    assert running_collector.wait_connected(10)
    yield running_collector
    running_collector.stop()


async def test_a_trap_flips_the_status_within_two_seconds_without_a_poll(
    tmp_path: Path, mosquitto: Broker, snmptrap: str, collector: Collector
) -> None:
    site = "hp-trap-e2e"
    config = trap_site(tmp_path, mosquitto, site)
    ups = FakeUps(config)
    agent = Agent(config, measure=ups.measure)
    seen: list[tuple[float, str, bytes]] = []
    sub = Subscriber(mosquitto.port, f"kienco/v1/hp/{site}/+", client_id="t-e2e")
    # Time each message as it arrives (paho's thread), not when the test looks.
    original = sub.client.on_message
    assert original is not None

    def timed(client: Any, userdata: Any, message: Any) -> None:
        seen.append((time.monotonic(), message.topic, bytes(message.payload)))
        original(client, userdata, message)

    sub.client.on_message = timed

    def statuses() -> list[tuple[float, Status]]:
        return [
            (at, Status.model_validate_json(p)) for at, t, p in list(seen) if t.endswith("/status")
        ]

    stop, task = await running(agent)
    assert agent.traps is not None
    sender = Sender(snmptrap, agent.traps.bound_port, tmp_path / "snmp")
    try:
        before = await wait_until(
            lambda: [s for _, s in statuses() if s.station_state == "up_commercial"]
        )
        first_report_at = before[-1].last_report_at
        assert ups.calls == 1
        ups.on_battery = True  # the UPS's own state, for the poll the trap starts
        sent_at = await sender.v2c()
        flipped = await wait_until(
            lambda: [(at, s) for at, s in statuses() if s.station_state == "up_battery"], 5
        )
        received_at, status = flipped[0]
        # Only then may the poll the trap started finish.
        assert ups.calls == 2, "the trap starts a poll at once"
        reports_before_release = [t for _, t, _ in seen if t.endswith("/report")]
        ups.release.set()
        await wait_until(lambda: len([t for _, t, _ in seen if t.endswith("/report")]) == 2)
    finally:
        ups.release.set()
        stop.set()
        await task
        sub.close()
    latency = received_at - sent_at
    assert latency < 2.0, f"status flipped {latency:.2f} s after snmptrap returned"
    assert status.last_report_at == first_report_at, "the flip came from a report, not the trap"
    assert len(reports_before_release) == 1, "no poll result reached the broker before the flip"
    assert {r.code for r in status.reasons} >= {"on_battery_no_generator"}
    event = next(json.loads(p) for _, t, p in seen if t.endswith("/event"))
    assert event["event"] == "on_battery" and event["device"] == "ups1"
    held = collector.states.get(site)
    assert held is not None and held.power["ups1"][0].on_battery is True


def _trapped(polled: PowerReading, trap: PowerReading) -> tuple[SiteSnapshot, datetime]:
    """Site s1 polled on mains at NOW, then ``trap`` a minute later (upsTrapOnBattery), as
    the collector folds them; and when the trap came."""
    states = SiteStates()
    states.apply_report(
        Report(site="s1", province="hp", seq=0, taken_at=NOW, interval_s=60, power=(polled,))
    )
    later = NOW.replace(minute=1)
    event = Event(site="s1", province="hp", seq=1, at=later, event="on_battery", power=trap)
    assert states.apply_event(event)
    held = states.get("s1")
    assert held is not None
    return held, later


def _polled_on_mains(charge_pct: float, load_pct: float, runtime_s: float) -> PowerReading:
    return PowerReading(
        device="ups1",
        on_battery=False,
        mains_present=True,
        battery_charge_pct=charge_pct,
        load_pct=load_pct,
        battery_runtime_s=runtime_s,
    )


def test_an_event_updates_only_what_the_trap_says_at_the_collector() -> None:
    trap = PowerReading(device="ups1", on_battery=True, mains_present=False, battery_runtime_s=600)
    held, later = _trapped(_polled_on_mains(97.0, 35.0, 2880.0), trap)
    reading, at = held.power["ups1"]
    assert at == later and held.last_report_at == NOW, "an event is not a report"
    assert (reading.on_battery, reading.mains_present, reading.battery_runtime_s) == (
        True,
        False,
        600.0,
    )
    assert (reading.battery_charge_pct, reading.load_pct) == (97.0, 35.0), "kept from the poll"


@pytest.mark.parametrize(
    ("polled_runtime_s", "trap_runtime_s", "runtime_after"),
    [
        (0.0, None, None),  # a vendor's 0 on line: not a battery run flat, unknown
        (2880.0, None, 2880.0),  # a real estimate on line stays the estimate
        (0.0, 0.0, 0.0),  # the trap itself says 0: it is believed
    ],
)
def test_an_on_battery_trap_over_an_on_line_zero_runtime_is_no_dark_site(
    polled_runtime_s: float, trap_runtime_s: float | None, runtime_after: float | None
) -> None:
    """Some UPS-MIB units report 0 min left while on mains (the rules ignore it there,
    rules/autonomy.py). upsTrapOnBattery says only on battery and mains absent: laid over
    that poll, the site read "on battery, 0 s left" at 100 % charge, down_power, critical
    (a false SiteDark for every such UPS when a storm takes the mains)."""
    trap = PowerReading(
        device="ups1", on_battery=True, mains_present=False, battery_runtime_s=trap_runtime_s
    )
    held, later = _trapped(_polled_on_mains(100.0, 30.0, polled_runtime_s), trap)
    assert held.power["ups1"][0].battery_runtime_s == runtime_after
    evaluation = evaluate(held, load_policy(), later)
    assert (evaluation.station_state == "down_power") is (runtime_after == 0.0)


@pytest.mark.parametrize(
    ("alarm", "field", "state", "code"),
    [
        ("upsAlarmUpsOutputOff", "output_off", "down_power", "power_output_off"),
        ("upsAlarmOutputOffAsRequested", "output_off", "down_power", "power_output_off"),
        ("upsAlarmOnBypass", "on_bypass", "up_commercial", "ups_on_bypass"),
    ],
)
def test_an_output_off_or_bypass_alarm_is_judged_at_once(
    alarm: str, field: str, state: str, code: str
) -> None:
    """upsTrapAlarmEntryAdded naming the output switched off (or the bypass): the site is
    dark (or without its battery) from the trap, not from the next poll a minute later."""
    profile = load_profile_by_name("ups-mib")
    assert isinstance(profile, Profile)
    well_known = {
        "upsAlarmOnBypass": "9",
        "upsAlarmOutputOffAsRequested": "11",
        "upsAlarmUpsOutputOff": "14",
    }
    descr = "1.3.6.1.2.1.33.1.6.3." + well_known[alarm]  # upsAlarmDescr: an OID
    meaning = decode_trap(
        profile, "upsTrapAlarmEntryAdded", {"1.3.6.1.2.1.33.1.6.2.1.2.5": descr}, "ups1"
    )
    assert meaning.power is not None and getattr(meaning.power, field) is True
    held, later = _trapped(_polled_on_mains(100.0, 30.0, 36_000.0), meaning.power)
    evaluation = evaluate(held, load_policy(), later)
    assert evaluation.station_state == state
    assert code in [f.code for f in evaluation.findings]
    cleared = decode_trap(
        profile, "upsTrapAlarmEntryRemoved", {"1.3.6.1.2.1.33.1.6.2.1.2.5": descr}, "ups1"
    )
    assert cleared.event == "alarm_cleared"
    assert cleared.power is not None and getattr(cleared.power, field) is False


async def test_a_taken_trap_port_leaves_the_agent_running(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = trap_site(tmp_path, mosquitto, "hp-trap-taken")
        config = config.model_copy(update={"traps": config.traps.model_copy(update={"port": port})})
        ups = FakeUps(config)
        ups.release.set()
        agent = Agent(config, measure=ups.measure)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await wait_until(lambda: agent.published_total >= 1)  # the first report went out
        finally:
            stop.set()
            await task
    assert agent.traps is None
