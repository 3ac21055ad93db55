"""A site known only by its meta pages as silent, and a site's alert keeps its labels.

An agent that announced its meta (retained) and died before its first report is
``no_report_yet`` forever: the NOC must learn that a newly installed station went quiet
once it has been quiet ``offline_after_s`` since the collector first knew of it, and
since the collector started (a restart hands out every retained meta again: it must not
page every meta-only site before the window passes). The first-known time is
``SiteStates.heard_at``, saved across a restart by the state saver.

A meta arriving after a site's first report must not change the labels of an alert
firing: Alertmanager would see it resolve and another fire (two pages, a false
"resolved").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.alert_sender import AlertSender
from collector.config import AlertsConfig, Limits
from collector.inventory import Inventory, InventorySite, inventory_meta
from collector.meetings import MeetingStore
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_store import StateStore, refolder
from collector.supervision import Supervisor
from contract.wire import Meta, State
from tests.test_rules_support import NOW, POLICY, SITE, genset, meta, on_battery, snap, two_paths

OFFLINE_S = POLICY.freshness.offline_after_s  # 300 s


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    clock: Clock
    states: SiteStates
    verdicts: Verdicts
    sender: AlertSender


def make_world(tmp_path: Path, inventory: Inventory | None = None) -> World:
    """A collector's state, verdicts and alert sender, started at NOW."""
    registry = CollectorRegistry()
    clock = Clock()
    states = SiteStates(clock=clock)
    verdicts = Verdicts(states, POLICY)
    sender = AlertSender(
        AlertsConfig(alertmanagers=("http://127.0.0.1:9/",), external_url="http://kienco.test"),
        verdicts=verdicts,
        states=states,
        meetings=MeetingStore(tmp_path / "meetings.sqlite"),
        policy=POLICY,
        inventory=inventory or Inventory(()),
        risk_of=lambda province: 0,
        registry=registry,
        supervisor=Supervisor(registry, logger=logging.getLogger("test")),
        data_dir=tmp_path,
        clock=clock,
    )
    return World(clock, states, verdicts, sender)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = make_world(tmp_path)
    yield made
    made.sender.store.close()
    made.sender.meetings.close()


def its_meta(operator: str | None = "viettel") -> Meta:
    return meta().model_copy(update={"operator": operator, "at": NOW - timedelta(days=1)})


def alerts_at(world: World, at: datetime) -> list[tuple[str, str]]:
    world.clock.now = at
    _, new = world.sender._site_change(SITE, at)
    return [(a.name, a.cause) for a in new]


@pytest.mark.parametrize(
    ("case", "meta_after_start_s", "look_after_meta_s", "silent"),
    [
        # installed while the collector runs: its meta live, then nothing
        pytest.param("meta live", 3600, OFFLINE_S, True, id="meta-live-quiet-window"),
        pytest.param("meta live", 3600, OFFLINE_S - 60, False, id="meta-live-not-yet"),
        # a collector started without saved state: every retained meta arrives at start
        pytest.param("retained at start", 0, OFFLINE_S, True, id="retained-quiet-window"),
        pytest.param("retained at start", 0, OFFLINE_S - 60, False, id="retained-not-yet"),
    ],
)
def test_a_site_known_only_by_its_meta_pages_as_silent_once_quiet_offline_after_s(
    world: World, case: str, meta_after_start_s: float, look_after_meta_s: float, silent: bool
) -> None:
    arrived = NOW + timedelta(seconds=meta_after_start_s)
    world.clock.now = arrived
    assert world.states.apply_meta(its_meta())
    status, _, _ = world.verdicts.evaluate(SITE, arrived) or (None, None, None)
    assert status is not None and [r.code for r in status.reasons] == ["no_report_yet"]
    found = alerts_at(world, arrived + timedelta(seconds=look_after_meta_s))
    assert found == ([("SiteSilent", "silence")] if silent else [])
    if silent:
        [alert] = world.sender._site_change(SITE, world.clock.now)[1]
        assert (alert.labels["kind"], alert.labels["operator"]) == ("station", "viettel")
        assert alert.details_en == ("no report received yet: nothing to judge",)


def test_a_site_that_reports_after_its_meta_is_not_silent(world: World) -> None:
    world.states.apply_meta(its_meta())
    later = NOW + timedelta(seconds=OFFLINE_S + 60)
    world.states.restore([(snap(power=[on_battery(runtime_s=5 * 3600)], links=two_paths(),
                                at=later), later)])  # fmt: skip
    world.verdicts.evaluate(SITE, later)
    assert alerts_at(world, later) == [("SiteOnBattery", "power")]


@pytest.mark.parametrize(
    ("after_restart_s", "silent"),
    [
        # just restarted: its retained meta again, nothing yet of the sites that talk
        (0, False),
        (OFFLINE_S - 60, False),
        (OFFLINE_S, True),
    ],
)
def test_a_restart_keeps_when_the_meta_arrived_and_waits_its_window_before_paging(
    tmp_path: Path, after_restart_s: float, silent: bool
) -> None:
    """The state saver keeps a meta-only site and when it was first known (heard_at):
    after a restart it pages once the collector has been up offline_after_s, not at once
    (nor a window after its retained meta is handed out again, had that been the news)."""
    before = make_world(tmp_path / "before")
    path = tmp_path / "state.sqlite"
    saver = StateStore(path, before.states, before.verdicts, CollectorRegistry(), save_every_s=1)
    first_known = NOW - timedelta(hours=2)
    before.clock.now = first_known
    before.states.apply_meta(its_meta())
    before.verdicts.evaluate(SITE, first_known)
    saver.close()  # a clean stop: every snapshot written

    restarted = make_world(tmp_path / "after")  # started at NOW
    store = StateStore(
        path, restarted.states, restarted.verdicts, CollectorRegistry(), save_every_s=1
    )
    store.restore(
        NOW,
        listed_in=lambda _s: None,
        not_before=NOW,
        refold=refolder(restarted.states, Limits()),
    )
    assert restarted.states.heard_at(SITE) == first_known
    restarted.states.apply_meta(its_meta())  # the broker's retained copy, again
    assert restarted.states.heard_at(SITE) == first_known
    restarted.verdicts.evaluate(SITE, NOW)
    look = NOW + timedelta(seconds=after_restart_s)
    assert alerts_at(restarted, look) == ([("SiteSilent", "silence")] if silent else [])
    store.close()
    for w in (before, restarted):
        w.sender.store.close()
        w.sender.meetings.close()


def test_an_agent_that_republishes_its_meta_without_reporting_still_pages(world: World) -> None:
    """A crash-looping agent announces itself (a new meta) at each start and never
    reports: what it republishes is no report, and its window runs from when it was
    first known."""
    world.states.apply_meta(its_meta())
    again = NOW + timedelta(seconds=OFFLINE_S - 10)
    world.clock.now = again
    assert world.states.apply_meta(its_meta().model_copy(update={"at": NOW}))
    world.verdicts.evaluate(SITE, again)
    assert alerts_at(world, NOW + timedelta(seconds=OFFLINE_S)) == [("SiteSilent", "silence")]


@pytest.mark.parametrize(
    ("case", "look_after_s", "silent"),
    [
        # the register lists it, its agent never spoke: compliance's 'missing', no page
        ("register only", 7200 + OFFLINE_S, False),
        # its agent's meta two hours after the start (installed today): its own window
        ("its agent's meta", 7200 + OFFLINE_S - 60, False),
        ("its agent's meta", 7200 + OFFLINE_S, True),
        # its agent's birth (online), then nothing
        ("its agent's birth", 7200 + OFFLINE_S - 60, False),
        ("its agent's birth", 7200 + OFFLINE_S, True),
    ],
)
def test_a_listed_site_s_window_runs_from_its_agent_s_first_word_not_the_register_s(
    tmp_path: Path, case: str, look_after_s: float, silent: bool
) -> None:
    """The collector makes a meta of every listed site at start (collector/inventory.py):
    a listed station whose agent announces itself two hours later must not be paged the
    moment its meta arrives, before its first report had the time to follow."""
    listed = InventorySite(
        site=SITE, province=meta().province, kind="station", operator="viettel",
        area="do-son", hardened=False,
    )  # fmt: skip
    world = make_world(tmp_path, Inventory((listed,)))
    try:
        world.states.apply_meta(inventory_meta(listed, 60.0))  # as the collector at start
        installed = NOW + timedelta(seconds=7200)
        world.clock.now = installed
        if case == "its agent's meta":
            assert world.states.apply_meta(its_meta().model_copy(update={"at": installed}))
        elif case == "its agent's birth":
            birth = State(site=SITE, province=listed.province, state="online", at=installed)
            assert world.states.apply_state(birth)
        world.verdicts.evaluate(SITE, installed)
        look = NOW + timedelta(seconds=look_after_s)
        assert alerts_at(world, look) == ([("SiteSilent", "silence")] if silent else [])
        if silent:
            [alert] = world.sender._site_change(SITE, look)[1]
            assert alert.labels["operator"] == "viettel"  # the meta's, or the register's
    finally:
        world.sender.store.close()
        world.sender.meetings.close()


def test_the_sender_keeps_a_generator_site_s_time_to_dark_for_when_it_falls_silent(
    world: World,
) -> None:
    """Seen on generator with 4 h of fuel while it reported, then silent: the sender says
    it dark once that time has passed, from the figures it saw (the silent verdict has
    none)."""
    gen = genset(generator_running=True, fuel_l=40.0, fuel_burn_l_per_h=10.0)
    world.states.restore([(snap(power=[gen], links=two_paths()), NOW)])
    world.verdicts.evaluate(SITE, NOW)
    assert alerts_at(world, NOW) == []
    later = NOW + timedelta(hours=4, minutes=1)
    world.verdicts.evaluate(SITE, later)
    assert alerts_at(world, later) == [("SiteDark", "power")]
