"""No flapping: a verdict flips only after its condition held for ``hold_s`` (injected clock);
losing the last path or power, and freshness, flip at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rules import evaluate
from rules.engine import Evaluation
from rules.findings import RuleName
from rules.hysteresis import Held, debounce
from tests.test_rules_support import NOW, POLICY, link, on_battery, snap, two_paths, ups

HOLD: dict[RuleName, float] = {
    "freshness": 0.0,
    "backup_power": 60.0,
    "multipath": 60.0,
    "link_quality": 60.0,
    "meeting": 60.0,
    "station_state": 0.0,
}


def at(seconds: float, **snapshot: Any) -> Evaluation:
    """An evaluation ``seconds`` after NOW of a station reported just before."""
    when = NOW + timedelta(seconds=seconds)
    return evaluate(snap(at=when - timedelta(seconds=5), **snapshot), POLICY, when)


GOOD: dict[str, Any] = {"power": [ups()], "links": two_paths()}
ONE_PATH: dict[str, Any] = {
    "power": [ups()],
    "links": (link("fo1", "fibre", "duct-a"), link("mw1", up=False)),
}
NO_PATH: dict[str, Any] = {
    "power": [ups()],
    "links": (link("fo1", up=False), link("mw1", up=False)),
}


def run(steps: list[tuple[float, dict[str, Any]]]) -> list[tuple[str, Any]]:
    """Feed evaluations in time order; return (shown verdict, seconds until due) after each."""
    held: Held | None = None
    out: list[tuple[str, Any]] = []
    for seconds, snapshot in steps:
        held, due = debounce(held, at(seconds, **snapshot), HOLD, NOW + timedelta(seconds=seconds))
        out.append((held.shown.verdict, due))
    return out


def test_a_change_shows_only_after_it_held() -> None:
    shown = run([(0, GOOD), (10, ONE_PATH), (40, ONE_PATH), (71, ONE_PATH)])
    assert shown[0] == ("ready", None)
    assert shown[1] == ("ready", pytest.approx(60))
    assert shown[2] == ("ready", pytest.approx(30))
    assert shown[3] == ("degraded", None)


def test_a_flapping_condition_never_flips_the_verdict() -> None:
    steps: list[tuple[float, dict[str, Any]]] = [(0, GOOD)]
    steps += [(t, ONE_PATH if (t // 20) % 2 else GOOD) for t in range(20, 300, 20)]
    assert {verdict for verdict, _ in run(steps)} == {"ready"}


def test_losing_the_last_path_flips_at_once_and_recovery_is_held() -> None:
    shown = run([(0, GOOD), (5, NO_PATH), (10, GOOD), (71, GOOD)])
    assert shown[1][0] == "not_ready"
    assert shown[2] == ("not_ready", pytest.approx(60))
    assert shown[3] == ("ready", None)


def test_losing_the_last_power_source_flips_at_once() -> None:
    dark = {
        "power": [on_battery(runtime_s=0, battery_charge_pct=0.0, battery_status="depleted")],
        "links": two_paths(),
    }
    shown = run([(0, GOOD), (5, dark)])
    assert shown[1][0] == "not_ready"


def test_a_silent_site_turns_unknown_at_once() -> None:
    held, _ = debounce(None, at(0, **GOOD), HOLD, NOW)
    silent = evaluate(
        snap(at=NOW - timedelta(seconds=30), **GOOD),
        POLICY,
        NOW + timedelta(seconds=600),
    )
    held, due = debounce(held, silent, HOLD, NOW + timedelta(seconds=600))
    assert held.shown.verdict == "unknown" and due is None


def test_no_hold_configured_flips_at_once() -> None:
    held, _ = debounce(None, at(0, **GOOD), {}, NOW)
    held, due = debounce(held, at(10, **ONE_PATH), {}, NOW + timedelta(seconds=10))
    assert held.shown.verdict == "degraded" and due is None


def test_losing_mains_shows_at_once_and_its_return_is_held() -> None:
    battery = {"power": [on_battery(runtime_s=4 * 3600.0)], "links": two_paths()}
    shown = run([(0, GOOD), (5, battery), (10, GOOD), (71, GOOD)])
    assert shown[1][0] != "ready"  # on battery: the station state changed at once
    assert shown[2][1] == pytest.approx(60)  # mains back: held against flapping
    assert shown[3] == ("ready", None)


# A microwave hop in heavy rain: one report it is down (every probe lost), the next it is up
# losing 90 % (path_lossy); the site has one usable path all along. Different reasons, the
# same verdict: the change has held once it has differed from what is shown for hold_s,
# whichever way it is worded at each report.
_HOP_DOWN: dict[str, Any] = {
    "power": [ups()],
    "links": (link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "t", up=False)),
}
_HOP_LOSSY: dict[str, Any] = {
    "power": [ups()],
    "links": (link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "t", loss_pct=90.0)),
}


@pytest.mark.parametrize(
    ("name", "first", "second", "expected"),
    [
        ("hop down, then lossy, again and again", _HOP_DOWN, _HOP_LOSSY, "degraded"),
        ("hop lossy, then down, again and again", _HOP_LOSSY, _HOP_DOWN, "degraded"),
    ],
)
def test_a_condition_that_changes_its_words_but_never_clears_is_shown_after_the_hold(
    name: str, first: dict[str, Any], second: dict[str, Any], expected: str
) -> None:
    assert at(0, **first).verdict == at(0, **second).verdict == expected
    steps: list[tuple[float, dict[str, Any]]] = [(0, GOOD)]
    steps += [(t, first if (t // 20) % 2 else second) for t in range(20, 200, 20)]
    shown = run(steps)
    assert shown[3][0] == "ready"  # 40 s into it: still held
    assert {verdict for verdict, _ in shown[4:]} == {expected}  # 80 s: past the 60 s hold
