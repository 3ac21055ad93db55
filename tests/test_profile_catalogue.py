"""Every shipped profile read from its recording, through the real component.

A profile in ``firmware-configs/profiles/`` with a recording of the same name in
``firmware-configs/recordings/`` is picked up here on its own: adding a device model
is one profile plus one recording.

- SNMP ``<name>.yaml`` + ``<name>.snmprec``: polled through snmpsim over v2c (and all
  of them once more over v3).
- its ``traps:`` section + ``<name>.traps.yaml``: every recorded trap sent with
  net-snmp's ``snmptrap`` (as v2c and as v1) to the agent's trap receiver, and every
  notification and case of the section met at least once.
- NUT ``<name>.nut.yaml`` + ``<name>.dev``: served by a real upsd + dummy-ups, polled.
- Modbus ``<name>.modbus.yaml`` + the register dump of the same name: served by a
  pymodbus server, polled.

Every reading the profile declares must come back, unless the profile's own
``test: {absent: [...]}`` says the recorded model does not serve it, and every value
must be plausible for a Vietnamese telecom site.
"""

from __future__ import annotations

import asyncio
import glob
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from agent.config import DeviceConfig, SiteConfig
from agent.modbus_profile import ModbusProfile, load_modbus_profile_by_name
from agent.nut_profile import NutProfile, load_nut_profile_by_name
from agent.probes import DeviceReading, Transports
from agent.probes import modbus as modbus_probe
from agent.probes import nut as nut_probe
from agent.probes.snmp import SnmpTarget, poll
from agent.profiles import (
    PROFILES_DIR,
    AnyProfile,
    InterfaceProfile,
    Profile,
    load_profile,
    load_profile_by_name,
    oids,
    snmp_profile_paths,
    table_columns,
)
from agent.snmp_transport import SnmpV2cTransport
from agent.trap_profile import decode_trap
from agent.traps import Trap, TrapReceiver, shipped_catalogue, trap_oid, trap_to_event
from contract.wire import InterfaceReading, PowerReading
from tests.support.modbus import ThreadedSimulator, recording
from tests.support.nut import Upsd, serve_recordings, stop
from tests.support.snmpsim import RECORDINGS, SnmpSim
from tests.support.snmptrap import RecordedTrap, SnmpTrapSender, load_trap_recording

pytestmark = pytest.mark.snmp
REPO = Path(__file__).resolve().parents[1]

CATALOGUE = sorted(
    p.stem for p in PROFILES_DIR.glob("*.yaml") if (RECORDINGS / f"{p.stem}.snmprec").is_file()
)


def _trap_profiles() -> list[str]:
    profiles = [load_profile(path) for path in snmp_profile_paths()]
    return sorted(p.profile for p in profiles if isinstance(p, Profile) and p.traps is not None)


def _paired(suffix: str, recording_suffix: str) -> list[str]:
    names = (p.name.removesuffix(suffix) for p in PROFILES_DIR.glob(f"*{suffix}"))
    return sorted(n for n in names if (RECORDINGS / f"{n}{recording_suffix}").is_file())


TRAP_CATALOGUE = _trap_profiles()
NUT_CATALOGUE = _paired(".nut.yaml", ".dev")
MODBUS_CATALOGUE = _paired(".modbus.yaml", ".modbus.yaml")


def test_every_profile_and_recording_is_packaged() -> None:
    """A regular ``pip install`` ships them (pyproject's data-files, plumbing/data.py)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["data-files"].values()
    packaged = {REPO / f for globs in patterns for g in globs for f in glob.glob(g, root_dir=REPO)}
    shipped = {
        path
        for folder in (PROFILES_DIR, RECORDINGS)
        for path in folder.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    }
    assert not shipped - packaged, f"not in [tool.setuptools.data-files]: {shipped - packaged}"


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


def check(
    profile: AnyProfile | NutProfile | ModbusProfile,
    readings: list[DeviceReading],
    *,
    mains_may_be_off: bool = False,
) -> None:
    """No error, every declared reading present (or declared absent), every value plausible.

    ``mains_may_be_off``: 0 V mains is plausible where the reading says mains is off (a
    generator controller recorded while it carries the site).
    """
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
            if name == "input_v" and mains_may_be_off and values["mains_present"] is False:
                low = 0
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


# --- traps: snmptrap -> the agent's receiver -> the profile's traps section --------------

COMMUNITY = "kienco-catalogue"
NOW = datetime(2025, 9, 7, 3, 0, tzinfo=UTC)
DEVICE = "ups-1"


def test_the_trap_catalogue_holds_the_shipped_families_each_with_its_recording() -> None:
    assert {"ups-mib", "apc-powernet-ups", "eaton-xups"} <= set(TRAP_CATALOGUE)
    missing = [n for n in TRAP_CATALOGUE if not (RECORDINGS / f"{n}.traps.yaml").is_file()]
    assert not missing, f"profiles with traps but no recordings/<name>.traps.yaml: {missing}"


async def receive(
    sender: SnmpTrapSender,
    received: list[Trap],
    trap: RecordedTrap,
    version: Literal["v2c", "v1"],
) -> Trap:
    before = len(received)
    await sender.send_recorded(trap, COMMUNITY, version)
    deadline = time.monotonic() + 5
    while len(received) == before:
        assert time.monotonic() < deadline, f"{trap.trap} as {version} never arrived"
        await asyncio.sleep(0.01)
    return received[-1]


def check_trap(profile: Profile, recorded: RecordedTrap, trap: Trap) -> tuple[str, int | None]:
    """The trap is this profile's, means what its notification says, and is plausible."""
    assert profile.traps is not None
    oid = trap_oid(trap.varbinds)
    found = shipped_catalogue().find(oid or "")
    assert found is not None and found[0].profile == profile.profile, (recorded.trap, oid)
    name = found[1]
    meaning = decode_trap(profile, name, dict(trap.varbinds), DEVICE)
    device = DeviceConfig(device=DEVICE, host="127.0.0.1", credentials="c", profile=profile.profile)
    event = trap_to_event(
        trap.source, trap.varbinds, devices=[device], site="hp-cat", province="hp", seq=1, now=NOW
    )
    assert event is not None and (event.event, event.device) == (meaning.event, DEVICE)
    assert event.detail is not None and event.detail.startswith(name), event.detail
    notification = profile.traps.notifications[name]
    if notification.detail:
        assert meaning.words, f"{name}: the recording carries none of {notification.detail}"
    case = notification.when[meaning.case] if meaning.case is not None else None
    sets = case.sets if case is not None else notification.sets
    if not sets:
        assert event.power is None, name
        return name, meaning.case
    assert event.power is not None, name
    power = event.power.model_dump()
    assert {field: power[field] for field in sets} == sets, name
    carried = {oid for oid, _, _ in recorded.varbinds}
    for reading, spec in profile.readings.items():
        if spec.instance_oid in carried:
            assert power[reading] is not None, (name, reading)
    for field, value in power.items():
        low, high = PLAUSIBLE.get(field, (-float("inf"), float("inf")))
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert low <= value <= high, (name, field, value)
    return name, meaning.case


@pytest.mark.parametrize("name", TRAP_CATALOGUE)
async def test_trap_profile_reads_its_recording(name: str, snmptrap: str, tmp_path: Path) -> None:
    profile = load(name)
    assert isinstance(profile, Profile) and profile.traps is not None
    recorded = load_trap_recording(RECORDINGS / f"{name}.traps.yaml")
    received: list[Trap] = []
    receiver = TrapReceiver("127.0.0.1", 0, communities=[COMMUNITY])
    await receiver.start(received.append)
    sender = SnmpTrapSender(snmptrap, receiver.bound_port, tmp_path / "snmp")
    met: set[tuple[str, int | None]] = set()
    try:
        for trap in recorded:
            as_v2c = await receive(sender, received, trap, "v2c")
            as_v1 = await receive(sender, received, trap, "v1")
            met.add(check_trap(profile, trap, as_v2c))
            assert check_trap(profile, trap, as_v1) == check_trap(profile, trap, as_v2c)
    finally:
        receiver.close()
    declared = {
        (notification, case)
        for notification, spec in profile.traps.notifications.items()
        for case in (None, *range(len(spec.when)))
    }
    assert not declared - met, f"{name}.traps.yaml never meets {sorted(declared - met, key=str)}"


# --- NUT: upsd + dummy-ups serving each recording -----------------------------------------


def test_the_nut_catalogue_holds_the_shipped_profile_each_with_its_recording() -> None:
    assert "nut" in NUT_CATALOGUE
    names = [p.name.removesuffix(".nut.yaml") for p in PROFILES_DIR.glob("*.nut.yaml")]
    assert sorted(names) == NUT_CATALOGUE, "every NUT profile needs recordings/<name>.dev"


@pytest.fixture(scope="module")
def nut_recordings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upsd]:
    recordings = {name: RECORDINGS / f"{name}.dev" for name in NUT_CATALOGUE}
    server = serve_recordings(tmp_path_factory.mktemp("nut-catalogue"), recordings)
    yield server
    stop(server)


def site_with(device: DeviceConfig) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": "hp-cat",
            "province": "hp",
            "kind": "station",
            "name": "Trạm danh mục",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "devices": [device],
        }
    )


@pytest.mark.parametrize("name", NUT_CATALOGUE)
async def test_nut_profile_reads_its_recording(nut_recordings: Upsd, name: str) -> None:
    fields: dict[str, Any] = {"device": "ups-1", "protocol": "nut", "host": nut_recordings.host}
    fields |= {"port": nut_recordings.port, "ups": name, "profile": name, "retries": 0}
    device = DeviceConfig.model_validate(fields)
    readings = await nut_probe.poll_device(device, site_with(device), Transports())
    check(load_nut_profile_by_name(name), readings)


# --- Modbus: a pymodbus server serving each register dump --------------------------------


@pytest.mark.parametrize("name", MODBUS_CATALOGUE)
async def test_modbus_profile_reads_its_recording(name: str) -> None:
    dump = recording(RECORDINGS / f"{name}.modbus.yaml")
    simulator = ThreadedSimulator(dump)
    simulator.run()
    try:
        fields: dict[str, Any] = {"device": "gen-1", "role": dump.role, "protocol": "modbus"}
        fields |= {"host": "127.0.0.1"}
        fields |= {"port": simulator.port, "profile": name, "unit_id": dump.unit_id}
        fields |= {"tank_l": dump.tank_l, "retries": 0}
        device = DeviceConfig.model_validate(fields)
        readings = await modbus_probe.poll_device(device, site_with(device), Transports())
    finally:
        simulator.close()
    check(load_modbus_profile_by_name(name), readings, mains_may_be_off=True)
