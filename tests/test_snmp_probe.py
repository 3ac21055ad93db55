"""The SNMP probe and transport against a real snmpsim serving firmware-configs/recordings/:
v2c and v3 (authPriv SHA/AES), GETs and table walks, dead devices and bad keys."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from agent.config import SiteConfig
from agent.cycle import poll_once
from agent.probes import Transports
from agent.probes.snmp import SnmpTarget, collect, collect_interfaces
from agent.profiles import InterfaceProfile, Profile, load_profile_by_name, oids
from agent.snmp_transport import CommunityAuth, SnmpError, SnmpV2cTransport, UsmAuth
from contract.wire import InterfaceReading, PowerReading, utc_now
from kienco.local_services import free_port
from tests.support.snmpsim import (
    RECORDINGS,
    SnmpSetError,
    SnmpSim,
    serving,
    snmp_set,
    snmp_set_many,
)

pytestmark = pytest.mark.snmp

UPS = "1.3.6.1.2.1.33.1."
SOURCE, SECONDS, MINUTES, INPUT_V = UPS + "4.1.0", UPS + "2.2.0", UPS + "2.3.0", UPS + "3.3.1.3.1"
RECORDED = {SOURCE: 3, SECONDS: 0, MINUTES: 48, INPUT_V: 230}


@pytest.fixture
async def transport() -> AsyncIterator[SnmpV2cTransport]:
    # One per test: a pysnmp engine belongs to the event loop that first uses it.
    snmp = SnmpV2cTransport()
    yield snmp
    snmp.close()


@pytest.fixture(scope="module")
def profile() -> Profile:
    loaded = load_profile_by_name("ups-mib")
    assert isinstance(loaded, Profile)
    return loaded


@pytest.fixture(scope="module")
def router() -> InterfaceProfile:
    loaded = load_profile_by_name("if-mib-router")
    assert isinstance(loaded, InterfaceProfile)
    return loaded


def target(sim: SnmpSim, **changes: object) -> SnmpTarget:
    fields: dict[str, object] = {
        "device": "ups-1",
        "host": sim.host,
        "port": sim.port,
        "community": sim.community("ups-mib"),
        "profile": "ups-mib",
    }
    return SnmpTarget.model_validate({**fields, **changes})


async def test_recorded_ups_on_mains(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, profile: Profile
) -> None:
    reading = await collect(target(snmpsim), transport=transport, profile=profile)
    assert reading == PowerReading(
        device="ups-1",
        profile="ups-mib",
        mains_present=True,
        on_battery=False,
        battery_status="normal",
        battery_charge_pct=100,
        battery_runtime_s=48 * 60,
        battery_voltage_v=54.5,
        battery_temperature_c=27,
        on_battery_for_s=0,
        input_v=230,
        output_v=230,
        load_pct=35,
        alarms_count=0,
        input_line_bads_count=3,
        output_off=False,
        on_bypass=False,
    )


async def test_ups_set_onto_battery_shows_at_the_next_poll(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, profile: Profile
) -> None:
    community = snmpsim.community("ups-mib")
    on_battery = {SOURCE: 5, SECONDS: 120, MINUTES: 38, INPUT_V: 0}
    try:
        await snmp_set_many(snmpsim.host, snmpsim.port, community, on_battery)
        reading = await collect(target(snmpsim), transport=transport, profile=profile)
    finally:
        # The simulator is shared by the session: put the UPS back on mains.
        await snmp_set_many(snmpsim.host, snmpsim.port, community, RECORDED)
    assert reading.error is None
    assert (reading.on_battery, reading.on_battery_for_s) == (True, 120)
    assert (reading.battery_runtime_s, reading.mains_present) == (2280, False)
    back = await collect(target(snmpsim), transport=transport, profile=profile)
    assert (back.on_battery, back.mains_present, back.battery_runtime_s) == (False, True, 2880)


@pytest.mark.parametrize(("source", "off", "bypass"), [(2, True, False), (4, False, True)])
async def test_output_off_and_bypass_show_at_the_next_poll(
    snmpsim: SnmpSim,
    transport: SnmpV2cTransport,
    profile: Profile,
    source: int,
    off: bool,
    bypass: bool,
) -> None:
    """upsOutputSource none(2): what the UPS feeds is dark with the mains present;
    bypass(4): the battery would not take over."""
    community = snmpsim.community("ups-mib")
    try:
        await snmp_set_many(snmpsim.host, snmpsim.port, community, {SOURCE: source})
        reading = await collect(target(snmpsim), transport=transport, profile=profile)
    finally:
        await snmp_set_many(snmpsim.host, snmpsim.port, community, RECORDED)
    assert (reading.output_off, reading.on_bypass, reading.on_battery) == (off, bypass, False)
    assert reading.mains_present is True


async def test_a_set_on_a_read_only_record_is_refused(snmpsim: SnmpSim) -> None:
    battery_voltage = UPS + "2.5.0"  # recorded without :writecache
    with pytest.raises(SnmpSetError, match="not taken"):
        await snmp_set(snmpsim.host, snmpsim.port, "ups-mib", battery_voltage, 480)
    with pytest.raises(SnmpSetError, match="not taken"):  # one bad varbind spoils the batch
        await snmp_set_many(
            snmpsim.host, snmpsim.port, "ups-mib", {SOURCE: 3, battery_voltage: 480}
        )


async def test_dead_device_gives_an_error_reading_and_the_good_one_still_answers(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, profile: Profile
) -> None:
    dead = target(snmpsim, device="ups-dead", port=free_port(socket.SOCK_DGRAM), timeout_s=0.5)
    good = target(snmpsim, timeout_s=0.5)
    started = time.monotonic()
    dead_reading, good_reading = await asyncio.gather(
        collect(dead, transport=transport, profile=profile),
        collect(good, transport=transport, profile=profile),
    )
    elapsed = time.monotonic() - started
    assert elapsed < dead.worst_case_s + 1, elapsed
    assert dead_reading.device == "ups-dead" and dead_reading.error
    assert "timeout" in dead_reading.error.lower()
    assert dead_reading.model_dump(exclude={"device", "profile", "error"}) == dict.fromkeys(
        dead_reading.model_dump(exclude={"device", "profile", "error"})
    )
    assert good_reading.error is None and good_reading.battery_charge_pct == 100


async def test_transport_values_and_chunking(snmpsim: SnmpSim, profile: Profile) -> None:
    snmp = SnmpV2cTransport(oids_per_request=3)  # 12 OIDs -> 4 requests
    try:
        wanted = [*oids(profile), "1.3.6.1.2.1.1.6.0", "1.3.6.1.2.1.1.2.0", UPS + "9.99.0"]
        answer = await snmp.get(
            snmpsim.host, snmpsim.port, "ups-mib", wanted, timeout_s=1, retries=0
        )
    finally:
        snmp.close()
    assert list(answer) == wanted
    assert answer[UPS + "2.4.0"] == 100 and answer[UPS + "6.1.0"] == 0  # Integer, Gauge32
    assert answer["1.3.6.1.2.1.1.6.0"] == "Trạm viễn thông Huế 01".encode()  # UTF-8 bytes
    assert answer["1.3.6.1.2.1.1.2.0"] == "1.3.6.1.2.1.33"
    assert answer[UPS + "9.99.0"] is None  # noSuchInstance


ALARMS = UPS + "6.1.0"


@pytest.fixture(scope="module")
def v1_style_card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """The ups-mib recording served by a card whose v2c agent answers an object it lacks
    the SNMPv1 way: errorStatus noSuchName for the whole GET, not a noSuchObject varbind."""
    recorded = (RECORDINGS / "ups-mib.snmprec").read_text(encoding="utf-8").splitlines()
    kept = [line for line in recorded if not line.startswith(ALARMS + "|")]
    lacking = f"{ALARMS}|2:error|op=get,status=nosuchname"
    text = "\n".join(sorted([*kept, lacking], key=lambda line: _oid_key(line))) + "\n"
    with serving(tmp_path_factory.mktemp("v1-style-card"), {"ups-mib": text}) as sim:
        yield sim


def _oid_key(line: str) -> tuple[int, ...]:
    return tuple(int(part) for part in line.split("|", 1)[0].split("."))


async def test_an_object_answered_no_such_name_is_unknown_and_the_rest_still_read(
    v1_style_card: SnmpSim, profile: Profile
) -> None:
    """RFC 3584 §4.4: a v1 noSuchName is a v2 noSuchObject for that varbind. Taken for the
    whole GET, it made a card lacking one optional object (upsAlarmsPresent) an error
    reading: on battery, charge and runtime all unknown, the site unknown or not ready
    for a card that answers every one of them."""
    snmp = SnmpV2cTransport(oids_per_request=5)  # the lacking object in the third request
    try:
        card = (v1_style_card.host, v1_style_card.port)
        answer = await snmp.get(*card, "ups-mib", oids(profile), timeout_s=1, retries=0)
        reading = await collect(target(v1_style_card), transport=snmp, profile=profile)
    finally:
        snmp.close()
    assert answer[ALARMS] is None and answer[UPS + "2.4.0"] == 100
    assert set(answer) == set(oids(profile))
    assert reading.error is None and reading.alarms_count is None
    assert (reading.on_battery, reading.mains_present, reading.battery_charge_pct) == (
        False, True, 100.0,
    )  # fmt: skip


async def test_transport_raises_a_typed_error_with_the_device(transport: SnmpV2cTransport) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with pytest.raises(SnmpError) as caught:
        await transport.get("127.0.0.1", port, "ups-mib", [UPS + "2.4.0"], timeout_s=0.2, retries=0)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_secrets_do_not_print(snmpsim: SnmpSim) -> None:
    device = SnmpTarget(device="ups-1", host="10.0.0.1", community="s3cret", profile="ups-mib")
    v3 = target(snmpsim, v3=snmpsim.v3("ups-mib"))
    usm = UsmAuth("u1", auth_key="auth-s3cret", priv_key="priv-s3cret")
    printed = [repr(device), str(device), repr(v3), str(v3), repr(usm), str(usm)]
    printed += [repr(CommunityAuth("s3cret")), repr(v3.auth())]
    for text in printed:
        assert "s3cret" not in text and snmpsim.v3_auth_key not in text, text
        assert snmpsim.v3_priv_key not in text, text


async def test_v3_auth_priv_reads_the_same_recording(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, profile: Profile
) -> None:
    over_v3 = await collect(
        target(snmpsim, v3=snmpsim.v3("ups-mib")), transport=transport, profile=profile
    )
    over_v2c = await collect(target(snmpsim), transport=transport, profile=profile)
    assert over_v3.error is None
    assert over_v3 == over_v2c


async def test_v3_wrong_key_is_an_error_reading_and_no_hang(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, profile: Profile
) -> None:
    wrong = target(
        snmpsim,
        v3=snmpsim.v3("ups-mib", auth_key={"value": "not-the-auth-key"}),
        timeout_s=0.5,
        retries=1,
    )
    started = time.monotonic()
    reading = await collect(wrong, transport=transport, profile=profile)
    assert time.monotonic() - started < wrong.worst_case_s + 0.5
    assert reading.error and reading.error.startswith(f"snmp {snmpsim.host}:{snmpsim.port}")
    assert reading.battery_charge_pct is None and reading.on_battery is None
    # The right key on the same transport still works: one user name, two keys, kept apart.
    right = await collect(
        target(snmpsim, v3=snmpsim.v3("ups-mib")), transport=transport, profile=profile
    )
    assert right.error is None and right.battery_charge_pct == 100


async def test_v3_keys_from_a_missing_env_variable_fail_that_device_only(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, profile: Profile
) -> None:
    unset = target(snmpsim, v3=snmpsim.v3("ups-mib", auth_key={"env": "KIENCO_TEST_UNSET_KEY"}))
    reading = await collect(unset, transport=transport, profile=profile)
    assert reading.error == "environment variable KIENCO_TEST_UNSET_KEY is not set"


IF, IFX = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."


@pytest.mark.parametrize("max_repetitions", [25, 2])
async def test_walk_reads_whole_columns_and_stops_at_their_end(
    snmpsim: SnmpSim, max_repetitions: int
) -> None:
    snmp = SnmpV2cTransport(max_repetitions=max_repetitions)  # 2: many GETBULKs per column
    columns = [IF + "2", IFX + "1", IFX + "6", "1.3.6.1.4.1.99999.1"]
    try:
        walked = await snmp.walk(
            snmpsim.host, snmpsim.port, "if-mib-router", columns, timeout_s=1, retries=0
        )
        bounded = await snmp.walk(
            snmpsim.host,
            snmpsim.port,
            "if-mib-router",
            columns[:2],
            timeout_s=1,
            retries=0,
            max_rows=4,
        )
    finally:
        snmp.close()
    assert list(walked) == columns
    indexes = [str(i) for i in range(1, 10)]
    assert [list(cells) for cells in walked.values()] == [indexes, indexes, indexes, []]
    assert walked[IF + "2"]["1"] == b"GigabitEthernet0/0/0"
    assert walked[IFX + "1"]["9"] == b"BD100"
    assert walked[IFX + "6"]["5"] == 41_205_713_830_927  # Counter64 past 2**32
    assert [list(cells) for cells in bounded.values()] == [indexes[:4], indexes[:4]]


async def test_interfaces_over_v3_and_a_dead_router(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, router: InterfaceProfile
) -> None:
    def router_target(**changes: object) -> SnmpTarget:
        return target(snmpsim, device="rt-1", profile="if-mib-router", **changes)

    ports = await collect_interfaces(
        router_target(v3=snmpsim.v3("if-mib-router")), transport=transport, profile=router
    )
    assert [p.port for p in ports] == ["gi0-0-0", "gi0-0-1", "gi0-0-2", "gi0-0-3", "te0-0-4"]
    assert all(p.error is None and p.device == "rt-1" for p in ports)
    dead = router_target(port=free_port(socket.SOCK_DGRAM), timeout_s=0.3, retries=0)
    (failed,) = await collect_interfaces(dead, transport=transport, profile=router)
    assert failed.model_dump(exclude_none=True) == {
        "device": "rt-1",
        "port": "all",
        "error": f"snmp {snmpsim.host}:{dead.port}: no answer within 0.3 s"
        " (timeout 0.3 s x 1 tries)",
    }


def site_with(devices: list[dict[str, object]], credentials: dict[str, object]) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": "dn-bts-007",
            "province": "dn",
            "kind": "station",
            "name": "Trạm BTS Sơn Trà",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "snmp_credentials": credentials,
            "devices": devices,
        }
    )


async def test_a_dead_device_delays_the_cycle_by_its_own_budget_only(snmpsim: SnmpSim) -> None:
    timeout_s, retries = 0.4, 1
    budget = timeout_s * (retries + 1)
    good = [
        ("ups-mib", "ups-1", "ups"),
        ("apc-powernet-ups", "ups-2", "ups"),
        ("vertiv-netsure-dc", "dc-1", "rectifier"),
        ("if-mib-router", "rt-1", "router"),
    ]
    devices: list[dict[str, object]] = [
        {
            "device": device,
            "role": role,
            "profile": name,
            "host": snmpsim.host,
            "port": snmpsim.port,
            "credentials": name,
            # The live devices get time to spare: on a loaded machine snmpsim answers slowly,
            # and only the dead devices' budget is under test.
            "timeout_s": 5.0,
            "retries": 0,
        }
        for name, device, role in good
    ]
    # Three dead devices: polled one after another they would take three budgets; polled
    # concurrently, one. The gap between the two is what the test reads, so a loaded
    # machine slowing the good polls does not decide it.
    dead_port = free_port(socket.SOCK_DGRAM)
    dead = ("ups-dead", "ups-dead-2", "ups-dead-3")
    for name in dead:
        devices.insert(
            0,
            {
                **devices[0],
                "device": name,
                "port": dead_port,
                "timeout_s": timeout_s,
                "retries": retries,
            },
        )
    credentials: dict[str, object] = {
        name: {"community": {"value": snmpsim.community(name)}} for name, _, _ in good
    }
    transports = Transports()
    try:
        started = time.monotonic()
        report = await poll_once(site_with(devices, credentials), transports, seq=1, now=utc_now())
        elapsed = time.monotonic() - started
    finally:
        transports.snmp().close()
    # Concurrent polls: the cycle lasts about one dead device's budget, not the sum.
    assert budget <= elapsed < len(dead) * budget, elapsed
    power = {r.device: r for r in report.power}
    for name in dead:
        assert power[name].error == (
            f"snmp {snmpsim.host}:{dead_port}: no answer within 0.8 s (timeout 0.4 s x 2 tries)"
        )
    assert all(power[d].error is None for d in ("ups-1", "ups-2", "dc-1"))
    assert power["dc-1"].dc_voltage_v == -53.52
    assert len(report.interfaces) == 5
    assert all(isinstance(i, InterfaceReading) and i.error is None for i in report.interfaces)
