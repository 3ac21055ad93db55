"""Hardened-station compliance: one station's criteria, an area's count, a province report."""

from __future__ import annotations

import string
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import TypeAdapter, ValidationError

from collector.inventory import Inventory, InventorySite
from contract.wire import DeviceDecl, LinkReading, Meta, PathDecl, PowerReading, Report, State
from rules import Policy, SiteSnapshot, load_policy
from rules.compliance import (
    ComplianceReport,
    StationCompliance,
    build_report,
    settings_of,
    station_compliance,
)
from rules.compliance_policy import CompliancePolicy
from rules.texts import CATALOGUE, LANGS, render
from tests.test_rules_support import clock_behind

NOW = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)  # Yagi's landfall morning
POLICY = load_policy()
PROVINCE = "hp"

FIBRE = PathDecl(path="fo-vnpt", media="fibre", provider="vnpt", srlg=("duct-ql5",))
MICROWAVE = PathDecl(path="mw-viettel", media="microwave", provider="viettel", srlg=("tower-b",))
VSAT = PathDecl(path="vsat", media="vsat", provider="vnpt")
# the fibre climbs the same tower as the microwave dish: one storm takes both
FIBRE_ON_TOWER = PathDecl(path="fo-vnpt", media="fibre", srlg=("duct-ql5", "tower-b"))
GOOD_PATHS = (FIBRE, MICROWAVE)


def item(
    site: str,
    area: str = "an-duong",
    *,
    operator: str = "vnpt",
    hardened: bool = True,
    kind: str = "station",
    province: str = PROVINCE,
) -> InventorySite:
    names = {"an-duong": "Huyện An Dương", "cat-hai": "Huyện Cát Hải", "do-son": "Quận Đồ Sơn"}
    return InventorySite.model_validate(
        {
            "site": site,
            "kind": kind,
            "name": f"Trạm {site.upper()}",  # not the id: the PDF tests search for ids
            "operator": operator,
            "province": province,
            "province_name": "Hải Phòng" if province == PROVINCE else "Quảng Ninh",
            "area": area,
            "area_name": names.get(area),
            "hardened": hardened,
        }
    )


def station(
    site: str,
    *,
    paths: Sequence[PathDecl] = GOOD_PATHS,
    fuel_l: float | None = 400.0,
    burn_l_per_h: float | None = 5.0,
    battery_s: float = 4 * 3600,
    generator: bool = True,
    hardened: bool = True,
    age_s: float = 30,
    online: bool = True,
    with_meta: bool = True,
    links: Sequence[LinkReading] = (),
    province: str = PROVINCE,
    area: str = "an-duong",
    mains_lost: bool = False,
    generator_running: bool = False,
    extra_power: Sequence[PowerReading] = (),
) -> SiteSnapshot:
    """A hardened station on mains: 4 h of battery and 400 L at 5 L/h (80 h) unless told."""
    power = [
        PowerReading(
            device="ups1",
            mains_present=not mains_lost,
            on_battery=mains_lost,
            battery_charge_pct=100.0,
            battery_runtime_s=battery_s,
            load_pct=30.0,
        )
    ]
    if generator:
        power.append(
            PowerReading(
                device="gen1",
                generator_running=generator_running,
                on_generator=generator_running if mains_lost else None,
                fuel_l=fuel_l,
                fuel_burn_l_per_h=burn_l_per_h,
            )
        )
    power += extra_power
    snap = SiteSnapshot(site=site, province=province)
    if with_meta:
        devices = (DeviceDecl(device="gen1", role="generator"),) if generator else ()
        meta = Meta(
            site=site,
            province=province,
            site_kind="station",
            name=f"Trạm {site.upper()}",
            operator="vnpt",
            area=area,
            hardened=hardened,
            site_class="hardened" if hardened else "ordinary",
            paths=tuple(paths),
            devices=devices,
            interval_s=60,
            agent_version="0.1.0",
            at=NOW - timedelta(days=1),
        )
        snap = snap.with_meta(meta)
    state: Literal["online", "offline"] = "online" if online else "offline"
    snap = snap.with_state(State(site=site, province=province, state=state, at=NOW))
    taken = NOW - timedelta(seconds=age_s)
    report = Report(
        site=site,
        province=province,
        seq=1,
        taken_at=taken,
        interval_s=60,
        power=tuple(power),
        links=tuple(links),
    )
    return snap.with_report(report, received_at=taken)


def judge(snapshot: SiteSnapshot | None, **inventory: Any) -> StationCompliance:
    return station_compliance(snapshot, item("hp-0001", **inventory), POLICY, NOW)


@pytest.mark.parametrize(
    ("snapshot", "status", "codes"),
    [
        pytest.param(station("hp-0001"), "compliant", (), id="compliant"),
        pytest.param(
            station("hp-0001", fuel_l=50.0),  # 10 h of fuel + 4 h of battery
            "non_compliant",
            ("generator_autonomy_short",),
            id="generator-short-10h-fuel",
        ),
        pytest.param(
            station("hp-0001", generator=False), "non_compliant", ("no_generator",), id="no-gen"
        ),
        pytest.param(
            station("hp-0001", burn_l_per_h=None),  # the policy assumes no burn rate
            "non_compliant",
            ("generator_autonomy_unknown",),
            id="fuel-burn-unknown",
        ),
        pytest.param(
            station("hp-0001", paths=(MICROWAVE, VSAT)),
            "non_compliant",
            ("no_fibre_path",),
            id="no-fibre",
        ),
        pytest.param(
            station("hp-0001", paths=(FIBRE_ON_TOWER, MICROWAVE)),
            "non_compliant",
            ("no_second_independent_path",),
            id="two-paths-share-a-tower",
        ),
        pytest.param(
            station("hp-0001", paths=(FIBRE_ON_TOWER, MICROWAVE, VSAT)),
            "compliant",
            (),
            id="vsat-is-the-second-path",
        ),
        pytest.param(
            station("hp-0001", paths=(FIBRE,)),
            "non_compliant",
            ("no_second_independent_path",),
            id="fibre-only",
        ),
        pytest.param(
            station(
                "hp-0001",
                links=(LinkReading(path="fo-vnpt", media="fibre", srlg=("duct-ql5",), up=False),),
            ),
            "compliant",
            (),
            id="fibre-cut-now-still-built-right",
        ),
        pytest.param(
            station("hp-0001", paths=(FIBRE,), links=(LinkReading(path="mw", media="microwave"),)),
            "compliant",
            (),
            id="reported-path-counts-as-capability",
        ),
        pytest.param(station("hp-0001", age_s=3600), "non_compliant", ("silent",), id="silent"),
        pytest.param(
            station("hp-0001", online=False), "non_compliant", ("silent",), id="will-fired"
        ),
        pytest.param(None, "unknown", ("never_reported",), id="never-reported"),
        pytest.param(
            station("hp-0001", hardened=False),
            "non_compliant",
            ("not_declared_hardened",),
            id="agent-not-declared-hardened",
        ),
        pytest.param(
            station(
                "hp-0001",
                with_meta=False,
                links=(
                    LinkReading(path="fo", media="fibre", srlg=("duct-a",), up=True),
                    LinkReading(path="mw", media="microwave", srlg=("tower-b",), up=True),
                ),
            ),
            "non_compliant",
            ("meta_missing",),
            id="no-meta-yet",
        ),
    ],
)
def test_station_compliance(snapshot: SiteSnapshot | None, status: str, codes: tuple[str]) -> None:
    result = judge(snapshot)
    assert (result.status, result.codes) == (status, codes)
    for criterion in result.failed:  # every criterion reads in both languages
        assert criterion.text("vi") and criterion.text("en")


def test_generator_short_says_the_hours() -> None:
    result = judge(station("hp-0001", fuel_l=50.0))
    (short,) = result.failed
    assert short.numbers == {"autonomy_h": 14.0, "generator_h": 10.0, "required_h": 72}
    assert short.text("vi") == (
        "điện dự phòng (ắc quy + máy phát) chỉ đủ 14 giờ (máy phát 10 giờ), cần 72 giờ"
    )
    assert result.autonomy_h == 14.0


@pytest.mark.parametrize(
    ("mains_lost", "running", "codes", "autonomy_h"),
    [
        # on mains, the set idle: its fuel counts (it is assumed to start, as the verdicts do)
        (False, False, (), 84.0),
        # mains lost and the set runs: its fuel is being burnt, it counts
        (True, True, (), 84.0),
        # mains lost, the controller says stopped, the site on battery: it did not start;
        # its 80 h of fuel are no autonomy the station has now, only the battery's 4 h
        (True, False, ("generator_not_started",), 4.0),
    ],
)
def test_a_generator_that_did_not_start_gives_no_autonomy(
    mains_lost: bool, running: bool, codes: tuple[str, ...], autonomy_h: float
) -> None:
    result = judge(station("hp-0001", mains_lost=mains_lost, generator_running=running))
    assert result.codes == codes
    assert result.autonomy_h == pytest.approx(autonomy_h, abs=0.02)
    if codes:
        (failed,) = result.failed
        assert failed.text("vi") == (
            "mất điện lưới nhưng máy phát không khởi động (bộ điều khiển báo dừng): "
            "80 giờ nhiên liệu không tính, trạm chỉ còn ắc quy 3,9 giờ, cần 72 giờ"
        )
        assert failed.text("en") == (
            "mains lost but the generator did not start (its controller says stopped): "
            "its 80 h of fuel are not counted, the station has 3.9 h of battery, "
            "72 h required"
        )


# a second UPS whose runtime is a vendor cap, with no model in the site config
UPS2_UNKNOWN = PowerReading(
    device="ups2", mains_present=True, on_battery=False, battery_charge_pct=100.0,
    battery_runtime_s=65_535, load_pct=50.0,
)  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "fuel_l", "codes", "autonomy_h"),
    [
        ((), 350.0, (), 74.0),  # 70 h of fuel + 4 h of battery
        # ups2's hours unknown: the station's battery hours are its weakest battery's, so
        # ups1's 4 h are at most what the batteries give; the fuel alone is what is known
        ((UPS2_UNKNOWN,), 350.0, ("generator_autonomy_short",), 70.0),
        ((UPS2_UNKNOWN,), 400.0, (), 80.0),  # the fuel alone meets the 72 h
    ],
)
def test_a_battery_of_unknown_hours_beside_a_known_one_counts_nothing(
    extra: tuple[PowerReading, ...], fuel_l: float, codes: tuple[str, ...], autonomy_h: float
) -> None:
    result = judge(station("hp-0001", fuel_l=fuel_l, extra_power=extra))
    assert result.codes == codes
    assert result.autonomy_h == pytest.approx(autonomy_h)


def test_shared_tower_names_the_paths_and_the_risk() -> None:
    (shared,) = judge(station("hp-0001", paths=(FIBRE_ON_TOWER, MICROWAVE))).failed
    assert shared.labels == {"a": "fo-vnpt", "b": "mw-viettel", "srlg": "tower-b"}
    assert "dùng chung cột" in shared.text("vi")
    assert "share the same tower" in shared.text("en")


def test_silent_texts() -> None:
    (stale,) = judge(station("hp-0001", age_s=3600)).failed
    assert stale.text("vi") == "mất liên lạc: không có báo cáo trong 1 giờ (quá 3 phút)"
    assert stale.text("en") == "silent: no report for 1 h (over 3 min)"
    (offline,) = judge(station("hp-0001", online=False)).failed
    assert "MQTT Last Will" in offline.text("en")


def test_a_site_absent_from_the_inventory() -> None:
    snap = station("hp-0099", fuel_l=50.0)
    result = station_compliance(snap, None, POLICY, NOW)
    assert not result.in_inventory
    assert result.codes == ("not_in_inventory", "generator_autonomy_short")
    with pytest.raises(ValueError, match="give the snapshot"):
        station_compliance(None, None, POLICY, NOW)


def test_thresholds_come_from_the_policy() -> None:
    loose = CompliancePolicy(min_autonomy_h=12, require_fibre=False, required_independent_paths=1)
    snap = station("hp-0001", fuel_l=50.0, paths=(MICROWAVE,))
    result = station_compliance(snap, item("hp-0001"), POLICY, NOW, compliance=loose)
    assert result.status == "compliant"
    # the hardened target is the default autonomy: changing one changes the other
    targets = POLICY.backup_power.targets.model_copy(
        update={
            "hardened": POLICY.backup_power.targets.hardened.model_copy(update={"warn_below_h": 10})
        }
    )
    relaxed = POLICY.model_copy(
        update={"backup_power": POLICY.backup_power.model_copy(update={"targets": targets})}
    )
    assert settings_of(relaxed).min_autonomy_h == 10
    assert settings_of(POLICY).min_autonomy_h == 72


def test_policy_section_hooks_into_policy() -> None:
    """What rules/policy.py gains with ``compliance: CompliancePolicy = CompliancePolicy()``."""

    class Merged(Policy):
        compliance: CompliancePolicy = CompliancePolicy()

    import yaml

    merged = Merged.model_validate(yaml.safe_load(POLICY_SECTION))
    assert merged.compliance == CompliancePolicy()  # the shipped section is the code default
    custom = Merged.model_validate(
        {"compliance": {"required_per_area": 2, "area_level": "province"}}
    )
    settings = settings_of(custom)
    assert (settings.required_per_area, settings.area_level) == (2, "province")
    with pytest.raises(ValidationError, match="extra"):
        Merged.model_validate({"compliance": {"required_per_district": 3}})


POLICY_SECTION = """
# Hardened-station compliance (kienco compliance): what the ministry checks.
compliance:
  area_level: area           # proposal: the inventory's area slug (district before the 2025 reform, commune after); "province" counts per province
  required_per_area: 3       # post-Yagi directive: three hardened stations per district (DOMAIN multi-path)
  min_autonomy_h: null       # null = backup_power.targets.hardened.warn_below_h (72 h of battery + generator fuel: CPUC D.20-07-011)
  require_fibre: true        # ARCHITECTURE hardened-station compliance: a fibre path...
  required_independent_paths: 2  # ...and a second independent (SRLG-disjoint, RFC 4202) path
  required_carriers: 3       # post-Yagi: every locality has >= 3 carriers (DOMAIN multi-path), seen up now on its sites' paths; part of the area's verdict (0: left out)
  kinds: [station]           # proposal: the directive is about telecom stations
"""  # noqa: E501


# --- texts


COMPLIANCE_CODES = [
    "generator_autonomy_short",
    "generator_not_started",
    "generator_not_started_no_battery",
    "generator_not_started_no_fuel",
    "generator_not_started_no_battery_no_fuel",
    "no_generator",
    "no_fibre_path",
    "no_second_independent_path",
    "no_second_independent_path_shared",
    "silent",
    "silent_offline",
    "never_reported",
    "not_declared_hardened",
    "not_in_inventory",
]


@pytest.mark.parametrize("code", COMPLIANCE_CODES)
def test_every_text_has_both_languages_and_fills(code: str) -> None:
    text = CATALOGUE[code]
    assert text.vi != text.en and any(ord(c) > 127 for c in text.vi)
    fields = [
        {f for _, f, _, _ in string.Formatter().parse(text.template(lang)) if f} for lang in LANGS
    ]
    assert fields[0] == fields[1]
    values = {name: "tower-b" if name == "srlg" else 3.0 for name in fields[0]}
    numbers = {k: v for k, v in values.items() if isinstance(v, float)}
    labels = {k: v for k, v in values.items() if isinstance(v, str)}
    for lang in LANGS:
        out = render(code, lang, numbers, labels)
        assert "{" not in out and "?" not in out


# --- a province


# up as an agent measures it: probes sent, one or more came back
PROBED: dict[str, Any] = {"up": True, "probes_sent": 5, "loss_pct": 0.0}
FIBRE_UP = LinkReading(path="fo-vnpt", media="fibre", provider="vnpt", srlg=("duct-ql5",), **PROBED)
MW_UP = LinkReading(
    path="mw-viettel", media="microwave", provider="viettel", srlg=("tower-b",), **PROBED
)
CELL_UP = LinkReading(path="cell-mobifone", media="cellular", provider="mobifone", **PROBED)


def _fleet() -> tuple[Inventory, dict[str, SiteSnapshot]]:
    inventory = Inventory(
        [
            # An Dương: two compliant, one with 10 h of fuel, one ordinary station
            item("hp-0001", operator="vnpt"),
            item("hp-0002", operator="viettel"),
            item("hp-0003", operator="mobifone"),
            item("hp-0004", operator="viettel", hardened=False),
            # Đồ Sơn: three compliant and a fourth: more than required
            *(item(f"hp-010{i}", "do-son", operator="viettel") for i in range(4)),
            # Cát Hải: one never reported, one silent, one on a shared tower
            item("hp-0201", "cat-hai", operator="viettel"),
            item("hp-0202", "cat-hai", operator="vnpt"),
            item("hp-0203", "cat-hai", operator="vnpt"),
            # another province: not in this report
            item("qn-0001", "ha-long", province="qn"),
        ]
    )
    snapshots = {
        s.site: s
        for s in (
            # An Dương's sites see VNPT's fibre up, Viettel's microwave down now
            station("hp-0001", links=(FIBRE_UP, MW_UP.model_copy(update={"up": False}))),
            station("hp-0002", links=(LinkReading(path="mw", media="microwave", **PROBED),)),
            station("hp-0003", fuel_l=50.0),
            station("hp-0004", hardened=False, generator=False),
            # Đồ Sơn's stations are all Viettel's, their paths VNPT's, Viettel's, MobiFone's
            station("hp-0100", area="do-son", links=(FIBRE_UP, MW_UP)),
            station("hp-0101", area="do-son", links=(CELL_UP,)),
            *(station(f"hp-010{i}", area="do-son") for i in range(2, 4)),
            # a silent station's last paths are no carrier seen now
            station("hp-0202", age_s=7200, links=(MW_UP,)),
            station("hp-0203", paths=(FIBRE_ON_TOWER, MICROWAVE), links=(FIBRE_UP,)),
            station("qn-0001", province="qn"),
            station("hp-0999", fuel_l=50.0),  # reports, yet no one registered it
            station("qn-0999", province="qn"),  # absent too, but not Hải Phòng's
        )
    }
    return inventory, snapshots


def report(**kwargs: Any) -> ComplianceReport:
    inventory, snapshots = _fleet()
    return build_report(snapshots, inventory, POLICY, NOW, province=PROVINCE, **kwargs)


def _row(area: Any) -> tuple[object, ...]:
    return (
        area.area,
        area.declared,
        area.compliant,
        area.non_compliant,
        area.never_reported,
        area.missing,
        area.meets,
        area.carriers,
        area.carriers_live,
        area.carriers_up,
    )


def test_build_report_per_area() -> None:
    got = report()
    assert [_row(a) for a in got.areas] == [
        (
            "an-duong",
            3,
            2,
            1,
            0,
            1,
            False,
            ("mobifone", "viettel", "vnpt"),
            ("mobifone", "viettel", "vnpt"),
            ("vnpt",),
        ),
        ("cat-hai", 3, 0, 2, 1, 3, False, ("viettel", "vnpt"), ("vnpt",), ("vnpt",)),
        (
            "do-son",
            4,
            4,
            0,
            0,
            0,
            True,
            ("viettel",),
            ("viettel",),
            ("mobifone", "viettel", "vnpt"),
        ),
    ]
    an_duong = got.areas[0]
    assert an_duong.area_name == "Huyện An Dương"
    assert [s.site for s in an_duong.stations] == ["hp-0001", "hp-0002", "hp-0003"]
    # the carriers are those seen up now on the area's paths, not the inventory's operators
    assert not an_duong.carriers_ok and got.areas[2].carriers_ok
    assert an_duong.carriers_inventory_only == ("mobifone", "viettel")
    assert got.areas[2].carriers_inventory_only == ()
    # hp-0002's path up names no provider: not counted, and said
    assert [a.paths_up_unnamed for a in got.areas] == [1, 0, 0]
    cat_hai = {s.site: s.codes for s in got.areas[1].stations}
    assert cat_hai == {
        "hp-0201": ("never_reported",),
        "hp-0202": ("silent",),
        "hp-0203": ("no_second_independent_path",),
    }
    assert [(s.site, s.codes) for s in got.unlisted] == [
        ("hp-0999", ("not_in_inventory", "generator_autonomy_short"))
    ]


@pytest.mark.parametrize(
    ("link", "seen_up"),
    [
        (FIBRE_UP, ("vnpt",)),
        # said up with no probe sent: nothing measured it (rules/paths.py), no carrier
        (FIBRE_UP.model_copy(update={"probes_sent": 0}), ()),
        # up, losing 90 % of its probes: counted down as a path, so no carrier either
        (FIBRE_UP.model_copy(update={"loss_pct": 90.0}), ()),
    ],
)
def test_a_carrier_is_seen_up_as_the_verdict_counts_a_path_up(
    link: LinkReading, seen_up: tuple[str, ...]
) -> None:
    inventory = Inventory([item("hp-0001", operator="vnpt")])
    snapshots = {"hp-0001": station("hp-0001", links=(link,))}
    (area,) = build_report(snapshots, inventory, POLICY, NOW, province=PROVINCE).areas
    assert area.carriers_up == seen_up


def test_report_totals() -> None:
    got = report()
    assert (got.province, got.province_name, got.generated_at) == (PROVINCE, "Hải Phòng", NOW)
    totals = {k: got.total(k) for k in ("declared", "compliant", "non_compliant", "missing")}
    assert totals == {"declared": 10, "compliant": 6, "non_compliant": 3, "missing": 4}
    assert (got.never_reported, got.silent, got.areas_meeting) == (1, 1, 1)
    assert got.carriers == ("mobifone", "viettel", "vnpt")
    assert got.carriers_up == ("mobifone", "viettel", "vnpt")


def test_area_level_and_required_count_come_from_the_policy() -> None:
    (province,) = report(area_level="province").areas
    assert (province.area, province.area_name, province.declared, province.compliant) == (
        "hp",
        "Hải Phòng",
        10,
        6,
    )
    assert province.meets and province.missing == 0
    two = report(compliance=CompliancePolicy(required_per_area=2))
    # An Dương has its 2 compliant stations, yet one carrier seen up of the 3 required:
    # it read MEETS under a rule list that says "at least 3 carriers per area"
    assert [a.stations_meet for a in two.areas] == [True, False, True]
    assert [a.meets for a in two.areas] == [False, False, True]
    assert [a.meets for a in report(compliance=CompliancePolicy(required_per_area=2,
        required_carriers=1)).areas] == [True, False, True]  # fmt: skip
    assert two.settings.required_per_area == 2


def test_expected_areas_with_no_station_are_all_missing() -> None:
    got = report(expected_areas={"bach-long-vi": "Huyện Bạch Long Vĩ"})
    empty = next(a for a in got.areas if a.area == "bach-long-vi")
    assert (empty.area_name, empty.declared, empty.missing, empty.meets) == (
        "Huyện Bạch Long Vĩ",
        0,
        3,
        False,
    )


def test_naive_now_is_refused() -> None:
    inventory, snapshots = _fleet()
    with pytest.raises(ValueError, match="timezone"):
        build_report(snapshots, inventory, POLICY, NOW.replace(tzinfo=None), province="hp")


def test_report_travels_as_json() -> None:
    """The collector builds the report (it holds the snapshots); the CLI renders it."""
    got = report()
    adapter = TypeAdapter(ComplianceReport)
    back = adapter.validate_json(adapter.dump_json(got))
    assert back == got
    assert back.unlisted[0].failed[1].text("vi") == got.unlisted[0].failed[1].text("vi")


def test_a_station_whose_agent_s_clock_is_proven_behind_is_judged_as_if_it_were_right() -> None:
    right = station("hp-0001")
    judged = judge(clock_behind(right, 2 * 3600))
    assert (judged.status, judged.codes) == ("compliant", ())
    assert judged.last_report_at == judge(right).last_report_at == right.last_report_at
    # Not vouched for: silent, as a station whose reports may sit in a queue.
    assert "silent" in judge(clock_behind(right, 2 * 3600, vouched=False)).codes


def _reported_earlier(snapshot: SiteSnapshot, age_s: float, *links: LinkReading) -> SiteSnapshot:
    """``snapshot`` with an earlier report of ``links``, ``age_s`` old, folded in late (a
    replay): the collector keeps every path a site ever reported, across restarts."""
    taken = NOW - timedelta(seconds=age_s)
    earlier = Report(
        site=snapshot.site, province=snapshot.province, seq=0, taken_at=taken, interval_s=60,
        links=links,
    )  # fmt: skip
    return snapshot.with_report(earlier, received_at=None)


OLD_MW = LinkReading(path="mw-old", media="microwave", srlg=("tower-c",), up=True)


@pytest.mark.parametrize(
    ("snapshot", "status", "codes"),
    [
        # the microwave was taken down (its tower fell) and left the site's config a
        # month ago: its last reading is no capability of the station now
        pytest.param(
            _reported_earlier(station("hp-0001", paths=(FIBRE,)), 30 * 86_400, OLD_MW),
            "non_compliant",
            ("no_second_independent_path",),
            id="path-gone-a-month-ago",
        ),
        pytest.param(
            _reported_earlier(station("hp-0001", paths=(FIBRE,)), 10 * 60, OLD_MW),
            "non_compliant",
            ("no_second_independent_path",),
            id="path-gone-10-min-ago",
        ),
        # in the newest reports' window it is still what the site reports
        pytest.param(
            _reported_earlier(station("hp-0001", paths=(FIBRE,)), 120, OLD_MW),
            "compliant",
            (),
            id="path-reported-2-min-ago",
        ),
        # still declared: its probe may be broken, the path is built
        pytest.param(
            _reported_earlier(station("hp-0001"), 30 * 86_400, OLD_MW),
            "compliant",
            (),
            id="declared-paths-whatever-was-reported",
        ),
        pytest.param(
            _reported_earlier(
                station("hp-0001", paths=(FIBRE, MICROWAVE)),
                30 * 86_400,
                LinkReading(path="mw-viettel", media="microwave", srlg=("tower-b",), up=False),
            ),
            "compliant",
            (),
            id="declared-path-silent-for-a-month",
        ),
    ],
)
def test_a_path_the_station_stopped_reporting_is_no_capability(
    snapshot: SiteSnapshot, status: str, codes: tuple[str]
) -> None:
    result = judge(snapshot)
    assert (result.status, result.codes) == (status, codes)
