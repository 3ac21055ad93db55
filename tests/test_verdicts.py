"""The collector's verdict cache: holds against flapping, and looks again when a hold ends."""

from __future__ import annotations

from datetime import timedelta

from collector.readiness import Verdicts
from collector.state import SiteStates
from contract.wire import Report
from tests.test_rules_support import NOW, POLICY, PROVINCE, SITE, link, meta, two_paths, ups


def report(seconds: float, links: tuple[object, ...]) -> Report:
    return Report(
        site=SITE,
        province=PROVINCE,
        seq=int(seconds),
        taken_at=NOW + timedelta(seconds=seconds),
        interval_s=30.0,
        power=(ups(),),
        links=links,  # type: ignore[arg-type]
    )


def test_a_held_change_is_due_when_its_hold_ends_and_then_shown() -> None:
    states = SiteStates()
    verdicts = Verdicts(states, POLICY)
    states.apply_meta(meta("station", "ordinary", interval_s=30.0))
    states.apply_report(report(0, two_paths()))
    first = verdicts.evaluate(SITE, NOW)
    assert first is not None and first[0].verdict == "ready" and first[1]
    one_path = (link("fo1", "fibre", "duct-a"), link("mw1", up=False))
    states.apply_report(report(10, one_path))
    held = verdicts.evaluate(SITE, NOW + timedelta(seconds=10))
    assert held is not None and held[0].verdict == "ready" and not held[1]
    assert held[2][0].fields["pending_verdict"] == "degraded"
    assert verdicts.due(NOW + timedelta(seconds=60)) == []
    assert verdicts.due(NOW + timedelta(seconds=71)) == [SITE]
    shown = verdicts.evaluate(SITE, NOW + timedelta(seconds=71))
    assert shown is not None and shown[0].verdict == "degraded" and shown[1]
