"""NUT: the protocol client, the pure mapping, and the probe against a real upsd + dummy-ups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import DeviceConfig, SiteConfig, load_site_config
from agent.cycle import DEVICE_POLLERS, poll_once
from agent.nut_client import NutClient, NutProtocolError, NutServerError, split_words
from agent.nut_profile import (
    NutProfileError,
    decode_vars,
    load_nut_profile,
    load_nut_profile_by_name,
)
from agent.probes import Transports
from agent.probes.nut import poll_device
from contract.wire import PowerReading, utc_now
from kienco.local_services import free_port
from plumbing.config_errors import ConfigError
from tests.support.nut import Upsd, shipped_values

SITES = Path(__file__).resolve().parents[1] / "firmware-configs" / "sites"


def site(*devices: DeviceConfig) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": "hp-meet-001",
            "province": "hp",
            "kind": "meeting_point",
            "name": "Điểm cầu xã An Lư",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "devices": devices,
        }
    )


def nut_device(port: int, ups: str = "meeting-ups", **changes: Any) -> DeviceConfig:
    fields = {"device": "ups-1", "protocol": "nut", "host": "127.0.0.1", "port": port, "ups": ups}
    return DeviceConfig.model_validate({**fields, "timeout_s": 1.0, "retries": 0, **changes})


async def poll(device: DeviceConfig) -> PowerReading:
    (reading,) = await poll_device(device, site(device), Transports())
    assert isinstance(reading, PowerReading)
    return reading


# --- the protocol's words --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('VAR ups ups.status "OL CHRG"', ["VAR", "ups", "ups.status", "OL CHRG"]),
        (r'VAR ups x "say \"hi\" \\ bye"', ["VAR", "ups", "x", 'say "hi" \\ bye']),
        ('VAR ups ups.alarm ""', ["VAR", "ups", "ups.alarm", ""]),
        ("ERR UNKNOWN-UPS", ["ERR", "UNKNOWN-UPS"]),
        ("  BEGIN   LIST VAR ups ", ["BEGIN", "LIST", "VAR", "ups"]),
    ],
)
def test_split_words(line: str, words: list[str]) -> None:
    assert split_words(line) == words


def test_split_words_refuses_an_open_quote() -> None:
    with pytest.raises(NutProtocolError):
        split_words('VAR ups x "never closed')


# --- the mapping (pure) ----------------------------------------------------------------

ON_MAINS = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "1860"}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (ON_MAINS, {"mains_present": True, "on_battery": False, "battery_status": "normal"}),
        ({"ups.status": "OL CHRG"}, {"mains_present": True, "on_battery": False}),
        ({"ups.status": "OB DISCHRG"}, {"mains_present": False, "on_battery": True}),
        ({"ups.status": "OB LB"}, {"on_battery": True, "battery_status": "low"}),
        ({"ups.status": "OL RB"}, {"battery_status": "normal", "alarms_count": 0}),
        ({"ups.status": "WAIT"}, {"on_battery": None, "mains_present": None}),
        ({"ups.status": "WAIT"}, {"battery_status": None, "alarms_count": None}),
        ({}, {"on_battery": None, "alarms_count": None, "battery_runtime_s": None}),
        # battery.runtime: the 16-bit cap, negatives and 0 on mains are not runtimes.
        ({"ups.status": "OL", "battery.runtime": "65535"}, {"battery_runtime_s": None}),
        ({"ups.status": "OB", "battery.runtime": "65535"}, {"battery_runtime_s": None}),
        ({"ups.status": "OL", "battery.runtime": "-1"}, {"battery_runtime_s": None}),
        ({"ups.status": "OL", "battery.runtime": "0"}, {"battery_runtime_s": None}),
        ({"battery.runtime": "0"}, {"battery_runtime_s": None}),
        ({"ups.status": "OB", "battery.runtime": "0"}, {"battery_runtime_s": 0}),
        ({"ups.status": "OB", "battery.runtime": "1200"}, {"battery_runtime_s": 1200}),
        ({"ups.status": "OL", "battery.runtime": "72000"}, {"battery_runtime_s": 72000}),
        ({"ups.status": "OL", "battery.runtime": "n/a"}, {"battery_runtime_s": None}),
        # alarms: ups.alarm's sentences, else the ALARM flag NUT sets with it.
        ({"ups.status": "OL"}, {"alarms_count": 0}),
        ({"ups.status": "ALARM OL"}, {"alarms_count": 1}),
        ({"ups.status": "ALARM OL", "ups.alarm": "Replace battery!"}, {"alarms_count": 1}),
        (
            {"ups.status": "ALARM OB", "ups.alarm": "Replace battery! Overload!"},
            {"alarms_count": 2},
        ),
        ({"ups.alarm": "[Replace battery!] [Fan failure] [Overheat]"}, {"alarms_count": 3}),
        ({"ups.alarm": "OVERHEAT"}, {"alarms_count": 1}),
        ({"ups.alarm": "[N/A]"}, {"alarms_count": None}),
        # temperatures: the battery's own sensor wins over the board's.
        ({"ups.temperature": "31.5"}, {"battery_temperature_c": 31.5}),
        ({"ups.temperature": "31.5", "battery.temperature": "28"}, {"battery_temperature_c": 28}),
        # absurd or unreadable numbers are unknown, not a failed device.
        ({"ups.load": "900", "battery.charge": "55"}, {"load_pct": None, "battery_charge_pct": 55}),
        ({"battery.charge": "nan"}, {"battery_charge_pct": None}),
        (
            {"input.voltage": "229.0", "output.voltage": "230.1"},
            {"input_v": 229, "output_v": 230.1},
        ),
        (
            {"ups.realpower": "288", "battery.capacity": "9"},
            {"load_w": 288, "battery_capacity_ah": 9},
        ),
    ],
)
def test_decode(variables: dict[str, str], expected: dict[str, object]) -> None:
    reading = decode_vars("ups-1", variables)
    assert reading.device == "ups-1" and reading.profile == "nut" and reading.error is None
    assert {k: getattr(reading, k) for k in expected} == expected


# --- NUT profiles: a driver's quirks are a profile, not code ---------------------------

# A driver that reports battery.runtime in minutes, a load that is really in tenths of a
# percent, and no ALARM flag: its own profile, named by the device.
QUIRKY = """\
profile: quirky
description: a driver with quirks
readings:
  load_pct: {var: ups.load, scale: 0.1}
sources:
  status: {var: ups.status, text: true}
  minutes: {var: battery.runtime, scale: 60, invalid: {equals: [65535]}}
derive:
  on_battery:
    when: [{value: status, has: OB, then: true}, {value: status, has: OL, then: false}]
  battery_runtime_s:
    when: [{value: minutes, gt: 0, then: {value: minutes}}]
"""


def write_nut(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.nut.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_drivers_quirks_are_a_profile(tmp_path: Path) -> None:
    profile = load_nut_profile(write_nut(tmp_path, "quirky", QUIRKY))
    variables = {"ups.status": "OB", "battery.runtime": "21", "ups.load": "415"}
    reading = decode_vars("ups-2", variables, profile)
    assert reading == PowerReading(
        device="ups-2", profile="quirky", on_battery=True, battery_runtime_s=1260, load_pct=41.5
    )
    assert decode_vars("ups-2", {"battery.runtime": "65535"}, profile).battery_runtime_s is None
    assert load_nut_profile_by_name("quirky", [tmp_path]) == profile


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (("scale: 0.1}", "scale: 0.1, vra: x}"), ["readings.load_pct", "unknown key 'vra'"]),
        (("  load_pct:", "  load_percent:"), ["readings.load_percent", "not a PowerReading"]),
        (("text: true}", "text: true, count_of: alarms}"), ["count_of gives a number"]),
        (("has: OB", "has: O B"), ["derive.on_battery.when.0.has"]),
        (("then: true", "then: yes!"), ["derive.on_battery: then", "'yes!'", "does not fit"]),
    ],
    ids=["typo-key", "not-a-wire-field", "count-of-text", "has-two-words", "then-not-yes-no"],
)
def test_bad_nut_profiles_name_the_key_and_the_fix(
    tmp_path: Path, change: tuple[str, str], needles: list[str]
) -> None:
    old, new = change
    assert old in QUIRKY
    with pytest.raises(NutProfileError) as caught:
        load_nut_profile(write_nut(tmp_path, "quirky", QUIRKY.replace(old, new, 1)))
    message = str(caught.value)
    assert "quirky.nut.yaml" in message
    for needle in needles:
        assert needle in message, message


def test_a_nut_device_names_its_profile_and_the_config_checks_it(tmp_path: Path) -> None:
    with pytest.raises(NutProfileError, match=r"no NUT profile 'apc-x'.*known: nut"):
        load_nut_profile_by_name("apc-x")
    data = yaml.safe_load(SITES.joinpath("meeting-point.yaml").read_text(encoding="utf-8"))
    (nut,) = [d for d in data["devices"] if d.get("protocol") == "nut"]
    for profile, fails in (("nut", False), ("apc-x", True)):
        nut["profile"] = profile
        path = tmp_path / "site.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        if fails:
            with pytest.raises(ConfigError, match=r"devices\.\d\.profile: .*no NUT profile"):
                load_site_config(path)
        else:
            loaded = load_site_config(path).devices
            assert [d.profile for d in loaded if d.protocol == "nut"] == ["nut"]


# --- against a real upsd ---------------------------------------------------------------


async def test_ups_on_mains(nut_ups: Upsd) -> None:
    reading = await poll(nut_device(nut_ups.port))
    assert reading == PowerReading(
        device="ups-1",
        profile="nut",
        mains_present=True,
        on_battery=False,
        battery_status="normal",
        battery_charge_pct=100,
        battery_runtime_s=1860,
        battery_voltage_v=27.3,
        battery_temperature_c=31.5,
        input_v=229,
        output_v=229,
        load_pct=32,
        load_w=288,
        alarms_count=0,
        output_off=False,
        on_bypass=False,
    )


async def test_mains_fails_and_the_next_poll_shows_it(nut_ups: Upsd) -> None:
    device = nut_device(nut_ups.port)
    assert (await poll(device)).on_battery is False
    on_battery = {
        **shipped_values(),
        "ups.status": "ALARM OB DISCHRG",
        "ups.alarm": "On battery!",
        "battery.charge": "87",
        "battery.runtime": "1320",
        "input.voltage": "0.0",
    }
    nut_ups.write(on_battery)
    started = time.monotonic()
    await nut_ups.wait_until(lambda seen: seen.get("ups.status") == "ALARM OB DISCHRG")
    assert time.monotonic() - started < 5, "dummy-ups re-reads its file every pollinterval (1 s)"
    reading = await poll(device)
    assert (reading.mains_present, reading.on_battery) == (False, True)
    assert (reading.battery_charge_pct, reading.battery_runtime_s) == (87, 1320)
    assert (reading.input_v, reading.alarms_count, reading.error) == (0, 1, None)


@pytest.mark.parametrize(
    ("status", "off", "bypass"),
    [
        # the output switched off with the mains present (a command, an overload shut-down):
        # what it feeds is dark although the line is fine
        ("OL OFF", True, False),
        # in bypass: the load on the mains, the battery would not take over
        ("OL BYPASS", False, True),
        ("OL CHRG", False, False),
    ],
)
async def test_output_off_and_bypass_as_upsd_says_them(
    nut_ups: Upsd, status: str, off: bool, bypass: bool
) -> None:
    nut_ups.write({**shipped_values(), "ups.status": status})
    await nut_ups.wait_until(lambda seen: seen.get("ups.status") == status)
    reading = await poll(nut_device(nut_ups.port))
    assert (reading.output_off, reading.on_bypass) == (off, bypass)
    assert (reading.mains_present, reading.on_battery) == (True, False)


async def test_runtime_at_the_16_bit_cap_on_mains_is_unknown(nut_ups: Upsd) -> None:
    nut_ups.write({**shipped_values(), "battery.runtime": "65535"})
    await nut_ups.wait_until(lambda seen: seen.get("battery.runtime") == "65535")
    reading = await poll(nut_device(nut_ups.port))
    assert reading.battery_runtime_s is None
    assert (reading.on_battery, reading.battery_charge_pct) == (False, 100)


async def test_unknown_ups_name_is_an_error_reading(nut_server: Upsd) -> None:
    reading = await poll(nut_device(nut_server.port, ups="no-such-ups", retries=2))
    assert reading.error is not None and "UNKNOWN-UPS" in reading.error
    assert reading.on_battery is None and reading.profile == "nut"


async def test_client_get_var_and_list_ups(nut_server: Upsd) -> None:
    async with await NutClient.connect(nut_server.host, nut_server.port) as client:
        assert await client.list_ups() == {
            "meeting-ups": "Meeting room UPS (simulated by dummy-ups)"
        }
        assert await client.get_var("meeting-ups", "device.type") == "ups"
        with pytest.raises(NutServerError) as caught:
            await client.get_var("meeting-ups", "no.such.var")
        assert caught.value.code == "VAR-NOT-SUPPORTED"


async def test_through_the_poll_cycle(nut_ups: Upsd) -> None:
    assert "nut" in DEVICE_POLLERS
    device = nut_device(nut_ups.port)
    report = await poll_once(site(device), Transports(), seq=1, now=utc_now())
    (reading,) = report.power
    assert (reading.device, reading.mains_present, reading.error) == ("ups-1", True, None)


# --- failures that are not upsd's answers -----------------------------------------------


async def test_connection_refused_is_an_error_reading() -> None:
    started = time.monotonic()
    reading = await poll(nut_device(free_port(), retries=1))
    assert reading.error is not None and "cannot connect" in reading.error
    assert time.monotonic() - started < 1


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and never answers: upsd hung, or a firewall eating replies."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_no_answer_is_an_error_reading_within_the_timeout(silent_server: int) -> None:
    started = time.monotonic()
    reading = await poll(nut_device(silent_server, timeout_s=0.3, retries=1))
    elapsed = time.monotonic() - started
    assert reading.error is not None and "no answer within 0.3 s" in reading.error
    assert 0.5 <= elapsed < 1.5, "two attempts of 0.3 s each"
