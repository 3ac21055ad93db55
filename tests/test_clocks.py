"""Which boxes do not keep time (collector/clocks.py): the box's own word while it is heard,
or the rules' clock findings; counted in the ``fleet`` summary and listed each minute as
``clock_wrong`` points. Tables of cases, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.clocks import CLOCK_COUNTS, clock_points, clock_wrong
from collector.history import FLEET_FIELDS, fleet_points
from contract.wire import HostReading, Meta, Reason, Report, Status
from kienco.dashboards.retention import continuous_queries
from rules import SiteSnapshot, load_policy

POLICY = load_policy()
NOW = datetime(2026, 9, 8, 6, 0, 17, tzinfo=UTC)  # the morning after Yagi
STAMP = NOW.replace(second=0)


def meta(site: str, province: str = "hp") -> Meta:
    return Meta.model_validate(
        {
            "site": site,
            "province": province,
            "site_kind": "station",
            "name": f"Trạm {site}",
            "operator": "vnpt",
            "interval_s": 60,
            "agent_version": "t",
            "at": NOW - timedelta(hours=3),
        }
    )


def site(
    name: str,
    synced: bool | None,
    *,
    taken_ago_s: float = 20,
    heard_ago_s: float | None = None,
    province: str = "hp",
) -> SiteSnapshot:
    """A site whose newest report, taken ``taken_ago_s`` before NOW by its own clock, says
    ``clock_synced`` = ``synced``; heard live ``heard_ago_s`` before NOW (None: not live)."""
    report = Report(
        site=name,
        province=province,
        seq=1,
        taken_at=NOW - timedelta(seconds=taken_ago_s),
        interval_s=60,
        host=HostReading(cpu_pct=5.0, clock_synced=synced),
    )
    heard = None if heard_ago_s is None else NOW - timedelta(seconds=heard_ago_s)
    return (
        SiteSnapshot(site=name, province=province)
        .with_meta(meta(name, province))
        .with_report(report, received_at=heard)
    )


def reason(code: str, **numbers: float) -> Reason:
    said: dict[str, float | None] = dict(numbers)
    return Reason(
        rule="freshness", code=code, severity="info", text_vi=code, text_en=code, numbers=said
    )


def status(name: str, *reasons: Reason, verdict: str = "ready", province: str = "hp") -> Status:
    values: dict[str, Any] = {
        "site": name,
        "province": province,
        "site_kind": "station",
        "name": f"Trạm {name}",
        "verdict": verdict,
        "station_state": "up_commercial",
        "evaluated_at": NOW,
        "reasons": reasons,
    }
    return Status.model_validate(values)


# (case, snapshot, status's reasons) → (listed, unsynced, the rules' finding, off_s)
CASES: list[tuple[str, SiteSnapshot, tuple[Reason, ...], tuple[bool, bool, str | None, float]]] = [
    ("keeps time", site("a", True), (), (False, False, None, 0.0)),
    ("an older agent, says nothing", site("b", None), (), (False, False, None, 0.0)),
    (
        "no host reading at all",
        SiteSnapshot(site="c", province="hp"),
        (),
        (False, False, None, 0.0),
    ),
    ("says not synchronised", site("d", False), (), (True, True, None, 0.0)),
    # silent for two hours: nothing about it is current (it counts as unknown)
    ("not synchronised, silent", site("e", False, taken_ago_s=7200), (), (False, False, None, 0.0)),
    (
        "not synchronised, its Will fired since",
        replace(site("e2", False, heard_ago_s=20), online=False),
        (),
        (False, False, None, 0.0),
    ),
    # its reports look 3 h old, each heard just now: a clock behind, heard
    (
        "not synchronised, reports old but heard now",
        site("f", False, taken_ago_s=3 * 3600, heard_ago_s=5),
        (),
        (True, True, None, 0.0),
    ),
    (
        "the rules: ahead, the box says synchronised",
        site("g", True),
        (reason("clock_ahead", ahead_s=600.0, future_tolerance_s=60.0),),
        (True, False, "clock_ahead", 600.0),
    ),
    (
        "the rules: proven behind, an older agent",
        site("h", None),
        (reason("clock_corrected", behind_s=10_800.0, age_s=20.0),),
        (True, False, "clock_corrected", 10_800.0),
    ),
    (
        "the rules: so far ahead its reports are refused (7 h: Vietnam's time as UTC)",
        site("j", None, taken_ago_s=7200),
        (reason("clock_ahead_refused", ahead_s=25_200.0, future_tolerance_s=300.0),),
        (True, False, "clock_ahead_refused", 25_200.0),
    ),
    (
        "the rules: behind, the box says not synchronised",
        site("i", False, taken_ago_s=3 * 3600, heard_ago_s=5),
        (reason("clock_behind", behind_s=10_790.0),),
        (True, True, "clock_behind", 10_790.0),
    ),
]


@pytest.mark.parametrize(
    ("snapshot", "reasons", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_box_does_not_keep_time_by_its_own_word_while_heard_or_by_the_rules(
    snapshot: SiteSnapshot,
    reasons: tuple[Reason, ...],
    expected: tuple[bool, bool, str | None, float],
) -> None:
    wrong = clock_wrong(snapshot, status(snapshot.site, *reasons), POLICY, NOW)
    listed, unsynced, finding, off_s = expected
    assert (wrong is not None) == listed
    if wrong is not None:
        assert (wrong.unsynced, wrong.reason, wrong.off_s) == (unsynced, finding, off_s)


def _judged() -> list[tuple[SiteSnapshot, Status]]:
    return [(snapshot, status(snapshot.site, *reasons)) for _, snapshot, reasons, _ in CASES] + [
        (site("qn-1", True, province="qn"), status("qn-1", province="qn")),
        (site("qn-2", None, province="qn"), status("qn-2", province="qn")),
    ]


def test_the_fleet_counts_boxes_not_keeping_time_per_province_zeros_included() -> None:
    # summed per province as the panel sums them (site "c" has no meta: a group of its own)
    summed: dict[str, dict[str, int]] = {}
    for point in fleet_points(_judged(), POLICY, NOW):
        counts = summed.setdefault(dict(point.tags)["province"], {})
        for name in (*CLOCK_COUNTS, "sites"):
            counts[name] = counts.get(name, 0) + int(point.fields[name] or 0)
    hp, qn = summed["hp"], summed["qn"]
    # d, f, g, h, i, j not kept; d, f, i say so; one of each of the rules' findings
    assert {name: hp[name] for name in CLOCK_COUNTS} == {
        "clock_wrong": 6,
        "clock_unsynced": 3,
        "clock_behind": 1,
        "clock_corrected": 1,
        "clock_ahead": 1,
        "clock_ahead_refused": 1,
    }
    assert hp["sites"] == len(CASES)
    # a province keeping time has every count, at zero: a panel's columns never come and go
    assert {name: qn[name] for name in CLOCK_COUNTS} == dict.fromkeys(CLOCK_COUNTS, 0)
    assert set(CLOCK_COUNTS) <= set(FLEET_FIELDS)


def test_the_5_minute_trend_keeps_the_clock_counts() -> None:
    fleet = continuous_queries("kienco")["trend_fleet"]
    for name in CLOCK_COUNTS:
        assert f'sum("{name}") AS "{name}"' in fleet


def test_a_clock_wrong_point_per_box_not_keeping_time_with_what_a_technician_needs() -> None:
    points = clock_points(_judged(), POLICY, NOW, STAMP)
    by_site = {dict(p.tags)["site"]: p for p in points}
    assert sorted(by_site) == ["d", "f", "g", "h", "i", "j"]
    assert {p.measurement for p in points} == {"clock_wrong"}
    assert {p.time_ns for p in points} == {int(STAMP.timestamp()) * 1_000_000_000}
    assert dict(by_site["d"].tags) == {
        "site": "d",
        "province": "hp",
        "kind": "station",
        "operator": "vnpt",
    }
    d, h, g = (dict(by_site[s].fields) for s in "dhg")
    assert (d["synced"], d.get("reason"), d["off_s"], d["name"]) == (False, None, 0.0, "Trạm d")
    assert (h.get("synced"), h["reason"], h["behind_s"], h["off_s"]) == (
        None,
        "clock_corrected",
        10_800.0,
        10_800.0,
    )
    assert (g["synced"], g["reason"], g["ahead_s"], g["off_s"]) == (
        True,
        "clock_ahead",
        600.0,
        600.0,
    )
