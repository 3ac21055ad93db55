"""Device profiles: strict loading, and the pure decoders (GET answer -> PowerReading,
walked rows -> InterfaceReadings)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.profile_decode import decode, decode_interfaces, port_slug, rows_from_walk
from agent.profiles import (
    PROFILES_DIR,
    InterfaceProfile,
    Profile,
    ProfileError,
    RawValue,
    load_profile,
    load_profile_by_name,
    oids,
    table_columns,
)
from contract.wire import InterfaceReading, PowerReading, Report

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
    "output_off": False,
    "on_bypass": False,
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
    (
        "on battery by seconds only, mains gone",
        {SECONDS: 60, INPUT_V: 0},
        {"on_battery": True, "on_battery_for_s": 60.0, "input_v": 0.0, "mains_present": False},
    ),
    (
        "on battery by seconds, output source 'other'",
        {SECONDS: 60, SOURCE: 1},
        {"on_battery": True, "on_battery_for_s": 60.0},
    ),
    # A card keeping the last outage's seconds once the mains is back (pve-ups#25): the
    # card says normal output, the mains is there: not on battery (a false critical).
    ("seconds stuck from the last outage", {SECONDS: 5400}, {"on_battery_for_s": 5400.0}),
    ("on battery by output source only", {SOURCE: 5}, {"on_battery": True}),
    # Bypass: the load on the mains through the bypass, not on battery; the battery would
    # not take over (the rules count it 0 h).
    ("bypass is not battery", {SOURCE: 4}, {"on_bypass": True}),
    # none(2): nothing powers the output; what the UPS feeds is dark, mains or not.
    ("output off", {SOURCE: 2}, {"output_off": True}),
    (
        "output off, mains gone",
        {SOURCE: 2, INPUT_V: 0},
        {"output_off": True, "input_v": 0.0, "mains_present": False},
    ),
    ("runtime stuck at 65535", {MINUTES: 65535}, {"battery_runtime_s": None}),
    ("runtime -1", {MINUTES: -1}, {"battery_runtime_s": None}),
    ("negative charge", {CHARGE: -5}, {"battery_charge_pct": None}),
    ("charge above 100", {CHARGE: 250}, {"battery_charge_pct": None}),
    ("load the wire refuses as absurd", {LOAD: 900}, {"load_pct": None}),
    # The seconds unknown: normal output with the mains present still says not on battery;
    # with no output source either, nothing decides: unknown, not False.
    ("negative seconds on battery", {SECONDS: -1}, {"on_battery_for_s": None}),
    (
        "negative seconds, no output source",
        {SECONDS: -1, SOURCE: None},
        {"on_battery_for_s": None, "on_battery": None, "output_off": None, "on_bypass": None},
    ),
    ("status low", {STATUS: 3}, {"battery_status": "low"}),
    ("status depleted", {STATUS: 4}, {"battery_status": "depleted"}),
    ("status unknown", {STATUS: 1}, {"battery_status": "unknown"}),
    ("status outside the enum", {STATUS: 9}, {"battery_status": None}),
    (
        "output source outside the MIB",
        {SOURCE: 42},
        {"on_battery": None, "output_off": None, "on_bypass": None},
    ),
    ("mains sagging below 100 V", {INPUT_V: 90}, {"input_v": 90.0, "mains_present": False}),
    ("noSuchInstance", {CHARGE: None}, {"battery_charge_pct": None}),
    ("number sent as OctetString", {INPUT_V: b"229.5"}, {"input_v": 229.5}),
    ("garbage OctetString", {INPUT_V: b"\xff\xfe"}, {"input_v": None, "mains_present": None}),
    ("leading-dot OIDs", {"." + CHARGE: 80, CHARGE: None}, {"battery_charge_pct": 80.0}),
    # A reading the wire refuses as absurd is unknown, and so is what it would decide:
    # INT32_MAX ("not available" on many cards) seconds on battery while the output
    # source says normal must not say "on battery" (a false critical, a false dark-in).
    (
        "seconds on battery at INT32_MAX",
        {SECONDS: 2147483647},
        {"on_battery_for_s": None},
    ),
    ("mains voltage at the 16-bit cap", {INPUT_V: 65535}, {"input_v": None, "mains_present": None}),
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
    gone = {**without_source, SECONDS: 30, INPUT_V: 0}
    assert decode(ups_mib, "ups-1", gone).on_battery is True
    # seconds counted with the mains there and no output source to say which: not known
    assert decode(ups_mib, "ups-1", {**without_source, SECONDS: 30}).on_battery is None


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


def power(path: Path) -> Profile:
    profile = load_profile(path)
    assert isinstance(profile, Profile)
    return profile


def test_a_vendor_profile_with_word_enums(tmp_path: Path) -> None:
    profile = power(write(tmp_path, "vendor-x", GOOD.format(name="vendor-x")))
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
    (
        "count into a yes/no field",
        "derive:\n  mains_present:\n    count: [{value: battery_charge_pct, gt: 1}]",
        ["derive.mains_present", "count fields"],
    ),
    (
        "match on a number",
        "derive:\n  mains_present:\n    any: [{value: battery_charge_pct, match: x}]",
        ["derive.mains_present", "match needs a text value", "text: true"],
    ),
    (
        "match that is no regex",
        "sources:\n  model: {oid: 1.3.6.1.4.1.99.5, text: true}\n"
        "derive:\n  mains_present:\n    any: [{value: model, match: '('}]",
        ["derive.mains_present.any.0", "not a regular expression"],
    ),
    (
        "text with a scale",
        "sources:\n  model: {oid: 1.3.6.1.4.1.99.5, text: true, scale: 2}",
        ["sources.model", "text value takes no scale"],
    ),
    (
        "text on a number field",
        "  load_pct: {oid: 1.3.6.1.4.1.99.5, text: true}",
        ["readings.load_pct", "not a text field"],
    ),
    (
        "empty in-list",
        "derive:\n  mains_present:\n    any: [{value: battery_charge_pct, in: []}]",
        ["derive.mains_present.any.0.condition.in"],
    ),
    ("an unknown kind", "kind: table", ["kind 'table'", "power, interfaces"]),
    (
        "test.absent names no reading",
        "test: {absent: [fuel_pct]}",
        ["test.absent", "'fuel_pct'", "remove it"],
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
    overridden = load_profile_by_name("ups-mib", [tmp_path, PROFILES_DIR])
    assert isinstance(overridden, Profile) and "on_battery" in overridden.readings
    assert "on_battery" in load_profile_by_name("ups-mib").derive
    with pytest.raises(ProfileError, match=r"no profile 'apc-x'.*known: ups-mib"):
        load_profile_by_name("apc-x", [tmp_path])
    with pytest.raises(ProfileError, match="not a slug"):
        load_profile_by_name("../etc/passwd")


def test_count_is_a_lower_bound_and_unknown_only_when_nothing_is_known(tmp_path: Path) -> None:
    text = GOOD.format(name="counts") + (
        "sources:\n  a: {oid: 1.3.6.1.4.1.99.7}\n  b: {oid: 1.3.6.1.4.1.99.8}\n"
        "derive:\n  alarms_count:\n    count: [{value: a, eq: 2}, {value: b, in: [3, 4]}]\n"
    )
    profile = power(write(tmp_path, "counts", text))
    a, b = "1.3.6.1.4.1.99.7.0", "1.3.6.1.4.1.99.8.0"
    cases = [({a: 2, b: 4}, 2), ({a: 2, b: 1}, 1), ({a: 1, b: 1}, 0), ({a: 2}, 1), ({}, None)]
    for answer, expected in cases:
        assert decode(profile, "ups-9", answer).alarms_count == expected, answer


def test_match_on_a_text_source(tmp_path: Path) -> None:
    text = GOOD.format(name="words") + (
        "sources:\n  state: {oid: 1.3.6.1.4.1.99.7, text: true}\n"
        "derive:\n  mains_present:\n    any: [{value: state, match: '(?i)^on ?line'}]\n"
    )
    profile = power(write(tmp_path, "words", text))
    state = "1.3.6.1.4.1.99.7.0"
    assert decode(profile, "ups-9", {state: b"Online"}).mains_present is True
    assert decode(profile, "ups-9", {state: b"On battery"}).mains_present is False
    assert decode(profile, "ups-9", {}).mains_present is None


def test_cases_flags_and_words(tmp_path: Path) -> None:
    text = GOOD.format(name="cases") + (
        "sources:\n"
        "  state: {oid: 1.3.6.1.4.1.99.7, text: true, invalid: {equals: [WAIT, '?']}}\n"
        "  minutes: {oid: 1.3.6.1.4.1.99.8, scale: 60}\n"
        "derive:\n"
        "  mains_present:\n"
        "    when:\n"
        "      - {value: state, has: OB, then: false}\n"
        "      - {value: state, has: OL, then: true}\n"
        "  battery_status:\n"
        "    when:\n"
        "      - {value: state, has: LB, then: low}\n"
        "      - {value: state, match: '.', then: normal}\n"
        "  battery_runtime_s:\n"
        "    when:\n"
        "      - {value: minutes, gt: 0, then: {value: minutes}}\n"
        "      - {value: state, has: OB, then: {value: minutes}}\n"
    )
    profile = power(write(tmp_path, "cases", text))
    state, minutes = "1.3.6.1.4.1.99.7.0", "1.3.6.1.4.1.99.8.0"

    def fields(answer: dict[str, RawValue]) -> tuple[object, object, object]:
        reading = decode(profile, "ups-9", answer)
        return reading.mains_present, reading.battery_status, reading.battery_runtime_s

    assert fields({state: b"OL CHRG", minutes: 30}) == (True, "normal", 1800.0)
    assert fields({state: b"OB LB OL", minutes: 0}) == (False, "low", 0.0), "the first case wins"
    assert fields({state: b"OL", minutes: 0}) == (True, "normal", None), "0 on mains: unknown"
    assert fields({state: b"WAIT", minutes: 5}) == (None, None, 300.0), "a word meaning unknown"
    assert fields({state: b"OLD", minutes: 5})[0] is None, "has matches whole words only"
    assert fields({}) == (None, None, None), "no case holds: unknown"


def test_first_and_text_renamed_by_enum(tmp_path: Path) -> None:
    text = GOOD.format(name="first") + (
        "sources:\n"
        "  source: {oid: 1.3.6.1.4.1.99.7}\n"
        "  cause: {oid: 1.3.6.1.4.1.99.8, text: true, enum: {1.3.6.1.4.1.99.9.1: mainsLost}}\n"
        "  volts: {oid: 1.3.6.1.4.1.99.10}\n"
        "derive:\n"
        "  mains_present:\n"
        "    first:\n"
        "      - {value: cause, ne: mainsLost}\n"
        "      - {value: volts, gt: 100}\n"
    )
    profile = power(write(tmp_path, "first", text))
    cause, volts = "1.3.6.1.4.1.99.8.0", "1.3.6.1.4.1.99.10.0"
    assert decode(profile, "u", {cause: "1.3.6.1.4.1.99.9.1", volts: 230}).mains_present is False
    assert decode(profile, "u", {cause: "1.3.6.1.4.1.99.9.2", volts: 0}).mains_present is True
    assert decode(profile, "u", {volts: 0}).mains_present is False, "the next known decides"
    assert decode(profile, "u", {}).mains_present is None


BAD_CASES = [
    (
        "a case's then that does not fit the field",
        "derive:\n  battery_status:\n    when: [{value: battery_charge_pct, gt: 1, then: flat}]",
        ["derive.battery_status: then", "'flat'", "does not fit", "depleted"],
    ),
    (
        "a case's then naming nothing",
        "derive:\n  load_pct:\n    when: [{value: battery_charge_pct, gt: 1, then: {value: x}}]",
        ["derive.load_pct", "then 'x'"],
    ),
    (
        "a case without then",
        "derive:\n  mains_present:\n    when: [{value: battery_charge_pct, gt: 1}]",
        ["derive.mains_present.when.0.then", "required"],
    ),
    (
        "has on a number",
        "derive:\n  mains_present:\n    any: [{value: battery_charge_pct, has: OL}]",
        ["derive.mains_present", "has needs a text value", "text: true"],
    ),
    (
        "text with a bound",
        "sources:\n  model: {oid: 1.3.6.1.4.1.99.5, text: true, invalid: {below: 0}}",
        ["sources.model", "text value takes no scale", "invalid.equals"],
    ),
]


@pytest.mark.parametrize(
    ("extra", "needles"), [b[1:] for b in BAD_CASES], ids=[b[0] for b in BAD_CASES]
)
def test_bad_cases_name_the_key_and_the_fix(tmp_path: Path, extra: str, needles: list[str]) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(write(tmp_path, "bad", GOOD.format(name="bad") + extra + "\n"))
    for needle in needles:
        assert needle in str(caught.value), str(caught.value)


# --- table profiles ------------------------------------------------------------------

IF, IFX = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."
NAME, DESCR, TYPE, ADMIN, OPER = IFX + "1", IF + "2", IF + "3", IF + "7", IF + "8"
SPEED, HC_IN, HC_OUT, IN_ERR, OUT_ERR = IFX + "15", IFX + "6", IFX + "10", IF + "14", IF + "20"


def row(
    name: str, if_type: int = 6, oper: int = 1, changes: dict[str, RawValue] | None = None
) -> dict[str, RawValue]:
    values: dict[str, RawValue] = {
        NAME: name.encode(),
        DESCR: f"Port {name}".encode(),
        TYPE: if_type,
        ADMIN: 1,
        OPER: oper,
        SPEED: 1000,
        HC_IN: 2**40,
        HC_OUT: 2**39,
        IN_ERR: 3,
        OUT_ERR: 0,
    }
    values.update(changes or {})
    return values


@pytest.fixture(scope="module")
def if_mib() -> InterfaceProfile:
    profile = load_profile_by_name("if-mib-router")
    assert isinstance(profile, InterfaceProfile)
    return profile


def test_shipped_table_profile_walks_each_column_once(if_mib: InterfaceProfile) -> None:
    columns = table_columns(if_mib)
    assert len(columns) == len(set(columns)) == 10
    assert NAME in columns and TYPE in columns and HC_IN in columns


def test_labels_that_collide_with_another_row_s_index_still_give_each_row_its_port(
    if_mib: InterfaceProfile,
) -> None:
    """A report giving one port twice is refused whole (contract/wire.py): the site would
    go silent. A label, then the same label with an index, then that label again."""
    rows = {"1": row("Gi0/0/6"), "2": row("Gi0/0"), "6": row("Gi0/0")}  # 6: gi0-0-6 taken
    readings = decode_interfaces(if_mib, "rt-1", rows)
    assert [r.port for r in readings] == ["gi0-0-6", "gi0-0", "gi0-0-6-2"]
    at = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)
    Report(site="s", province="p", seq=1, taken_at=at, interval_s=30, interfaces=tuple(readings))


def test_table_rows_become_interfaces_filtered_and_labelled(if_mib: InterfaceProfile) -> None:
    rows = {
        "1": row("Gi0/0/0"),
        "2": row("Gi0/0/1", oper=2),
        "3": row("Lo0", if_type=24),  # loopback: not an Ethernet type
        "4": row("Gi0"),  # the management port: excluded by name
        "5": row("", changes={DESCR: b""}),  # no label at all: ifIndex
        "6": row("Gi0/0/0"),  # the same name twice: the index tells them apart
        "7": row("Te0/1/0", oper=7, changes={SPEED: 10_000}),  # lowerLayerDown
        "8": row("Tu1", changes={TYPE: None}),  # ifType unknown: not kept on a guess
        "10": row("Gi0/0/9", oper=3, changes={HC_IN: None, SPEED: -1}),  # testing, gaps, absurd
    }
    readings = decode_interfaces(if_mib, "rt-1", rows)
    assert [r.port for r in readings] == [
        "gi0-0-0",
        "gi0-0-1",
        "if5",
        "gi0-0-0-6",
        "te0-1-0",
        "gi0-0-9",
    ]
    first = readings[0]
    assert first == InterfaceReading(
        device="rt-1",
        port="gi0-0-0",
        name="Gi0/0/0",
        oper_up=True,
        admin_up=True,
        speed_mbps=1000.0,
        in_octets_total=2**40,
        out_octets_total=2**39,
        in_errors_total=3,
        out_errors_total=0,
    )
    by_port = {r.port: r for r in readings}
    assert by_port["gi0-0-1"].oper_up is False and by_port["te0-1-0"].oper_up is False
    assert by_port["if5"].name is None
    gaps = by_port["gi0-0-9"]
    assert (gaps.oper_up, gaps.in_octets_total, gaps.speed_mbps) == (None, None, None)


def test_rows_are_in_index_order_and_bounded(if_mib: InterfaceProfile) -> None:
    rows = {str(i): row(f"Gi1/{i}") for i in (10, 9, 2, 1)}
    assert [r.port for r in decode_interfaces(if_mib, "sw-1", rows)] == [
        "gi1-1",
        "gi1-2",
        "gi1-9",
        "gi1-10",
    ]
    small = if_mib.model_copy(update={"max_rows": 2})
    assert len(decode_interfaces(small, "sw-1", rows)) == 2


def test_rows_from_walk_pivots_columns_into_rows() -> None:
    walked: dict[str, dict[str, RawValue]] = {
        NAME: {"1": b"Gi0/0/0", "2": b"Gi0/0/1"},
        "." + OPER: {"1": 1},
    }
    assert rows_from_walk(walked) == {
        "1": {NAME: b"Gi0/0/0", OPER: 1},
        "2": {NAME: b"Gi0/0/1"},
    }


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("GigabitEthernet0/0/1", "gigabitethernet0-0-1"),
        ("Gi0/0/1.100", "gi0-0-1-100"),
        ("  eth0  ", "eth0"),
        ("Đường truyền Huế #2", "duong-truyen-hue-2"),
        ("///", None),
        ("", None),
        ("x" * 80, "x" * 64),
    ],
)
def test_port_slug(text: str, slug: str | None) -> None:
    assert port_slug(text) == slug


TABLE = """\
profile: {name}
kind: interfaces
description: test table
columns:
  name: {{oid: 1.3.6.1.2.1.31.1.1.1.1}}
  oper_up: {{oid: 1.3.6.1.2.1.2.2.1.8, enum: {{1: true, 2: false}}}}
sources:
  if_type: {{oid: 1.3.6.1.2.1.2.2.1.3}}
port: {{from: [name]}}
"""

BAD_TABLES = [
    (
        "index on a column",
        "  speed_mbps: {oid: 1.3.6.1.2.1.31.1.1.1.15, index: 1}",
        ["columns.speed_mbps.index", "a column is walked"],
    ),
    (
        "not an interface field",
        "  battery_charge_pct: {oid: 1.3.6.1.4.1.99.1}",
        ["columns.battery_charge_pct", "not an InterfaceReading field", "rsl_dbm"],
    ),
    (
        "yes/no column without enum",
        "  admin_up: {oid: 1.3.6.1.2.1.2.2.1.7}",
        ["columns.admin_up", "enum"],
    ),
    (
        "port label from a number",
        "port: {from: [if_type]}",
        ["port.from", "'if_type'", "text"],
    ),
    (
        "include by count",
        "include:\n  count: [{value: if_type, eq: 6}]",
        ["include", "count does not select rows"],
    ),
    (
        "include from an unknown value",
        "include:\n  any: [{value: iftype, eq: 6}]",
        ["include", "'iftype'", "if_type"],
    ),
    ("max_rows of zero", "max_rows: 0", ["max_rows", "greater than or equal to 1"]),
]


@pytest.mark.parametrize(
    ("extra", "needles"), [b[1:] for b in BAD_TABLES], ids=[b[0] for b in BAD_TABLES]
)
def test_bad_table_profiles_name_the_key_and_the_fix(
    tmp_path: Path, extra: str, needles: list[str]
) -> None:
    text = TABLE.format(name="bad")
    if extra.startswith("  "):  # a column: goes under columns
        text = text.replace("sources:\n", extra + "\nsources:\n")
    elif extra.startswith("port:"):
        text = text.replace("port: {from: [name]}\n", "")
        text += extra + "\n"
    else:
        text += extra + "\n"
    with pytest.raises(ProfileError) as caught:
        load_profile(write(tmp_path, "bad", text))
    message = str(caught.value)
    for needle in needles:
        assert needle in message, message


def test_a_table_profile_without_its_kind(tmp_path: Path) -> None:
    text = TABLE.format(name="nokind").replace("kind: interfaces\n", "")
    with pytest.raises(ProfileError, match="add kind: interfaces"):
        load_profile(write(tmp_path, "nokind", text))


def test_a_table_profile_needs_a_port_label(tmp_path: Path) -> None:
    text = TABLE.format(name="noport").replace("port: {from: [name]}\n", "")
    with pytest.raises(ProfileError, match="port: required key missing"):
        load_profile(write(tmp_path, "noport", text))


# A group inside any/all (agent/profile_vocabulary.Group), in Kleene logic as there:
# "source 5, or seconds above 0 and not (normal output with the mains there)".
ON_BATTERY = {
    "any": [
        {"value": "s", "eq": 5},
        {
            "all": [
                {"value": "sec", "gt": 0},
                {"any": [{"value": "s", "ne": 3}, {"value": "v", "le": 100}]},
            ]
        },
    ]
}


@pytest.mark.parametrize(
    ("s", "sec", "v", "expected"),
    [
        (5, 0, 230, True),  # the output source alone
        (3, 5400, 230, False),  # seconds stuck from the last outage
        (3, 60, 0, True),  # a card that never says 5, the mains gone
        (1, 60, 230, True),  # output 'other' and seconds counting
        (None, 60, 230, None),  # nothing says which
        (None, 60, None, None),
        (3, None, 230, False),  # the group decided by its known False
        (None, None, None, None),
    ],
)
def test_a_group_is_one_item_in_kleene_logic(
    s: int | None, sec: int | None, v: int | None, expected: bool | None
) -> None:
    from agent.profile_vocabulary import Derivation

    derivation = Derivation.model_validate(ON_BATTERY)
    assert derivation.evaluate({"s": s, "sec": sec, "v": v}) is expected
    assert [c.value for c in derivation.conditions] == ["s", "sec", "s", "v"]


APC_OUTPUT = "1.3.6.1.4.1.318.1.1.1.4.1.1.0"  # upsBasicOutputStatus
EATON_OUTPUT = "1.3.6.1.4.1.534.1.4.5.0"  # xupsOutputSource


@pytest.mark.parametrize(
    ("profile", "oid", "raw", "off", "bypass"),
    [
        ("apc-powernet-ups", APC_OUTPUT, 2, False, False),  # onLine
        ("apc-powernet-ups", APC_OUTPUT, 3, False, False),  # onBattery
        ("apc-powernet-ups", APC_OUTPUT, 5, True, False),  # timedSleeping
        ("apc-powernet-ups", APC_OUTPUT, 7, True, False),  # off
        ("apc-powernet-ups", APC_OUTPUT, 8, True, False),  # rebooting
        ("apc-powernet-ups", APC_OUTPUT, 11, True, False),  # sleepingUntilPowerReturn
        ("apc-powernet-ups", APC_OUTPUT, 6, False, True),  # softwareBypass
        ("apc-powernet-ups", APC_OUTPUT, 9, False, True),  # switchedBypass
        ("apc-powernet-ups", APC_OUTPUT, 10, False, True),  # hardwareFailureBypass
        ("apc-powernet-ups", APC_OUTPUT, 16, False, True),  # emergencyStaticBypass
        ("apc-powernet-ups", APC_OUTPUT, 13, False, False),  # ecoMode: transfers on a failure
        ("apc-powernet-ups", APC_OUTPUT, 1, None, None),  # unknown
        ("eaton-xups", EATON_OUTPUT, 3, False, False),  # normal
        ("eaton-xups", EATON_OUTPUT, 2, True, False),  # none
        ("eaton-xups", EATON_OUTPUT, 4, False, True),  # bypass
        ("eaton-xups", EATON_OUTPUT, 11, False, True),  # maintenanceBypass
        ("eaton-xups", EATON_OUTPUT, 10, False, False),  # highEfficiencyMode
        ("eaton-xups", EATON_OUTPUT, 99, None, None),  # outside the MIB
    ],
)
def test_output_off_and_bypass_by_vendor(
    profile: str, oid: str, raw: int, off: bool | None, bypass: bool | None
) -> None:
    """What each card says of its output: off (what the UPS feeds is dark) or in bypass
    (the battery would not take over). A state that transfers on a failure is neither."""
    loaded = load_profile_by_name(profile)
    assert isinstance(loaded, Profile)
    reading = decode(loaded, "ups-1", {oid: raw})
    assert (reading.output_off, reading.on_bypass) == (off, bypass)
