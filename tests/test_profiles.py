"""Device profiles: strict loading, and the pure decode from a GET answer to a PowerReading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.profiles import (
    PROFILES_DIR,
    ProfileError,
    RawValue,
    decode,
    load_profile,
    load_profile_by_name,
    oids,
)
from agent.wire import PowerReading

UPS = "1.3.6.1.2.1.33.1."
STATUS, SECONDS, MINUTES, CHARGE = UPS + "2.1.0", UPS + "2.2.0", UPS + "2.3.0", UPS + "2.4.0"
INPUT_V, SOURCE, LOAD = UPS + "3.3.1.3.1", UPS + "4.1.0", UPS + "4.4.1.5.1"

ON_MAINS: dict[str, RawValue] = {
    STATUS: 2,
    SECONDS: 0,
    MINUTES: 48,
    CHARGE: 100,
    UPS + "2.5.0": 545,
    UPS + "2.7.0": 27,
    UPS + "3.1.0": 3,
    INPUT_V: 230,
    SOURCE: 3,
    UPS + "4.4.1.2.1": 230,
    LOAD: 35,
    UPS + "6.1.0": 0,
}
ALL_UNKNOWN = {
    name: None for name in PowerReading.model_fields if name not in ("device", "profile")
}
EXPECTED_ON_MAINS: dict[str, Any] = {
    **ALL_UNKNOWN,
    "error": None,
    "mains_present": True,
    "on_battery": False,
    "battery_status": "normal",
    "battery_charge_pct": 100.0,
    "battery_runtime_s": 2880.0,
    "battery_voltage_v": 54.5,
    "battery_temperature_c": 27.0,
    "on_battery_for_s": 0.0,
    "input_v": 230.0,
    "output_v": 230.0,
    "load_pct": 35.0,
    "alarms_count": 0,
    "input_line_bads_count": 3,
}


@pytest.fixture(scope="module")
def ups_mib() -> Any:
    return load_profile_by_name("ups-mib")


def test_shipped_profile_gets_line_one_of_the_tables(ups_mib: Any) -> None:
    wanted = oids(ups_mib)
    assert INPUT_V in wanted and LOAD in wanted and SOURCE in wanted
    assert len(wanted) == len(set(wanted)) == len(ON_MAINS)


def test_on_mains_decodes_every_recorded_value(ups_mib: Any) -> None:
    reading = decode(ups_mib, "ups-1", ON_MAINS)
    assert reading == PowerReading(device="ups-1", profile="ups-mib", **EXPECTED_ON_MAINS)


# (case, varbinds changed from ON_MAINS, fields expected to differ from EXPECTED_ON_MAINS)
CASES: list[tuple[str, dict[str, RawValue], dict[str, Any]]] = [
    (
        "on battery",
        {SOURCE: 5, SECONDS: 120, MINUTES: 38, INPUT_V: 0},
        {
            "on_battery": True,
            "on_battery_for_s": 120.0,
            "battery_runtime_s": 2280.0,
            "input_v": 0.0,
            "mains_present": False,
        },
    ),
    ("on battery by seconds only", {SECONDS: 60}, {"on_battery": True, "on_battery_for_s": 60.0}),
    ("on battery by output source only", {SOURCE: 5}, {"on_battery": True}),
    ("bypass is not battery", {SOURCE: 4}, {}),
    ("runtime stuck at 65535", {MINUTES: 65535}, {"battery_runtime_s": None}),
    ("runtime -1", {MINUTES: -1}, {"battery_runtime_s": None}),
    ("negative charge", {CHARGE: -5}, {"battery_charge_pct": None}),
    ("charge above 100", {CHARGE: 250}, {"battery_charge_pct": None}),
    ("load the wire refuses as absurd", {LOAD: 900}, {"load_pct": None}),
    # One unknown input and no deciding one: on_battery is unknown, not False.
    ("negative seconds on battery", {SECONDS: -1}, {"on_battery_for_s": None, "on_battery": None}),
    ("status low", {STATUS: 3}, {"battery_status": "low"}),
    ("status depleted", {STATUS: 4}, {"battery_status": "depleted"}),
    ("status unknown", {STATUS: 1}, {"battery_status": "unknown"}),
    ("status outside the enum", {STATUS: 9}, {"battery_status": None}),
    ("output source outside the MIB", {SOURCE: 42}, {"on_battery": None}),
    ("mains sagging below 100 V", {INPUT_V: 90}, {"input_v": 90.0, "mains_present": False}),
    ("noSuchInstance", {CHARGE: None}, {"battery_charge_pct": None}),
    ("number sent as OctetString", {INPUT_V: b"229.5"}, {"input_v": 229.5}),
    ("garbage OctetString", {INPUT_V: b"\xff\xfe"}, {"input_v": None, "mains_present": None}),
    ("leading-dot OIDs", {"." + CHARGE: 80, CHARGE: None}, {"battery_charge_pct": 80.0}),
]


@pytest.mark.parametrize(
    ("changes", "differences"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decode_cases(
    ups_mib: Any, changes: dict[str, RawValue], differences: dict[str, Any]
) -> None:
    answer = {**ON_MAINS, **changes}
    if "." + CHARGE in changes:
        del answer[CHARGE]
    reading = decode(ups_mib, "ups-1", answer)
    assert reading.model_dump(exclude={"device", "profile"}) == {**EXPECTED_ON_MAINS, **differences}


def test_missing_oids_are_unknown_never_zero(ups_mib: Any) -> None:
    assert decode(ups_mib, "ups-1", {}) == PowerReading(device="ups-1", profile="ups-mib")


def test_unknown_input_leaves_a_derivation_unknown_unless_another_decides(ups_mib: Any) -> None:
    without_source = {k: v for k, v in ON_MAINS.items() if k != SOURCE}
    assert decode(ups_mib, "ups-1", without_source).on_battery is None
    assert decode(ups_mib, "ups-1", {**without_source, SECONDS: 30}).on_battery is True


GOOD = """\
profile: {name}
description: test device
readings:
  battery_charge_pct: {{oid: 1.3.6.1.4.1.99.1, index: 0}}
  on_battery:
    oid: 1.3.6.1.4.1.99.2
    enum: {{OB: true, OL: false, 2: true, 1: false}}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_vendor_profile_with_word_enums(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, "vendor-x", GOOD.format(name="vendor-x")))
    answer = {"1.3.6.1.4.1.99.1.0": b"87", "1.3.6.1.4.1.99.2.0": b"OB"}
    reading = decode(profile, "ups-2", answer)
    assert (reading.battery_charge_pct, reading.on_battery) == (87.0, True)
    assert decode(profile, "ups-2", {"1.3.6.1.4.1.99.2.0": 1}).on_battery is False


BAD = [
    (
        "unknown key in a reading",
        "  load_pct: {oid: 1.3.6.1.4.1.99.1, scael: 2}",
        ["readings.load_pct", "unknown key 'scael'", "scale"],
    ),
    ("unknown top-level key", "colour: blue", ["unknown key 'colour'", "readings"]),
    (
        "not a wire field",
        "  battery_charge: {oid: 1.3.6.1.4.1.99.1}",
        ["readings.battery_charge", "not a PowerReading field", "battery_charge_pct"],
    ),
    (
        "instance written into oid",
        "  input_v: {oid: 1.3.6.1.4.1.99.3.0}",
        ["readings.input_v.oid", "ends in .0", "index"],
    ),
    (
        "yes/no field without enum",
        "  mains_present: {oid: 1.3.6.1.4.1.99.3}",
        ["readings.mains_present", "enum"],
    ),
    (
        "word outside the wire's literal",
        "  battery_status: {oid: 1.3.6.1.4.1.99.3, enum: {1: ok}}",
        ["readings.battery_status.enum.1", "'ok'", "depleted"],
    ),
    (
        "derive from an unknown value",
        "derive:\n  mains_present:\n    any: [{value: volts, gt: 100}]",
        ["derive.mains_present", "'volts'", "battery_charge_pct"],
    ),
    (
        "condition with two operators",
        "derive:\n  mains_present:\n    any: [{value: battery_charge_pct, gt: 1, lt: 2}]",
        ["derive.mains_present.any.0", "exactly one of eq"],
    ),
    (
        "derive into a number field",
        "derive:\n  load_pct:\n    all: [{value: battery_charge_pct, gt: 1}]",
        ["derive.load_pct", "yes/no"],
    ),
    (
        "duplicate key",
        "  battery_charge_pct: {oid: 1.3.6.1.4.1.99.9}",
        ["duplicate key 'battery_charge_pct'", "bad.yaml:8:"],
    ),
]


@pytest.mark.parametrize(("extra", "needles"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_profiles_name_the_key_and_the_fix(
    tmp_path: Path, extra: str, needles: list[str]
) -> None:
    text = GOOD.format(name="bad") + extra + "\n"
    with pytest.raises(ProfileError) as caught:
        load_profile(write(tmp_path, "bad", text))
    message = str(caught.value)
    assert "bad.yaml" in message
    for needle in needles:
        assert needle in message, message


def test_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "broken", "profile: broken\nreadings: {input_v: [\n")
    with pytest.raises(ProfileError, match=r"broken\.yaml:\d+:\d+: not valid YAML"):
        load_profile(path)


def test_a_file_that_is_yaml_but_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="a profile is a YAML mapping"):
        load_profile(write(tmp_path, "list", "- 1\n- 2\n"))


def test_profile_name_must_match_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"key 'profile' is 'other'.*make them the same"):
        load_profile(write(tmp_path, "mine", GOOD.format(name="other")))


def test_search_dirs_override_and_unknown_names(tmp_path: Path) -> None:
    write(tmp_path, "ups-mib", GOOD.format(name="ups-mib"))
    assert "on_battery" in load_profile_by_name("ups-mib", [tmp_path, PROFILES_DIR]).readings
    assert "on_battery" in load_profile_by_name("ups-mib").derive
    with pytest.raises(ProfileError, match=r"no profile 'apc-x'.*known: ups-mib"):
        load_profile_by_name("apc-x", [tmp_path])
    with pytest.raises(ProfileError, match="not a slug"):
        load_profile_by_name("../etc/passwd")
