"""Every shipped profile polled against its recorded walk, through the real snmpsim.

A profile ``firmware-configs/profiles/<name>.yaml`` with a recording
``firmware-configs/recordings/<name>.snmprec`` is picked up here on its own: adding a
device model is one profile plus one recording. Each is polled over v2c (and all of
them once more over v3); every reading the profile declares must come back, unless
the profile's own ``test: {absent: [...]}`` says the recorded model does not serve
it, and every value must be plausible for a Vietnamese telecom site.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.probes import DeviceReading
from agent.probes.snmp import SnmpTarget, poll
from agent.profiles import (
    PROFILES_DIR,
    AnyProfile,
    InterfaceProfile,
    Profile,
    load_profile_by_name,
    oids,
    table_columns,
)
from agent.snmp_transport import SnmpV2cTransport
from contract.wire import InterfaceReading, PowerReading
from tests.support.snmpsim import RECORDINGS, SnmpSim

pytestmark = pytest.mark.snmp

CATALOGUE = sorted(
    p.stem for p in PROFILES_DIR.glob("*.yaml") if (RECORDINGS / f"{p.stem}.snmprec").is_file()
)

# (low, high) of a plausible value.
MAGNITUDE = {"dc_voltage_v", "battery_voltage_v"}  # -48 V plants read negative
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "battery_charge_pct": (0, 100),
    "battery_runtime_s": (60, 7 * 86_400),
    "battery_temperature_c": (5, 55),
    "battery_voltage_v": (10, 600),
    "battery_capacity_ah": (5, 20_000),
    "on_battery_for_s": (0, 30 * 86_400),
    "input_v": (180, 260),  # 220-230 V mains
    "output_v": (200, 250),
    "load_pct": (0, 150),
    "load_w": (0, 1_000_000),
    "dc_voltage_v": (40, 60),  # a -48 V (or +48 V) plant between discharge and boost
    "dc_load_a": (0, 5_000),
    "alarms_count": (0, 100),
    "input_line_bads_count": (0, 100_000),
    "fuel_pct": (0, 100),
    "speed_mbps": (1, 800_000),
    "rsl_dbm": (-90, -25),  # a working microwave link, not saturated
    "snr_db": (0, 80),
}


def load(name: str) -> AnyProfile:
    return load_profile_by_name(name)


def recorded_oids(name: str) -> list[str]:
    lines = (RECORDINGS / f"{name}.snmprec").read_text(encoding="utf-8").splitlines()
    return [line.split("|", 1)[0] for line in lines if line and not line.startswith("#")]


def test_the_catalogue_holds_the_shipped_device_families() -> None:
    expected = {
        "ups-mib",
        "apc-powernet-ups",
        "eaton-xups",
        "vertiv-netsure-dc",
        "if-mib-router",
        "saf-ipradio",
    }
    assert expected <= set(CATALOGUE)


@pytest.mark.parametrize("name", CATALOGUE)
def test_the_recording_holds_what_the_profile_reads(name: str) -> None:
    profile = load(name)
    recorded = recorded_oids(name)
    assert recorded == sorted(recorded, key=lambda o: tuple(map(int, o.split(".")))), (
        f"{name}.snmprec is not in OID order: snmpsim walks it in file order"
    )
    if isinstance(profile, Profile):
        absent = {
            profile.readings[n].instance_oid for n in profile.test.absent if n in profile.readings
        }
        missing = [oid for oid in oids(profile) if oid not in recorded and oid not in absent]
    else:
        missing = [
            c for c in table_columns(profile) if not any(o.startswith(c + ".") for o in recorded)
        ]
    assert not missing, f"{name}.snmprec lacks what the profile reads: {missing}"


def check(profile: AnyProfile, readings: list[DeviceReading]) -> None:
    """No error, every declared reading present (or declared absent), every value plausible."""
    if isinstance(profile, InterfaceProfile):
        declared = [*profile.columns, *profile.derive]
        assert all(isinstance(r, InterfaceReading) for r in readings)
        ports = [r.port for r in readings if isinstance(r, InterfaceReading)]
        assert len(ports) == len(set(ports)), ports
        if profile.test.rows is not None:
            assert len(readings) == profile.test.rows, ports
    else:
        declared = [*profile.readings, *profile.derive]
        assert len(readings) == 1 and isinstance(readings[0], PowerReading)
    assert readings, f"{profile.profile}: nothing read"
    for reading in readings:
        values: dict[str, Any] = reading.model_dump()
        assert values["error"] is None, values["error"]
        for name in declared:
            expect_absent = name in profile.test.absent
            assert (values[name] is None) == expect_absent, (profile.profile, name, values[name])
            low, high = PLAUSIBLE.get(name, (-float("inf"), float("inf")))
            value = values[name]
            if isinstance(value, int | float) and not isinstance(value, bool):
                size = abs(value) if name in MAGNITUDE else value
                assert low <= size <= high, (profile.profile, name, value)


@pytest.fixture
async def transport() -> AsyncIterator[SnmpV2cTransport]:
    snmp = SnmpV2cTransport()  # per test: a pysnmp engine belongs to one event loop
    yield snmp
    snmp.close()


async def poll_recording(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, name: str, *, v3: bool
) -> list[DeviceReading]:
    target = SnmpTarget(
        device=name,
        host=snmpsim.host,
        port=snmpsim.port,
        community=snmpsim.community(name),
        v3=snmpsim.v3(name) if v3 else None,
        profile=name,
        timeout_s=2.0,
        retries=1,
    )
    return await poll(target, transport=transport, profile=load(name))


@pytest.mark.parametrize("name", CATALOGUE)
async def test_profile_reads_its_recording(
    snmpsim: SnmpSim, transport: SnmpV2cTransport, name: str
) -> None:
    check(load(name), await poll_recording(snmpsim, transport, name, v3=False))


async def test_every_profile_reads_the_same_over_v3(
    snmpsim: SnmpSim, transport: SnmpV2cTransport
) -> None:
    for name in CATALOGUE:
        over_v3 = await poll_recording(snmpsim, transport, name, v3=True)
        check(load(name), over_v3)
        assert over_v3 == await poll_recording(snmpsim, transport, name, v3=False), name
