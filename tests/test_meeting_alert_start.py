"""MeetingAtRisk judges a point for the meeting as planned: its start, not now.

The meeting page (``collector.meetings.meeting_status``) judges each point for the
meeting's start and duration; the alert sender must judge it the same way, or it pages
nobody for a point on battery that will go dark before a meeting 1 h 30 away ends, and
pages the province about a point's power late in a meeting it will see through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.alert_sender import AlertSender
from collector.config import AlertsConfig
from collector.inventory import Inventory
from collector.meetings import MeetingRequest, MeetingStore, meeting_status
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.supervision import Supervisor
from contract.wire import PowerReading
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

H = 3600.0


@pytest.fixture
def sender(tmp_path: Path) -> Iterator[AlertSender]:
    registry = CollectorRegistry()
    states = SiteStates(clock=lambda: NOW)
    alerts = AlertSender(
        AlertsConfig(alertmanagers=("http://127.0.0.1:9/",), external_url="http://kienco.test"),
        verdicts=Verdicts(states, POLICY),
        states=states,
        meetings=MeetingStore(tmp_path / "meetings.sqlite"),
        policy=POLICY,
        inventory=Inventory(()),
        risk_of=lambda province: 0,
        registry=registry,
        supervisor=Supervisor(registry, logger=logging.getLogger("test")),
        data_dir=tmp_path,
        clock=lambda: NOW,
    )
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
