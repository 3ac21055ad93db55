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
