"""The SNMP probe against a real snmpsim serving firmware-configs/recordings/ups-mib.snmprec."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from agent.probes.snmp import SnmpTarget, collect
from agent.profiles import Profile, load_profile_by_name, oids
from agent.snmp_transport import SnmpError, SnmpV2cTransport
from agent.wire import PowerReading
from kienco.local_services import free_port
from tests.support.snmpsim import SnmpSetError, SnmpSim, snmp_set, snmp_set_many

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
    return load_profile_by_name("ups-mib")


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


async def test_transport_raises_a_typed_error_with_the_device(transport: SnmpV2cTransport) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with pytest.raises(SnmpError) as caught:
        await transport.get("127.0.0.1", port, "ups-mib", [UPS + "2.4.0"], timeout_s=0.2, retries=0)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_the_community_does_not_print() -> None:
    device = SnmpTarget(device="ups-1", host="10.0.0.1", community="s3cret", profile="ups-mib")
    assert "s3cret" not in repr(device) and "s3cret" not in str(device)
