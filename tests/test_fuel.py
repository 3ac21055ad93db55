"""What the site knows of its generator fills the reading: burn rate at the current load, litres."""

from __future__ import annotations

import pytest

from agent.config import DeviceConfig
from agent.cycle import _with_site_knowledge
from agent.fuel import burn_at_load
from contract.wire import PowerReading


@pytest.mark.parametrize(
    ("load_pct", "share"),
    [(100, 1.0), (75, 0.78), (50, 0.55), (25, 0.35), (0, 0.18), (37.5, 0.45), (150, 1.12)],
    ids=["full", "3/4", "half", "1/4", "idle", "between", "overload-capped"],
)
def test_part_load_curve(load_pct: float, share: float) -> None:
    assert burn_at_load(20.0, load_pct) == pytest.approx(20.0 * share)


def genset(**config: object) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "device": "gen1",
            "role": "generator",
            "protocol": "modbus",
            "profile": "dse-gencomm",
            "host": "127.0.0.1",
            **config,
        }
    )


def test_full_load_rate_scaled_to_the_load_and_litres_from_the_tank() -> None:
    reading = PowerReading(device="gen1", generator_running=True, load_pct=50.0, fuel_pct=62.0)
    filled = _with_site_knowledge(reading, genset(fuel_burn_full_load_l_per_h=20.0, tank_l=500.0))
    assert isinstance(filled, PowerReading)
    assert filled.fuel_burn_l_per_h == pytest.approx(11.0)
    assert filled.fuel_l == pytest.approx(310.0)


def test_what_the_controller_says_wins_and_errors_stay_errors() -> None:
    said = PowerReading(device="gen1", load_pct=50.0, fuel_burn_l_per_h=9.0, fuel_l=100.0)
    kept = _with_site_knowledge(said, genset(fuel_burn_full_load_l_per_h=20.0, tank_l=500.0))
    assert kept == said
    failed = PowerReading(device="gen1", error="timeout")
    assert _with_site_knowledge(failed, genset(fuel_burn_l_per_h=5.0)) == failed


def test_a_fixed_rate_when_the_load_is_unknown() -> None:
    reading = PowerReading(device="gen1", generator_running=False)
    filled = _with_site_knowledge(reading, genset(fuel_burn_l_per_h=5.0))
    assert isinstance(filled, PowerReading) and filled.fuel_burn_l_per_h == 5.0


@pytest.mark.parametrize(
    ("polled", "config", "burn"),
    [
        pytest.param(
            {"generator_running": True, "load_pct": 50.0}, {"full": 20.0}, 11.0, id="running-half"
        ),
        pytest.param(
            {"generator_running": False, "load_pct": 0.0}, {"full": 20.0}, 20.0, id="stopped-0%"
        ),
        pytest.param(
            {"generator_running": None, "load_pct": 0.0}, {"full": 20.0}, 20.0, id="state-unknown"
        ),
        pytest.param(
            {"generator_running": None, "load_pct": 50.0},
            {"full": 20.0},
            11.0,
            id="state-unknown-a-load-carried",
        ),
        pytest.param(
            {"generator_running": False, "load_pct": 50.0},
            {"full": 20.0},
            20.0,
            id="said-stopped-a-stale-load",
        ),
        pytest.param(
            {"generator_running": True, "load_pct": 0.0}, {"full": 20.0}, 20.0, id="warming-up-0%"
        ),
        pytest.param(
            {"generator_running": False, "load_pct": 0.0},
            {"full": 20.0, "fixed": 9.0},
            9.0,
            id="stopped-site-rate",
        ),
        pytest.param(
            {"generator_running": False, "load_pct": None}, {"full": 20.0}, None, id="no-load-read"
        ),
    ],
)
def test_the_load_scales_the_rate_only_while_the_genset_carries_it(
    polled: dict[str, object], config: dict[str, float], burn: float | None
) -> None:
    # A stopped genset reads 0 % load: its idle rate (18 % of full load) would give the
    # hours "if mains failed now" five times what it has once it carries the site.
    reading = PowerReading(device="gen1", **polled)  # type: ignore[arg-type]
    device = genset(
        fuel_burn_full_load_l_per_h=config.get("full"), fuel_burn_l_per_h=config.get("fixed")
    )
    filled = _with_site_knowledge(reading, device)
    assert isinstance(filled, PowerReading)
    if burn is None:
        assert filled.fuel_burn_l_per_h is None
    else:
        assert filled.fuel_burn_l_per_h == pytest.approx(burn)


def test_an_idle_genset_does_not_make_a_hardened_station_ready() -> None:
    """On the grid, the DSE's engine stopped at 0 % load, 300 L in the tank, 20 L/h at full
    load: 15 h of fuel at full load (19 h with the UPS), 43 h even at a quarter load, never
    the 72 h a hardened station needs; the idle rate said 83 h, and ``ready``."""
    from tests.test_rules_support import judge, snap, two_paths, ups

    polled = PowerReading(
        device="gen1", generator_running=False, mains_present=True, load_pct=0.0, fuel_pct=30.0
    )
    filled = _with_site_knowledge(polled, genset(fuel_burn_full_load_l_per_h=20.0, tank_l=1000.0))
    assert isinstance(filled, PowerReading)
    site = snap(
        power=[ups(battery_runtime_s=4 * 3600.0), filled],
        links=two_paths(),
        hardened=True,
        generator_declared=True,
    )
    evaluation = judge(site)
    assert evaluation.verdict != "ready"
    assert evaluation.backup_hours == pytest.approx(300 / 20 + 4)
    assert [f.code for f in evaluation.findings] == ["backup_hours_short"]
