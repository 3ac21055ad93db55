"""Verdicts found lying by the verdict audit and not fixed yet: each test says what the
verdict should be, and fails today (strict xfail: it turns red once fixed, to be unmarked)."""

from __future__ import annotations

import pytest

from tests.test_rules_support import (
    codes,
    judge,
    on_battery,
    snap,
    two_paths,
    ups,
)


@pytest.mark.xfail(
    strict=True,
    reason="rules/autonomy.py _mode: any on-battery device at 0 s makes the whole site "
    "down_power, though another device reports mains present",
)
def test_one_small_ups_run_flat_does_not_make_a_site_on_mains_dark() -> None:
    rectifier = ups("rect1", battery_runtime_s=10 * 3600.0)
    small = on_battery("ups-cam", runtime_s=0.0, battery_status="depleted")
    evaluation = judge(snap(power=[rectifier, small], links=two_paths()))
    assert evaluation.station_state != "down_power", codes(evaluation)
