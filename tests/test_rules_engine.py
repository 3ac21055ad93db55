"""The engine: verdicts from findings, suppression, the wire Status, the public API."""

from __future__ import annotations

from datetime import datetime

import pytest

import rules
from contract.wire import PowerReading, SiteKind, Status
from rules import Finding, evaluate, to_status
from rules.findings import Impact, verdict_of
from tests.test_rules_support import (
    NOW,
    POLICY,
    codes,
    genset,
    judge,
    link,
    on_battery,
    snap,
    two_paths,
    ups,
)


def _f(impact: Impact, rule: str = "multipath") -> Finding:
    return Finding(rule, "s", "warning", "link_quality_unknown", impact=impact)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("impacts", "verdict"),
    [
        pytest.param([], "ready", id="nothing"),
        pytest.param([_f("none")], "ready", id="info-only"),
        pytest.param([_f("spof")], "degraded", id="one-spof"),
        pytest.param([_f("degrades")], "degraded", id="one-degradation"),
        pytest.param(
            [_f("degrades", "link_quality"), _f("degrades", "link_quality")],
            "degraded",
            id="two-degradations-same-rule-one-weakness",
        ),
        pytest.param([_f("spof"), _f("spof")], "not_ready", id="two-spofs"),
        pytest.param(
            [_f("spof"), _f("degrades", "link_quality")], "not_ready", id="spof-and-degradation"
        ),
        pytest.param([_f("blocks")], "not_ready", id="blocks"),
        pytest.param([_f("unknown")], "unknown", id="unknown"),
        pytest.param([_f("spof"), _f("unknown")], "unknown", id="spof-and-unknown"),
        pytest.param([_f("blocks"), _f("unknown")], "not_ready", id="known-not-ready-wins"),
    ],
)
def test_verdict_of(impacts: list[Finding], verdict: str) -> None:
    assert verdict_of(impacts) == verdict


@pytest.mark.parametrize(
    ("kind", "power", "verdict"),
    [
        pytest.param("station", [ups()], "ready", id="station-ready"),
        pytest.param("station", [ups(battery_runtime_s=3 * 3600)], "not_ready", id="station-3h"),
        pytest.param("power_room", [ups(battery_runtime_s=7 * 3600)], "degraded", id="room-7h"),
        pytest.param("power_room", [ups()], "ready", id="room-ready"),
    ],
)
def test_stations_and_power_rooms_get_verdicts(
    kind: SiteKind, power: list[PowerReading], verdict: str
) -> None:
    assert judge(snap(kind, power=power, links=two_paths())).verdict == verdict


def test_no_meta_yet_is_unknown_but_state_is_known() -> None:
    e = judge(snap(power=[ups()], links=two_paths(), with_meta=False))
    assert e.verdict == "unknown"
    assert e.station_state == "up_commercial"
    assert codes(e) == ["meta_missing"]


def test_power_down_silences_the_cascade() -> None:
    s = snap(
        "meeting_point",
        power=[on_battery(runtime_s=0), genset()],
        links=[link("fo1", up=False), link("mw1", "microwave", up=False)],
    )
    e = judge(s)
    assert codes(e) == ["power_down"]
    assert (e.verdict, e.station_state, e.dark_in_s) == ("not_ready", "down_power", 0)


def test_to_status_is_a_valid_wire_status() -> None:
    s = snap(power=[on_battery(runtime_s=2310), genset()], links=two_paths())
    e = evaluate(s, POLICY, NOW, risk_level=4)
    status = to_status(e, s)
    assert isinstance(status, Status)
    again = Status.model_validate_json(status.model_dump_json())
    assert again == status
    assert (status.site, status.province, status.site_kind) == (s.site, s.province, "station")
    assert (status.verdict, status.station_state) == ("not_ready", "up_battery")
    assert status.risk_level == 4
    assert status.dark_in_s == pytest.approx(2280)
    assert status.independent_paths_up == 2
    assert status.last_report_at == s.last_report_at
    assert status.evaluated_at == NOW
    (reason,) = status.reasons
    assert reason.code == "on_battery_generator_stopped"
    # the verdict says the risk level it was judged under, where that raised the target
    assert reason.text_vi == (
        "mất điện lưới: máy phát không chạy, ắc quy còn 38 phút, "
        "trạm thường cần 72 giờ khi rủi ro thiên tai ở cấp độ 4"
    )
    assert reason.text_en == (
        "mains lost: generator not running, on battery with 38 min left, "
        "an ordinary station needs 72 h at risk level 4"
    )
    assert reason.numbers["dark_in_s"] == pytest.approx(2280)
    assert reason.numbers["tightened_at_level"] == 4


def test_to_status_of_a_site_never_seen() -> None:
    s = rules.SiteSnapshot(site="qn-7", province="quang-ninh")
    status = to_status(evaluate(s, POLICY, NOW), s)
    assert (status.verdict, status.station_state, status.site_kind) == ("unknown", "unknown", None)
    assert [r.code for r in status.reasons] == ["no_report_yet"]


@pytest.mark.parametrize(
    ("now", "risk_level", "match"),
    [
        pytest.param(NOW, 6, "risk_level", id="risk-above-5"),
        pytest.param(NOW, -1, "risk_level", id="risk-negative"),
        pytest.param(datetime(2024, 9, 7, 6, 0), 0, "timezone", id="naive-now"),
    ],
)
def test_bad_arguments(now: datetime, risk_level: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(snap(), POLICY, now, risk_level=risk_level)
    with pytest.raises(ValueError, match="meeting_duration_s"):
        evaluate(snap(), POLICY, NOW, meeting_duration_s=0)


def test_evaluate_is_pure() -> None:
    s = snap(power=[on_battery(runtime_s=2310), genset()], links=two_paths())
    first, second = judge(s), judge(s)
    assert first.verdict == second.verdict and codes(first) == codes(second)
    assert first.dark_in_s == second.dark_in_s


def test_public_api() -> None:
    assert set(rules.__all__) >= {
        "evaluate",
        "Evaluation",
        "SiteSnapshot",
        "Policy",
        "load_policy",
        "PolicyError",
        "Finding",
        "to_status",
    }
    for name in rules.__all__:
        assert hasattr(rules, name)
