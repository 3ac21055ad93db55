"""Trap profiles: the ``traps:`` section's strict loading, its decoding, and the dispatch
by snmpTrapOID (:class:`agent.traps.TrapCatalogue`). The shipped sections are played
through snmptrap by tests/test_profile_catalogue.py; the mapping tables of the shipped
UPS-MIB and APC traps are in tests/test_traps.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import DeviceConfig
from agent.profiles import Profile, ProfileError, load_profile
from agent.traps import SNMP_TRAP_OID, SYS_UPTIME, TrapCatalogue, TrapValue, shipped_catalogue
from agent.traps import trap_to_event as to_event
from contract.wire import Event, PowerReading

NOW = datetime(2025, 9, 7, 3, 0, tzinfo=UTC)
VENDOR = "1.3.6.1.4.1.99999"
RUNTIME, MESSAGE = f"{VENDOR}.1.1", f"{VENDOR}.2.1"
ON_BATTERY, ALARM, BACK = f"{VENDOR}.0.1", f"{VENDOR}.0.2", f"{VENDOR}.0.3"
DEVICES = (DeviceConfig(device="ups-7", host="10.0.0.7", credentials="c", profile="vendor-ups"),)

# A new UPS model's traps: this is all it takes (plus its recording, for the catalogue).
VENDOR_UPS = f"""\
profile: vendor-ups
description: a vendor's UPS card, its own MIB
readings:
  battery_runtime_s: {{oid: {RUNTIME}, scale: 60, invalid: {{below: 0, above: 65534}}}}
traps:
  values:
    message: {{oid: {MESSAGE}, index: any, text: true}}
  notifications:
    upsOnBattery:
      oid: {ON_BATTERY}
      event: on_battery
      detail: [message]
      sets: {{on_battery: true, mains_present: false}}
    upsAlarm:
      oid: {ALARM}
      event: alarm
      detail: [message]
      when:
        - value: message
          match: "(?i)battery low"
          event: battery_low
          sets: {{battery_status: low}}
    upsOnMains:
      oid: {BACK}
      event: on_mains
      sets: {{on_battery: false, mains_present: true, on_battery_for_s: 0}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def binds(oid: str, *extra: tuple[str, TrapValue]) -> list[tuple[str, TrapValue]]:
    return [(SYS_UPTIME, 1), (SNMP_TRAP_OID, oid), *extra]


def event_of(catalogue: TrapCatalogue, varbinds: list[tuple[str, TrapValue]]) -> Event | None:
    return to_event(
        "10.0.0.7",
        varbinds,
        devices=DEVICES,
        site="hp-bts-1",
        province="hp",
        seq=3,
        now=NOW,
        catalogue=catalogue,
    )


@pytest.fixture
def vendor(tmp_path: Path) -> TrapCatalogue:
    write(tmp_path, "vendor-ups", VENDOR_UPS)
    return TrapCatalogue.load([tmp_path])


def test_a_new_models_traps_are_one_profile(vendor: TrapCatalogue) -> None:
    event = event_of(
        vendor, binds(ON_BATTERY, (RUNTIME + ".0", 12), (MESSAGE + ".0", b"On battery "))
    )
    assert event is not None
    assert (event.event, event.device, event.seq) == ("on_battery", "ups-7", 3)
    assert event.detail == "upsOnBattery: On battery (from 10.0.0.7)"
    # The runtime through the profile's own reading: minutes -> seconds, the cap as data.
    expected = PowerReading(
        device="ups-7", on_battery=True, mains_present=False, battery_runtime_s=720.0
    )
    assert event.power == expected
    capped = event_of(vendor, binds(ON_BATTERY, (RUNTIME + ".0", 65535)))
    assert capped is not None and capped.power is not None
    assert capped.power.battery_runtime_s is None


def test_a_v1_trap_finds_its_notification(vendor: TrapCatalogue) -> None:
    # Defined as E.0.N, a v1 trap (enterprise E, specific N) arrives as E.0.N too.
    assert vendor.find(ON_BATTERY) is not None
    shipped = shipped_catalogue()
    # Defined as upsTraps.1 (RFC 1628): the v1 form arrives as upsTraps.0.1 (RFC 3584).
    found = shipped.find("1.3.6.1.2.1.33.2.0.1")
    assert found is not None and (found[0].profile, found[1]) == ("ups-mib", "upsTrapOnBattery")
    assert shipped.find("1.3.6.1.4.1.318.0.268") is None  # an APC PDU trap: not a UPS's
    assert shipped.find("1.3.6.1.2.1.33.2.0.9") is None


def test_cases_change_the_meaning_by_a_varbind(vendor: TrapCatalogue) -> None:
    low = event_of(vendor, binds(ALARM, (MESSAGE + ".0", b"Battery LOW")))
    assert low is not None and low.event == "battery_low"
    assert low.power == PowerReading(device="ups-7", battery_status="low")
    other = event_of(vendor, binds(ALARM, (MESSAGE + ".0", b"Fan failed")))
    assert other is not None and other.event == "alarm" and other.power is None
    assert other.detail == "upsAlarm: Fan failed (from 10.0.0.7)"
    # index any: the message without its instance, as some cards send it
    bare = event_of(vendor, binds(ALARM, (MESSAGE, b"battery low")))
    assert bare is not None and bare.event == "battery_low"


def test_a_trap_says_only_what_it_says(vendor: TrapCatalogue) -> None:
    back = event_of(vendor, binds(BACK))
    assert back is not None and back.power == PowerReading(
        device="ups-7", on_battery=False, mains_present=True, on_battery_for_s=0.0
    )
    assert event_of(vendor, binds(f"{VENDOR}.0.9")) is None


BAD = [
    ("detail names nothing", "detail: [message]", "detail: [mesage]", ["detail", "'mesage'"]),
    (
        "sets a field the wire has not",
        "sets: {on_battery: true, mains_present: false}",
        "sets: {on_battery: true, power_ok: true}",
        ["sets.power_ok", "not a PowerReading field"],
    ),
    (
        "sets a word where the wire wants yes/no",
        "sets: {on_battery: true, mains_present: false}",
        "sets: {on_battery: yes please, mains_present: false}",
        ["sets.on_battery", "'yes please'", "does not fit"],
    ),
    (
        "sets a word the wire does not know",
        "sets: {battery_status: low}",
        "sets: {battery_status: flat}",
        ["sets.battery_status", "'flat'", "depleted"],
    ),
    (
        "a case on an unknown value",
        "value: message\n",
        "value: mesage\n",
        ["when", "'mesage'", "message"],
    ),
    ("an event the wire has not", "event: on_mains", "event: on_grid", ["event", "on_battery"]),
    (
        "two notifications, one OID",
        f"oid: {BACK}",
        f"oid: {ALARM}",
        ["upsOnMains.oid", "also upsAlarm"],
    ),
    (
        "index any outside traps",
        f"{{oid: {RUNTIME}, scale",
        f"{{oid: {RUNTIME}, index: any, scale",
        ["readings.battery_runtime_s.index", "'any'"],
    ),
]


@pytest.mark.parametrize(("old", "new", "needles"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_trap_sections_name_the_key_and_the_fix(
    tmp_path: Path, old: str, new: str, needles: list[str]
) -> None:
    assert old in VENDOR_UPS
    path = write(tmp_path, "vendor-ups", VENDOR_UPS.replace(old, new, 1))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    for needle in needles:
        assert needle in str(caught.value), str(caught.value)


def test_a_broken_profile_costs_only_its_own_traps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "vendor-ups", VENDOR_UPS)
    write(tmp_path, "broken-ups", "profile: broken-ups\ndescription: x\nreadings: [\n")
    write(tmp_path, "copy-ups", VENDOR_UPS.replace("profile: vendor-ups", "profile: copy-ups"))
    with caplog.at_level(logging.WARNING, logger="kienco.agent.traps"):
        catalogue = TrapCatalogue.load([tmp_path])
    found = catalogue.find(ON_BATTERY)
    assert found is not None and found[0].profile == "copy-ups", "first by file name"
    assert "broken-ups.yaml" in caplog.text and "not understood" in caplog.text
    assert "in profiles copy-ups and vendor-ups" in caplog.text


def test_every_shipped_trap_is_one_profiles() -> None:
    shipped = shipped_catalogue()
    profiles = {profile.profile for profile, _ in shipped.by_oid.values()}
    assert {"ups-mib", "apc-powernet-ups"} <= profiles
    for oid, (profile, name) in shipped.by_oid.items():
        assert isinstance(profile, Profile) and profile.traps is not None
        assert profile.traps.notifications[name].oid == oid
