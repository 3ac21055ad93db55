"""Modbus: the register-profile vocabulary (pure) and the probe against a real pymodbus server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import DeviceConfig, SiteConfig
from agent.cycle import DEVICE_POLLERS, poll_once
from agent.modbus_profile import (
    ModbusProfile,
    ModbusProfileError,
    blocks,
    decode,
    load_modbus_profile,
    load_modbus_profile_by_name,
)
from agent.probes import Transports
from agent.probes.modbus import poll_device
from contract.wire import PowerReading, utc_now
from kienco.local_services import free_port
from tests.support.modbus import ThreadedSimulator, lacking, recording

RECORDED = recording().registers
RUNNING_ON_MAINS_FAILURE = PowerReading(
    device="gen-1",
    profile="dse-gencomm",
    generator_running=True,
    mains_present=False,
    fuel_pct=62,
    fuel_l=310,
    fuel_burn_l_per_h=11.8,
    battery_voltage_v=27.2,
    output_v=230.4,
    input_v=0,
    load_w=42100,
    load_pct=52.6,
    alarms_count=1,
)


@pytest.fixture(scope="module")
def profile() -> ModbusProfile:
    return load_modbus_profile_by_name("dse-gencomm")


def site(*devices: DeviceConfig) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": "qn-bts-007",
            "province": "qn",
            "kind": "station",
            "name": "Trạm BTS Hạ Long 7",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "devices": devices,
        }
    )


def genset_device(port: int, **changes: Any) -> DeviceConfig:
    fields: dict[str, Any] = {"device": "gen-1", "role": "generator", "protocol": "modbus"}
    fields["host"] = "127.0.0.1"
    fields |= {"port": port, "profile": "dse-gencomm", "tank_l": 500, "timeout_s": 1.0}
    return DeviceConfig.model_validate({**fields, "retries": 0, **changes})


async def poll(device: DeviceConfig) -> PowerReading:
    (reading,) = await poll_device(device, site(device), Transports())
    assert isinstance(reading, PowerReading)
    return reading


# --- the shipped profile, decoded (pure) ------------------------------------------------


def test_reads_in_five_requests(profile: ModbusProfile) -> None:
    # Page 4 (fuel .. mains V), page 5 fuel rate, page 5 engine state, page 6, page 8.
    assert blocks(profile) == [(1027, 35), (1290, 2), (1408, 1), (1536, 23), (2049, 32)]


def test_decode_the_recording(profile: ModbusProfile) -> None:
    assert decode(profile, "gen-1", RECORDED, tank_l=500) == RUNNING_ON_MAINS_FAILURE


def test_without_a_tank_size_there_are_no_litres(profile: ModbusProfile) -> None:
    reading = decode(profile, "gen-1", RECORDED)
    assert (reading.fuel_pct, reading.fuel_l) == (62, None)


U16_NA, S16_NA, TRANSDUCER_FAULT = 0xFFFF, 0x7FFF, 0xFFFC


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # sentinels: unknown, never 0 (GenComm's top 8 values of each type)
        ({1027: TRANSDUCER_FAULT}, {"fuel_pct": None, "fuel_l": None}),
        ({1027: 0xFFF8}, {"fuel_pct": None}),
        ({1027: 0xFFF7}, {"fuel_pct": None}),  # 65527 % is over the 100 % the profile allows
        ({1027: 130}, {"fuel_pct": None, "fuel_l": None}),  # senders over-read up to 130 %
        ({1027: 0}, {"fuel_pct": 0, "fuel_l": 0}),
        ({1060: U16_NA, 1061: U16_NA}, {"input_v": None, "mains_present": None}),
        ({1060: 0, 1061: 2301}, {"input_v": 230.1, "mains_present": True}),
        ({1060: 0, 1061: 1839}, {"input_v": 183.9, "mains_present": False}),
        # 0.3 V of noise on a dead mains, its words swapped (a controller that sends the
        # low word first): 19 660.8 V, refused by the wire, and no ground for "mains present"
        ({1060: 3, 1061: 0}, {"input_v": None, "mains_present": None}),
        ({1536: 1, 1537: 0}, {"load_w": 65536}),  # high word first
        ({1558: S16_NA}, {"load_pct": None}),
        ({1558: 0x10000 - 5}, {"load_pct": None}),  # -0.5 %: signed, then "below 0" refused
        ({1536: 0xFFFF, 1537: 0xFC18}, {"load_w": None}),  # -1000 W: reverse power
        ({1536: 0x7FFF, 1537: 0xFFFF}, {"load_w": None}),  # s32 unimplemented
        ({1290: U16_NA, 1291: U16_NA}, {"fuel_burn_l_per_h": None}),
        # An engine turning (above 300 rpm) or a set delivering power (above 200 W) runs,
        # whatever the state register says: a controller whose state lags (or is stuck)
        # while the engine turns and carries 42 kW has the site on generator. It was
        # pinned "not running" here ("state wins over 1500 rpm"): with the mains gone the
        # site was judged on battery, "generator stopped", its fuel not counted, and
        # someone sent to start a set that was running. Without either sign, the state
        # decides; without a state, the speed.
        ({1408: 0}, {"generator_running": True}),  # stopped, yet 1 500 rpm and 42.1 kW
        ({1408: 0, 1536: 0, 1537: 0}, {"generator_running": True}),  # 1 500 rpm alone
        ({1408: 0, 1030: 0}, {"generator_running": True}),  # 42.1 kW alone (speed sender 0)
        ({1408: 0, 1030: U16_NA}, {"generator_running": True}),  # no speed sender, 42.1 kW
        ({1408: 0, 1030: 0, 1536: 0, 1537: 0}, {"generator_running": False}),
        ({1408: 0, 1030: 0, 1536: 0, 1537: 150}, {"generator_running": False}),  # CT noise
        ({1408: 3, 1030: 0, 1536: 0, 1537: 0}, {"generator_running": True}),  # state says
        ({1408: 2}, {"generator_running": True}),  # warming up: the engine turns
        ({1408: 1, 1030: 180, 1536: 0, 1537: 0}, {"generator_running": False}),  # cranking
        ({1408: 15}, {"generator_running": True}),  # "not available": 1500 rpm decides
        ({1408: U16_NA, 1030: 0, 1536: 0, 1537: 0}, {"generator_running": False}),
        ({1408: U16_NA, 1030: 250, 1536: 0, 1537: 0}, {"generator_running": False}),
        ({1408: U16_NA, 1030: U16_NA, 1536: 0, 1537: 0}, {"generator_running": None}),
        ({1408: U16_NA, 1030: U16_NA}, {"generator_running": True}),  # 42.1 kW says it
        # alarms: codes 2, 3, 4 in the 4-bit slots; all-unimplemented is unknown
        ({2049: 0x1234}, {"alarms_count": 4}),  # 2, 3, 4 here + maintenance due
        ({2059: 0x1111}, {"alarms_count": 0}),  # mains failed is an indication, not an alarm
        ({a: 0xFFFF for a in range(2049, 2081)}, {"alarms_count": None}),
        ({2049: 0x3333, 2050: 0x4444}, {"alarms_count": 9}),
    ],
)
def test_decode_table(
    profile: ModbusProfile, changes: dict[int, int], expected: dict[str, object]
) -> None:
    reading = decode(profile, "gen-1", {**RECORDED, **changes}, tank_l=500)
    assert {k: getattr(reading, k) for k in expected} == expected
    assert reading.error is None


def test_missing_registers_are_unknown(profile: ModbusProfile) -> None:
    reading = decode(profile, "gen-1", {1027: 40})
    assert reading == PowerReading(device="gen-1", profile="dse-gencomm", fuel_pct=40)


# --- the vocabulary: strict loading, blocks, word order ------------------------------


def write_profile(tmp_path: Path, body: dict[str, Any], name: str = "t") -> Path:
    path = tmp_path / f"{name}.modbus.yaml"
    path.write_text(yaml.safe_dump({"profile": name, "description": "test", **body}))
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"readings": {"fuel_pct": {"adress": 1}}}, "unknown key 'adress'; allowed here:"),
        ({"readings": {"fuel_litres": {"address": 1}}}, "readings.fuel_litres: not a PowerReading"),
        ({"readings": {"fuel_pct": {"address": 1, "enum": {1: "x"}}}}, "not enum; remove enum"),
        ({"readings": {"on_battery": {"address": 1}}}, "map the raw values onto [True, False]"),
        ({"readings": {"alarms_count": {"address": 1, "type": "codes4"}}}, "takes words"),
        ({"readings": {"fuel_pct": {"address": 1, "type": "u64"}}}, "readings.fuel_pct.type"),
        ({"readings": {"fuel_pct": {"address": 65535, "type": "u32"}}}, "runs past 65535"),
        ({"readings": {"fuel_pct": {"address": 1, "words": 2}}}, "words is for codes4 only"),
        ({"readings": {}, "derive": {"fuel_pct": {"any": []}}}, "derive.fuel_pct"),
        (
            {"readings": {}, "derive": {"on_generator": {"any": [{"value": "x", "eq": 1}]}}},
            "'x' is neither a reading nor a source",
        ),
        (
            {
                "readings": {},
                "derive": {
                    "on_generator": {
                        "any": [{"value": "x", "eq": 1}],
                        "first": [{"value": "x", "eq": 1}],
                    }
                },
            },
            "give exactly one of any (or), all (and), first",
        ),
        ({"readings": {}, "max_gap": 500}, "max_gap"),
    ],
)
def test_bad_profiles_name_the_key_and_the_fix(
    tmp_path: Path, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModbusProfileError) as caught:
        load_modbus_profile(write_profile(tmp_path, body))
    assert message in str(caught.value)


def test_profile_must_match_its_file_name(tmp_path: Path) -> None:
    path = write_profile(tmp_path, {"readings": {}}, name="a")
    path = path.rename(tmp_path / "b.modbus.yaml")
    with pytest.raises(ModbusProfileError, match=r"must be named a\.modbus\.yaml"):
        load_modbus_profile(path)
    with pytest.raises(ModbusProfileError, match=r"no Modbus profile 'c'.*known: b"):
        load_modbus_profile_by_name("c", [tmp_path])


def blocks_of(max_gap: int, specs: dict[str, dict[str, Any]]) -> list[tuple[int, int]]:
    body = {"profile": "t", "description": "t", "max_gap": max_gap, "readings": specs}
    return blocks(ModbusProfile.model_validate(body))


def test_blocks_merge_gaps_up_to_max_gap() -> None:
    specs: dict[str, dict[str, Any]] = {
        "fuel_pct": {"address": 10},
        "load_pct": {"address": 13},  # 2 registers between: merged
        "load_w": {"address": 120, "type": "u32"},  # far: a read of its own
        "input_v": {"address": 200, "type": "u32"},
        "output_v": {"address": 203},  # 1 register after the u32: merged
    }
    assert blocks_of(2, specs) == [(10, 4), (120, 2), (200, 4)]
    assert blocks_of(0, specs) == [(10, 1), (13, 1), (120, 2), (200, 2), (203, 1)]


def test_blocks_stay_within_125_registers_and_never_split_a_value() -> None:
    specs: dict[str, dict[str, Any]] = {
        "fuel_pct": {"address": 0},
        "load_w": {"address": 124, "type": "u32"},  # 0..125 would be 126 registers
        "input_v": {"address": 130, "type": "u32"},
    }
    assert blocks_of(125, specs) == [(0, 1), (124, 8)]


def test_little_word_order_and_signs() -> None:
    profile = ModbusProfile.model_validate(
        {
            "profile": "t",
            "description": "t",
            "word_order": "little",
            "readings": {
                "load_w": {"address": 0, "type": "u32"},
                "dc_load_a": {"address": 2, "type": "s32", "word_order": "big", "scale": 0.01},
                "battery_temperature_c": {"address": 4, "type": "s16", "scale": 0.1},
            },
        }
    )
    words = {0: 0x86A0, 1: 0x0001, 2: 0xFFFF, 3: 0xFF38, 4: 0xFF9C}
    reading = decode(profile, "d", words)
    assert (reading.load_w, reading.dc_load_a, reading.battery_temperature_c) == (100000, -2, -10)


# --- against a real pymodbus server ------------------------------------------------------


async def test_poll_equals_the_recording(genset: ThreadedSimulator) -> None:
    assert await poll(genset_device(genset.port)) == RUNNING_ON_MAINS_FAILURE


async def test_fuel_drops_and_engine_stops_at_run_time(genset: ThreadedSimulator) -> None:
    device = genset_device(genset.port)
    assert (await poll(device)).generator_running is True
    genset.update({1027: 9, 1408: 0, 1030: 0, 1536: 0, 1537: 0, 1558: 0, 1290: 0, 1291: 0})
    reading = await poll(device)
    assert (reading.generator_running, reading.fuel_pct, reading.fuel_l) == (False, 9, 45)
    assert (reading.load_w, reading.load_pct, reading.fuel_burn_l_per_h) == (0, 0, 0)
    assert reading.mains_present is False and reading.error is None


async def test_through_the_poll_cycle_with_the_sites_burn_rate(genset: ThreadedSimulator) -> None:
    assert "modbus" in DEVICE_POLLERS
    genset.update({1290: 0xFFFF, 1291: 0xFFFF})  # no engine ECU: no fuel rate
    device = genset_device(genset.port, fuel_burn_l_per_h=14.5)
    report = await poll_once(site(device), Transports(), seq=1, now=utc_now())
    (reading,) = report.power
    assert (reading.fuel_l, reading.fuel_burn_l_per_h, reading.error) == (310, 14.5, None)


# Controller models lack whole pages or registers of GenComm ([VIC]: page 6's power and
# load "might only work for 61xx MkII and 8xxx/7xxx…", the engine state is missing on
# some modules) and answer exception 2 for a read that touches one.
PAGE_6 = range(1536, 1792)
NOT_AN_ERROR = {"error": None}


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        pytest.param(PAGE_6, {"load_w": None, "load_pct": None}, id="no-page-6"),
        # the profile's own fallback: the engine speed says it runs
        pytest.param([1408], {"generator_running": True}, id="no-engine-state"),
        # a register no value uses, inside the read that fuel .. mains voltage share
        pytest.param([1040], {}, id="gap-in-a-merged-read"),
        pytest.param([1027], {"fuel_pct": None, "fuel_l": None}, id="no-fuel-sender"),
    ],
)
async def test_a_register_the_model_lacks_is_unknown_and_the_rest_still_read(
    missing: range | list[int], expected: dict[str, object]
) -> None:
    """One refused read made the whole genset an error reading, every cycle: running,
    fuel and mains unknown, its hours unknown, though the controller serves them."""
    async with lacking(missing) as controller:
        reading = await poll(genset_device(controller.port))
    wanted = {**RUNNING_ON_MAINS_FAILURE.model_dump(), **NOT_AN_ERROR, **expected}
    assert reading.model_dump() == wanted


@pytest.mark.parametrize(
    ("missing", "silent_at", "unread", "said"),
    [
        # page 4's merged read refused (a register no value uses), its values re-read one
        # by one, and the gateway stops answering at the third (the generator voltage):
        # fuel, starter battery and speed were read, and the other pages before
        pytest.param(
            [1040],
            [1032],
            {"output_v": None, "input_v": None, "mains_present": None},
            "one by one",
            id="reread-cut-short",
        ),
        # the last merged read (the alarms page) unanswered: the four before were read
        pytest.param([], [2049], {"alarms_count": None}, "", id="last-read-unanswered"),
    ],
)
async def test_a_poll_cut_short_keeps_what_was_read(
    missing: list[int], silent_at: list[int], unread: dict[str, object], said: str
) -> None:
    """Values already read were dropped when a later request got no answer: the whole
    genset an error reading (running, fuel, mains unknown, its hours unknown for the NOC)
    though the controller had served most of them. What was read is kept, the rest is
    unknown, and the error says why."""
    async with lacking(missing, silent_at=silent_at) as controller:
        reading = await poll(genset_device(controller.port, timeout_s=0.3))
    assert reading.error is not None and said in reading.error
    assert "the values not read are unknown" in reading.error
    got = reading.model_dump(exclude={"error"})
    assert got == {**RUNNING_ON_MAINS_FAILURE.model_dump(exclude={"error"}), **unread}


async def test_a_controller_that_serves_none_of_the_registers_is_an_error() -> None:
    async with lacking(range(1024, 2303)) as controller:
        reading = await poll(genset_device(controller.port, retries=2))
    assert reading.error is not None and "exception 2" in reading.error
    assert reading.generator_running is None and reading.fuel_pct is None


async def test_wrong_unit_is_an_error_reading_without_retries(genset: ThreadedSimulator) -> None:
    reading = await poll(genset_device(genset.port, unit_id=7, retries=3))
    assert reading.error is not None and "exception" in reading.error
    assert reading.generator_running is None and reading.profile == "dse-gencomm"


async def test_dead_port_is_an_error_reading_within_the_timeout() -> None:
    started = time.monotonic()
    reading = await poll(genset_device(free_port(), retries=1))
    assert reading.error is not None and "cannot connect" in reading.error
    assert time.monotonic() - started < 1.0


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP and never answers: a hung gateway."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_no_answer_is_an_error_reading_within_the_timeout(silent_server: int) -> None:
    started = time.monotonic()
    reading = await poll(genset_device(silent_server, timeout_s=0.3, retries=0))
    assert reading.error is not None and reading.fuel_pct is None
    assert time.monotonic() - started < 2.5, "budget: 0.3 s per request and for the connect"
