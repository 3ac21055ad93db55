"""Verdicts found lying by the verdict audit and not fixed yet: each test says what the
verdict should be, and fails today (strict xfail: it turns red once fixed, to be unmarked)."""

from __future__ import annotations

import pytest

from collector.state import SiteStates
from contract.wire import Event, PowerReading
from rules import evaluate
from tests.test_rules_support import (
    NOW,
    POLICY,
    PROVINCE,
    SITE,
    ago,
    codes,
    judge,
    meta,
    on_battery,
    report,
    snap,
    two_paths,
    ups,
)


@pytest.mark.xfail(
    strict=True,
    reason="collector/state.py apply_event keeps the poll's on-line runtime 0 (a vendor "
    "quirk rules/autonomy.py ignores on line) under the trap's on_battery: down_power",
)
def test_an_on_battery_trap_does_not_turn_an_on_line_zero_runtime_into_a_dark_site() -> None:
    # A UPS-MIB UPS polled on mains says 0 min remaining (NUT: "0 on line"); the rules
    # rightly ignore it. upsTrapOnBattery sets on_battery and mains_present only, so the
    # collector merges them over the poll: on battery, runtime 0 -> down_power, critical,
    # every other finding suppressed, flipped at once (SiteDark), with 100 % charge.
    states = SiteStates()
    states.apply_meta(meta())
    polled = ups(battery_runtime_s=0.0, battery_charge_pct=100.0, load_pct=30.0)
    states.apply_report(report(at=ago(60), power=[polled], links=two_paths()), received_at=ago(59))
    trap = PowerReading(device="ups1", on_battery=True, mains_present=False)
    event = Event(site=SITE, province=PROVINCE, seq=2, at=ago(5), event="on_battery", power=trap)
    assert states.apply_event(event)
    snapshot = states.get(SITE)
    assert snapshot is not None
    evaluation = evaluate(snapshot, POLICY, NOW)
    assert evaluation.station_state == "up_battery", codes(evaluation)


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
