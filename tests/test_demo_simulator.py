"""The demo's simulated fleet: the scenario loads strictly, the physics is plausible,
every message passes the wire contract, and the same seed gives the same reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.wire import Meta, PowerReading, Report
from kienco.demo.scenario import SCENARIO_FILE, Scenario, load_scenario
from kienco.demo.simulator import Fleet, SimulatedSite
from plumbing.config_errors import ConfigError, parse_yaml_model

NOW = datetime(2025, 1, 1, tzinfo=UTC)

# A small fleet with round numbers: 100 Ah at 20 A x 0.8 usable = 4 h of battery.
MINI = """
name: "Thử nghiệm"
start: "2024-09-07T06:00:00+07:00"
duration_min: 600
seed: 7
provinces:
  p1: {name: "Tỉnh Một"}
sites:
  - site: bts-plain
    province: p1
    kind: station
    name: "Trạm thường"
    devices:
      - {role: rectifier, device: rect1, capacity_ah: 100, load_a: 20}
    paths:
      - {path: fibre, media: fibre, srlg: [duct-x]}
      - {path: mw, media: microwave, srlg: [tower-a]}
  - site: bts-hard
    province: p1
    kind: station
    site_class: hardened
    hardened: true
    name: "Trạm kiên cố"
    devices:
      - {role: rectifier, device: rect1, capacity_ah: 100, load_a: 20}
      - {role: generator, device: gen1, tank_l: 500, fuel_l: 400, burn_l_per_h: 5,
         start_delay_min: 2}
    paths:
      - {path: fibre, media: fibre, srlg: [duct-y]}
      - {path: mw, media: microwave, srlg: [tower-b]}
  - site: bts-short
    province: p1
    kind: station
    site_class: hardened
    hardened: true
    name: "Trạm thiếu dầu"
    devices:
      - {role: rectifier, device: rect1, capacity_ah: 100, load_a: 20}
      - {role: generator, device: gen1, tank_l: 400, fuel_l: 10, burn_l_per_h: 5,
         start_delay_min: 2}
    paths:
      - {path: fibre, media: fibre, srlg: [duct-x, pole-z]}
  - site: mp
    province: p1
    kind: meeting_point
    name: "Điểm cầu xã"
    devices:
      - {role: ups, device: ups1, full_load_runtime_h: 3, load_pct: 50, runtime_cap_on_line: true}
    paths:
      - {path: fibre, media: fibre, srlg: [duct-x]}
      - {path: lte, media: cellular, via_site: bts-plain}
      - {path: vsat, media: vsat}
    room: {codec: "Codec"}
timeline:
  - {at_min: 60, action: mains_fail, target: p1}
  - {at_min: 70, action: codec_down, target: mp}
  - {at_min: 90, action: codec_up, target: mp}
  - {at_min: 120, action: cut_srlg, target: duct-x, note: "đứt cáp / fibre cut"}
  - {at_min: 400, action: generator_refuel, target: bts-short}
"""


def _mini(**fleet_args: Any) -> Fleet:
    return Fleet(parse_yaml_model(MINI, Scenario, source="mini.yaml"), **fleet_args)


def _power(site: SimulatedSite, device: str) -> PowerReading:
    return next(p for p in site.report(1, NOW, 1.0).power if p.device == device)


def _down(fleet: Fleet) -> set[str]:
    return {
        f"{s.site}/{link.path}"
        for s in fleet.sites
        for link in s.report(1, NOW, 1.0).links
        if link.up is False
    }


# --- the scenario file -------------------------------------------------------------


def test_shipped_scenario_loads() -> None:
    scenario = load_scenario()
    assert 12 <= len(scenario.sites) <= 18
    assert set(scenario.provinces) == {"hp", "qn", "hn"}
    assert {s.kind for s in scenario.sites} == {"station", "power_room", "meeting_point"}
    actions = {e.action for e in scenario.timeline}
    assert {"mains_fail", "mains_restore", "cut_srlg", "repair_srlg", "generator_fail"} <= actions
    assert {"generator_refuel", "codec_down", "codec_up", "site_damage", "clock_lost"} <= actions
    assert "clock_ahead" in actions
    assert load_scenario(SCENARIO_FILE) == scenario


def _shipped(mutate: Callable[[dict[str, Any]], None]) -> str:
    data = yaml.safe_load(SCENARIO_FILE.read_text(encoding="utf-8"))
    mutate(data)
    return yaml.safe_dump(data, allow_unicode=True)


def _site(data: dict[str, Any], site: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["sites"] if s["site"] == site)
    return found


def _event(**event: object) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["timeline"].append({"at_min": 2880, **event})


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (lambda d: d["sites"][0].update(hardend=True), ["sites.0.hardend", "remove it"]),
        (
            lambda d: d["sites"][0]["devices"][1].update(tank_litres=5),
            ["sites.0.devices.1.generator.tank_litres", "remove it"],
        ),
        (
            _event(action="mains_explode", target="hp"),
            ["timeline.", ".action", "'mains_explode'", "mains_fail"],
        ),
        (
            _event(action="cut_srlg", target="duct-ql99"),
            ["timeline.", ".target", "'duct-ql99' names no srlg"],
        ),
        (
            _event(action="generator_fail", target="hp-bts-kien-an"),
            ["'hp-bts-kien-an' names no generator site"],
        ),
        (_event(action="mains_fail", target="dn"), ["'dn' names no province or site"]),
        (_event(action="risk_level", target="hp"), ["level", "risk_level"]),
        (_event(action="clock_lost", target="hp-dc-tp"), ["behind_min", "clock_lost"]),
        (
            _event(action="mains_fail", target="hp", behind_min=5),
            ["behind_min", "only there"],
        ),
        (_event(action="clock_ahead", target="hp-dc-tp"), ["ahead_min", "clock_ahead"]),
        (
            _event(action="clock_lost", target="hp-dc-tp", behind_min=5, ahead_min=5),
            ["ahead_min", "only there"],
        ),
        (
            lambda d: d["timeline"].insert(5, {"at_min": 1, "action": "storm_end", "target": "hp"}),
            ["timeline.5.at_min", "time order"],
        ),
        (lambda d: _site(d, "hp-bts-do-son").update(province="dn"), ["province: 'dn'"]),
        (
            lambda d: _site(d, "hp-bts-do-son")["devices"][1].update(fuel_l=900),
            ["fuel_l 900", "tank_l"],
        ),
        (lambda d: _site(d, "hp-dc-tp").pop("room"), ["room:", "meeting_point"]),
        (
            lambda d: _site(d, "hp-bts-do-son")["paths"][0].update(media="laser"),
            ["paths.0.media", "'laser'", "fibre"],
        ),
    ],
    ids=[
        "typo-key",
        "typo-device-key",
        "unknown-action",
        "srlg-unknown",
        "no-generator-there",
        "province-unknown",
        "risk-without-level",
        "clock-lost-without-how-far",
        "how-far-without-clock-lost",
        "clock-ahead-without-how-far",
        "ahead-without-clock-ahead",
        "out-of-order",
        "site-province-unknown",
        "fuel-over-tank",
        "meeting-point-without-room",
        "unknown-media",
    ],
)
def test_bad_scenarios_name_the_key(
    mutate: Callable[[dict[str, Any]], None], says: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml_model(_shipped(mutate), Scenario, source="yagi.yaml")
    message = str(caught.value)
    assert message.startswith("yagi.yaml: invalid configuration")
    for part in says:
        assert part in message


def test_a_box_whose_clock_is_behind_stamps_its_reports_so_and_says_it_is_not_synced() -> None:
    lost = "  - {at_min: 500, action: clock_lost, target: bts-hard, behind_min: 180}\n"
    fleet = Fleet(parse_yaml_model(MINI + lost, Scenario, source="mini.yaml"))
    site = fleet.site("bts-hard")
    before = site.report(1, NOW, 1.0)
    assert before.taken_at == NOW and before.host is not None and before.host.clock_synced
    notes = fleet.advance_to_minute(501)
    assert any("bts-hard" in n and "no NTP in reach" in n for n in notes)
    after = site.report(2, NOW, 1.0)
    assert after.taken_at == NOW - timedelta(hours=3)
    assert after.host is not None and after.host.clock_synced is False
    assert after.host.clock_offset_ms is None and after.host.clock_max_error_ms is None


def test_a_box_whose_clock_is_set_ahead_stamps_its_reports_so() -> None:
    ahead = "  - {at_min: 500, action: clock_ahead, target: bts-hard, ahead_min: 420}\n"
    fleet = Fleet(parse_yaml_model(MINI + ahead, Scenario, source="mini.yaml"))
    site = fleet.site("bts-hard")
    notes = fleet.advance_to_minute(501)
    assert any("bts-hard" in n and "set by hand" in n for n in notes)
    after = site.report(2, NOW, 1.0)
    assert after.taken_at == NOW + timedelta(hours=7)
    assert after.host is not None and after.host.clock_synced is False


def test_load_scenario_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "storm.yaml"
    path.write_text("name: x\nstart: 2024-09-07T06:00:00+07:00\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value) and "sites: Field required" in str(caught.value)


# --- physics -------------------------------------------------------------------------


def test_battery_only_station_drains_then_goes_dark() -> None:
    fleet = _mini()
    site = fleet.site("bts-plain")
    fleet.advance_to_minute(60)
    charges = []
    for minute in (60, 120, 180, 240):
        fleet.advance_to_minute(minute)
        charges.append(_power(site, "rect1").battery_charge_pct)
        assert not site.is_dark
    # 4 h of battery: 25 % an hour
    assert charges == pytest.approx([100.0, 75.0, 50.0, 25.0], abs=0.1)
    rect = _power(site, "rect1")
    assert rect.on_battery is True and rect.mains_present is False and rect.input_v == 0.0
    assert rect.battery_runtime_s == pytest.approx(3600, abs=30)
    notes = fleet.advance_to_minute(301)
    assert site.is_dark and not site.is_reachable
    assert any("bts-plain" in n and "site dark" in n and " / " in n for n in notes)
    assert [s.site for s in fleet.sites if not s.is_dark] == ["bts-hard", "bts-short", "mp"]


def test_hardened_station_generator_starts_and_burns_at_its_rate() -> None:
    fleet = _mini()
    site = fleet.site("bts-hard")
    notes = fleet.advance_to_minute(61)
    assert not site.generator_running  # 2 min start delay
    notes += fleet.advance_to_minute(62)
    assert site.generator_running
    assert any("bts-hard" in n and "generator started" in n for n in notes)
    fleet.advance_to_minute(122)
    gen, rect = _power(site, "gen1"), _power(site, "rect1")
    assert gen.fuel_l == pytest.approx(395.0) and gen.fuel_burn_l_per_h == 5.0
    assert gen.on_generator is True and gen.generator_running is True and gen.fuel_pct == 79.0
    assert rect.on_battery is False and rect.battery_charge_pct == 100.0
    fleet.advance_to_minute(362)
    assert _power(site, "gen1").fuel_l == pytest.approx(375.0)


def test_generator_that_runs_dry_returns_the_site_to_battery() -> None:
    fleet = _mini()
    site = fleet.site("bts-short")
    fleet.advance_to_minute(181)
    assert site.generator_running  # 10 l at 5 l/h from minute 62: 2 h
    notes = fleet.advance_to_minute(183)
    assert not site.generator_running and site.on_battery
    assert any("bts-short" in n and "ran dry" in n for n in notes)
    gen = _power(site, "gen1")
    assert gen.fuel_l == 0.0 and gen.generator_running is False and gen.alarms_count == 1
    fleet.advance_to_minute(243)
    assert _power(site, "rect1").battery_charge_pct == pytest.approx(75.0, abs=1)
    fleet.advance_to_minute(403)  # refuelled at 400, 2 min start delay
    assert site.generator_running and not site.is_dark and site.fuel_l > 390


def test_cutting_an_srlg_downs_exactly_its_paths() -> None:
    fleet = _mini()
    fleet.advance_to_minute(119)
    before = _down(fleet)
    notes = fleet.advance_to_minute(120)
    assert _down(fleet) - before == {"bts-plain/fibre", "bts-short/fibre", "mp/fibre"}
    assert before <= _down(fleet) and fleet.cut_srlgs == {"duct-x"}
    assert any("duct-x" in n and "fibre cut" in n for n in notes)


def test_cutting_an_srlg_in_the_shipped_storm() -> None:
    fleet = Fleet(load_scenario())
    fleet.advance_to_minute(449)
    before = _down(fleet)
    fleet.advance_to_minute(451)
    carrying = {
        f"{s.site}/{p.path}" for s in fleet.sites for p in s.spec.paths if "duct-ql18" in p.srlg
    }
    assert _down(fleet) - before == carrying and len(carrying) == 4


def test_paths_follow_the_site_they_ride_on_and_the_codec_its_registration() -> None:
    fleet = _mini()
    mp = fleet.site("mp")
    fleet.advance_to_minute(75)
    assert mp.report(1, NOW, 1.0).room == mp.report(1, NOW, 1.0).room
    room = mp.report(1, NOW, 1.0).room
    assert room is not None and room.codec_registered is False and room.codec_reachable
    fleet.advance_to_minute(95)
    room = mp.report(1, NOW, 1.0).room
    assert room is not None and room.codec_registered is True
    fleet.advance_to_minute(305)  # bts-plain dark: the LTE through it goes too
    links = {link.path: link for link in mp.report(1, NOW, 1.0).links}
    assert links["lte"].up is False and links["vsat"].up is True
    assert links["vsat"].rtt_ms is not None and links["vsat"].rtt_ms > 500


def test_ups_runtime_cap_reads_65535_on_line_only() -> None:
    fleet = _mini()
    site = fleet.site("mp")
    assert _power(site, "ups1").battery_runtime_s == 65_535.0
    fleet.advance_to_minute(61)
    ups = _power(site, "ups1")
    # 3 h at full load is 6 h at 50 %, less the minute already spent
    assert ups.on_battery is True and ups.battery_runtime_s == pytest.approx(6 * 3600, rel=0.01)


def test_advance_to_maps_real_seconds_to_simulated_minutes() -> None:
    fleet = Fleet(load_scenario())
    assert fleet.advance_to(0)[0].startswith("07/09 06:00 Quảng Ninh")
    assert dict(fleet.risk_levels) == {"hp": 4, "qn": 4, "hn": 3}
    fleet.advance_to(7.0)
    assert fleet.minute == 420 and fleet.sim_time.hour == 13
    assert fleet.site("hp-bts-do-son").grid is False and fleet.site("hn-bts-cau-giay").grid
    fleet.advance_to(5.0)  # time does not run backwards
    assert fleet.minute == 420
    fleet.advance_to(48)
    assert fleet.finished and dict(fleet.risk_levels) == {"hp": 0, "qn": 0, "hn": 0}
    with pytest.raises(ValueError, match="minutes_per_second"):
        Fleet(load_scenario(), minutes_per_second=0)


# --- the wire contract and determinism --------------------------------------------------


def _run(fleet: Fleet, step_s: float = 0.25, until_s: float = 50) -> list[str]:
    out: list[str] = []
    seq = 0
    for i in range(int(until_s / step_s) + 1):
        fleet.advance_to(i * step_s)
        for site in fleet.sites:
            seq += 1
            out.append(site.report(seq, NOW, 1.0).model_dump_json())
    return out


def test_every_report_and_meta_passes_the_wire_contract() -> None:
    fleet = Fleet(load_scenario())
    for raw in _run(fleet, step_s=0.5):
        assert Report.model_validate_json(raw).model_dump_json() == raw
    for site in fleet.sites:
        meta = site.meta(NOW, 30.0)
        assert Meta.model_validate_json(meta.model_dump_json()) == meta
        assert {p.path for p in meta.paths} == {p.path for p in site.spec.paths}


def test_same_seed_same_reports() -> None:
    first = _run(Fleet(load_scenario()), until_s=20)
    assert _run(Fleet(load_scenario()), until_s=20) == first
    assert _run(Fleet(load_scenario(), seed=1), until_s=20) != first
