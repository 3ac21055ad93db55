"""Station state in the FCC DIRS vocabulary, from power and links; stale is unknown."""

from __future__ import annotations

import typing

import pytest

from contract.wire import LinkReading, PowerReading, StationState
from rules import SiteSnapshot
from tests.test_rules_support import (
    ago,
    codes,
    genset,
    judge,
    link,
    on_battery,
    snap,
    two_paths,
    ups,
)

DOWN = (link("fo1", "fibre", "duct-a", up=False), link("mw1", "microwave", "tower-b", up=False))


def site(
    power: tuple[PowerReading, ...], links: tuple[LinkReading, ...] = two_paths(), **kw: object
) -> SiteSnapshot:
    return snap(power=power, links=links, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snapshot", "state", "only"),
    [
        pytest.param(site((ups(),)), "up_commercial", None, id="mains"),
        pytest.param(
            site((PowerReading(device="ups1", on_battery=False, battery_runtime_s=9 * 3600),)),
            "up_commercial",
            None,
            id="ups-on-line-without-mains-flag",
        ),
        pytest.param(
            site((ups(), genset(generator_running=True, on_generator=True, mains_present=False))),
            "up_generator",
            None,
            id="on-generator",
        ),
        pytest.param(
            site((genset(generator_running=True, mains_present=False),)),
            "up_generator",
            None,
            id="generator-running-mains-absent",
        ),
        pytest.param(
            site((ups(), genset(generator_running=True, mains_present=True))),
            "up_commercial",
            None,
            id="generator-test-run-on-mains",
        ),
        # The UPS sees voltage at its input (mains_present: input_v > 100 V, ups-mib), but
        # that input is fed by the ATS, from the generator: the genset controller, whose
        # mains sensor sits on the grid side, says the grid is gone and its engine runs.
        # It was judged up_commercial: on mains, no time to dark, the NOC not told the site
        # burns its fuel.
        pytest.param(
            site((ups(), genset(generator_running=True, mains_present=False))),
            "up_generator",
            None,
            id="ups-input-fed-by-the-running-generator",
        ),
        pytest.param(
            site((ups(), genset(generator_running=False, mains_present=False))),
            "up_commercial",  # the UPS's input is live and the set is stopped: not it
            None,
            id="genset-mains-sensor-says-absent-set-stopped-ups-on-line",
        ),
        pytest.param(site((on_battery(),)), "up_battery", None, id="on-battery"),
        pytest.param(
            site((on_battery(runtime_s=0),)), "down_power", "power_down", id="runtime-0-on-battery"
        ),
        pytest.param(
            site((on_battery(runtime_s=None, battery_status="depleted"),)),
            "down_power",
            "power_down",
            id="battery-depleted",
        ),
        pytest.param(
            site((on_battery(runtime_s=0), genset()), DOWN),
            "down_power",
            "power_down",
            id="power-down-and-links-down-is-one-power-finding",
        ),
        pytest.param(
            site((on_battery("ups2", runtime_s=0), ups("ups1"))),
            "down_power",
            "power_down_input_failed",
            id="one-ups-flat-another-on-mains-its-input-failed",
        ),
        pytest.param(
            site((on_battery(runtime_s=0), PowerReading(device="ats1", mains_present=True))),
            "down_power",
            "power_down_input_failed",
            id="ups-flat-the-ats-sees-mains",
        ),
        pytest.param(
            site((on_battery(runtime_s=0), genset(mains_present=False))),
            "down_power",
            "power_down",
            id="ups-flat-mains-gone-everywhere",
        ),
        # A UPS whose output is off: what it feeds is dark, whatever its input says.
        pytest.param(
            site((ups(output_off=True),)),
            "down_power",
            "power_output_off",
            id="output-off-mains-present",
        ),
        pytest.param(
            site((ups(output_off=True, mains_present=False, on_battery=False),)),
            "down_power",
            "power_output_off",
            id="output-off-mains-gone-not-on-battery",
        ),
        pytest.param(
            site((ups("ups1"), ups("ups2", output_off=True), genset())),
            "down_power",
            "power_output_off",
            id="one-of-two-ups-off",
        ),
        pytest.param(
            site((ups(output_off=True), genset(generator_running=True, on_generator=True))),
            "down_power",
            "power_output_off",
            id="output-off-on-generator",
        ),
        pytest.param(
            site((ups(output_off=False, on_bypass=True),)),
            "up_commercial",
            None,
            id="bypass-is-up-on-mains",
        ),
        pytest.param(site((ups(output_off=False),)), "up_commercial", None, id="output-on"),
        pytest.param(site((ups(),), DOWN), "down_transport", "path_all_down", id="links-down"),
        pytest.param(
            site((on_battery(),), DOWN), "down_transport", None, id="on-battery-links-down"
        ),
        pytest.param(site(()), "unknown", None, id="no-power-data"),
        pytest.param(
            site((PowerReading(device="ups1", mains_present=False),)),
            "unknown",
            None,
            id="mains-absent-nothing-else-known",
        ),
        pytest.param(site((on_battery(),), at=ago(600)), "unknown", None, id="stale"),
        pytest.param(site((ups(),), online=False), "unknown", None, id="will-fired"),
    ],
)
def test_station_state(snapshot: SiteSnapshot, state: str, only: str | None) -> None:
    e = judge(snapshot)
    assert e.station_state == state
    if only is not None:
        assert codes(e) == [only]


def test_vocabulary_is_fcc_dirs() -> None:
    assert set(typing.get_args(StationState)) == {
        "up_commercial",
        "up_generator",
        "up_battery",
        "down_power",
        "down_transport",
        "down_damage",  # kept; no reading reports damage yet
        "unknown",
    }


def test_power_down_text() -> None:
    finding = judge(site((on_battery(runtime_s=0),))).findings[0]
    assert (finding.text_vi, finding.text_en) == (
        "mất điện: ắc quy đã cạn, trạm ngừng hoạt động",
        "power down: battery depleted, the site is dark",
    )
    assert finding.severity == "critical"


def test_a_ups_with_its_output_off_says_so() -> None:
    e = judge(site((ups("ups1"), ups("ups2", output_off=True))))
    (finding,) = e.findings
    assert finding.text_en == (
        "ups2 says its output is off: what it feeds is dark, whatever the mains and its "
        "battery say — switch it back on, or find why it shut down (overload, a fault, a "
        "command, the battery exhausted)"
    )
    assert finding.text_vi.startswith("ups2 báo đầu ra đã tắt")
    assert (finding.severity, e.verdict, e.dark_in_s) == ("critical", "not_ready", 0.0)


def test_a_flat_ups_beside_mains_says_its_input_failed() -> None:
    finding = judge(site((on_battery("ups2", runtime_s=0), ups("ups1")))).findings[0]
    assert finding.text_en == (
        "ups2 is on battery and flat while ups1 still sees mains: not a mains failure but "
        "ups2's input (breaker, cable, rectifier) — what it feeds is dark; check ups2's input"
    )
    assert finding.text_vi.startswith("ups2 đang chạy ắc quy và ắc quy đã cạn, trong khi ups1")
    assert finding.severity == "critical"
