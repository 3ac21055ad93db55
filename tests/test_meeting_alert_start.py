"""MeetingAtRisk judges a point for the meeting as planned: its start, not now.

The meeting page (``collector.meetings.meeting_status``) judges each point for the
meeting's start and duration; the alert sender must judge it the same way, or it pages
nobody for a point on battery that will go dark before a meeting 1 h 30 away ends, and
pages the province about a point's power late in a meeting it will see through.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from collector.alert_sender import AlertSender
from collector.inventory import Inventory
from collector.meetings import MeetingRequest, meeting_status
from contract.wire import PowerReading
from rules import SiteSnapshot
from rules.rehearsal import Rehearsal
from tests.test_rules_support import (
    NOW,
    POLICY,
    SITE,
    ago,
    genset,
    on_battery,
    room,
    snap,
    two_paths,
    ups,
)
from tests.test_site_alert_start import make_world

H = 3600.0


@pytest.fixture
def sender(tmp_path: Path) -> Iterator[AlertSender]:
    alerts = make_world(tmp_path).sender
    yield alerts
    alerts.store.close()
    alerts.meetings.close()


@pytest.mark.parametrize(
    ("power", "starts_in_h", "duration_h", "page", "at_risk"),
    [
        # on battery, 3 h left, no generator; a 2 h meeting in 1 h 30: 3 h 30 x 1.2 needed
        pytest.param(
            [on_battery(runtime_s=3 * H)], 1.5, 2, "not_ready", True, id="dark-before-end"
        ),
        # the same point for a 2 h meeting starting now: 2 h 24 needed, 3 h held
        pytest.param([on_battery(runtime_s=3 * H)], 0, 2, "degraded", False, id="holds-from-now"),
        # on mains, UPS 1 h + 1 h 30 of fuel; a 4 h meeting begun 3 h 30 ago: 30 min left
        pytest.param(
            [ups(battery_runtime_s=H), genset(fuel_l=7.5, fuel_burn_l_per_h=5)],
            -3.5,
            4,
            "ready",
            False,
            id="late-in-the-meeting",
        ),
        # ...and at its start: 4 h 48 needed, 2 h 30 held
        pytest.param(
            [ups(battery_runtime_s=H), genset(fuel_l=7.5, fuel_burn_l_per_h=5)],
            0,
            4,
            "not_ready",
            True,
            id="short-at-the-start",
        ),
    ],
)
def test_meeting_at_risk_as_the_meeting_page_judges_it(
    sender: AlertSender,
    power: Sequence[PowerReading],
    starts_in_h: float,
    duration_h: float,
    page: str,
    at_risk: bool,
) -> None:
    point = snap("meeting_point", power=power, links=two_paths(), room_reading=room())
    sender.states.restore([(point, ago(30))])
    request = MeetingRequest(
        title="Họp khẩn ứng phó bão số 3",
        starts_at=NOW + timedelta(hours=starts_in_h),
        duration_s=duration_h * H,
        points=(SITE,),
    )
    meeting = sender.meetings.create(request, (SITE,), ago(86_400))
    sender.meetings.record(meeting.id, Rehearsal(SITE, ago(600), True))

    shown = meeting_status(
        meeting, sender.states, sender.meetings, POLICY, NOW, risk_level=lambda p: 0
    )
    assert [p.verdict for p in shown.points] == [page]
    _, new = sender._meeting_change(NOW)
    assert [(a.name, a.site, a.meeting) for a in new] == (
        [("MeetingAtRisk", SITE, meeting.id)] if at_risk else []
    )


@pytest.mark.parametrize(
    ("case", "known", "after_start_s", "at_risk"),
    [
        # its box not installed, or forgotten: the meeting page says "no report received yet"
        pytest.param("never heard of", False, 301, True, id="never-heard"),
        pytest.param("its meta only", True, 301, True, id="meta-only"),
        # just started: the collector has not had the time to hear every point yet
        pytest.param("never heard of", False, 0, False, id="never-heard-at-start"),
        pytest.param("its meta only", True, 0, False, id="meta-only-at-start"),
    ],
)
def test_a_point_never_heard_from_is_a_meeting_at_risk_once_the_collector_has_settled(
    sender: AlertSender, case: str, known: bool, after_start_s: float, at_risk: bool
) -> None:
    """The meeting page shows the point unknown (no report received yet); the province
    must be paged for it as for a silent point, not told nothing."""
    ghost = "hai-phong-dc-ghost"
    if known:
        sender.states.restore([(SiteSnapshot(site=ghost, province="hai-phong"), ago(60))])
    request = MeetingRequest(
        title="Họp khẩn ứng phó bão số 3",
        starts_at=NOW + timedelta(hours=1),
        duration_s=2 * H,
        province="hai-phong",
        points=(ghost,),
    )
    meeting = sender.meetings.create(request, (ghost,), ago(86_400))
    now = NOW + timedelta(seconds=after_start_s)
    shown = meeting_status(
        meeting, sender.states, sender.meetings, POLICY, now, risk_level=lambda p: 0
    )
    assert [(p.verdict, [r.code for r in p.reasons]) for p in shown.points] == [
        ("unknown", ["no_report_yet"])
    ]
    _, new = sender._meeting_change(now)
    if not at_risk:
        assert new == []
        return
    [alert] = new
    assert (alert.name, alert.site, alert.meeting, alert.cause) == (
        "MeetingAtRisk",
        ghost,
        meeting.id,
        "silence",
    )
    # routed as its province's meeting point: to the province's IT (alertmanager.yml)
    assert (alert.labels["province"], alert.labels["kind"]) == ("hai-phong", "meeting_point")
    assert alert.details_en == ("no report received yet: nothing to judge",)
    assert "no report received yet" in alert.annotations("u")["summary_en"]


def test_a_point_never_heard_of_in_a_meeting_naming_no_province_is_paged_to_its_own(
    tmp_path: Path,
) -> None:
    """A meeting planned by its points names no province; one point's box never spoke.
    The register lists it in hai-phong: its MeetingAtRisk must carry that province (the
    province IT's route), not 'unknown', which only the national NOC receives."""
    from collector.inventory import InventorySite

    ghost = "hai-phong-dc-ghost"
    listed = InventorySite(
        site=ghost, province="hai-phong", kind="meeting_point", area="le-chan", hardened=False
    )
    sender = make_world(tmp_path, Inventory((listed,))).sender
    try:
        request = MeetingRequest(
            title="Họp khẩn",
            starts_at=NOW + timedelta(hours=1),
            duration_s=2 * H,
            points=(ghost,),
        )
        meeting = sender.meetings.create(request, (ghost,), ago(86_400))
        _, new = sender._meeting_change(NOW + timedelta(seconds=301))
        [alert] = new
        assert (alert.labels["province"], alert.labels["kind"]) == ("hai-phong", "meeting_point")
        assert alert.meeting == meeting.id
    finally:
        sender.store.close()
        sender.meetings.close()
