"""The state saver's two tiers (collector/state_store.py): verdicts and last-heard every
pass, a site's whole snapshot only every ``snapshot_every_s``, and between two the
messages folded into it logged as they came. A crash between snapshots loses nothing a
pass saved: the restored state is the live one of the last pass, site for site, folded
again from the log through the same code; a site forgotten stays forgotten; the log
keeps only what no snapshot covers; a file of the release before the log restores.

All on real SQLite files; the saver's clock is the test's."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.config import Limits, StateConfig
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_codec import held_json, site_json
from collector.state_store import StateStore, refolder
from contract.wire import Event, HostReading, Meta, Report, State, WireModel
from rules import load_policy
from tests.test_rules_support import genset, on_battery, two_paths, ups

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
P = "rs"


class Tick:
    """The saver's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Live:
    """A collector's state, verdicts and saver, fed as the collector feeds them: each
    message decoded and folded (``refolder``: the collector's own decode and fold), then
    logged for the saver, then its site judged."""

    def __init__(self, path: Path, tick: Tick, snapshot_every_s: float) -> None:
        self.states = SiteStates(clock=lambda: self.now)
        self.verdicts = Verdicts(self.states, load_policy())
        self.store = StateStore(
            path,
            self.states,
            self.verdicts,
            CollectorRegistry(),
            save_every_s=1.0,
            snapshot_every_s=snapshot_every_s,
            clock=tick,
        )
        self.fold = refolder(self.states, Limits())
        self.now = T0
        self.messages = 0

    def send(
        self, message: WireModel, at: datetime, *, heard: bool = True, vouched: bool = False
    ) -> None:
        site, kind = message.site, message.kind  # type: ignore[attr-defined]
        topic = f"kienco/v1/{P}/{site}/{kind}"
        payload = message.model_dump_json().encode()
        self.now = at
        assert self.fold(topic, payload, at, heard, vouched)
        self.store.folded((site, topic, payload, at, heard, vouched))
        self.verdicts.evaluate(site, at)
        self.messages += 1


def report(site: str, at: datetime, n: int, *, battery: bool) -> Report:
    power = (
        on_battery(runtime_s=7200.0 - 30 * n, battery_charge_pct=max(1.0, 95.0 - n))
        if battery
        else ups(load_pct=20.0 + n % 7),
        genset(),
    )
    return Report(
        site=site,
        province=P,
        seq=n,
        taken_at=at,
        interval_s=30,
        power=power,
        links=two_paths(),
    )


def restore(path: Path, tick: Tick) -> tuple[SiteStates, Verdicts, StateStore]:
    states = SiteStates()
    verdicts = Verdicts(states, load_policy())
    store = StateStore(
        path,
        states,
        verdicts,
        CollectorRegistry(),
        save_every_s=1.0,
        snapshot_every_s=120.0,
        clock=tick,
    )
    now = T0 + timedelta(hours=1)
    store.restore(now, listed_in=lambda _s: None, not_before=now, refold=refolder(states, Limits()))
    return states, verdicts, store


def logged(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT COUNT(*) FROM folded").fetchone()[0]
    return count


SITES = [f"rs-{n}" for n in range(8)]


def run(live: Live, tick: Tick, rounds: int, seed: int) -> None:
    """Sites report every 30 s (their clock; a pass of the saver each), in shuffled
    order, with the other kinds of message between: a meta, a trap while on battery, an
    agent's Will, a report replayed late from an outbox, a dead letter replayed; one
    site's clock is behind, its arrivals vouched for."""
    rng = random.Random(seed)
    for site in SITES:
        meta = Meta(
            site=site,
            province=P,
            site_kind="station",
            name=f'Trạm "{site}"\n<b>',
            interval_s=30,
            agent_version="t",
            at=T0,
        )
        live.send(meta, T0)
    for n in range(1, rounds + 1):
        at = T0 + timedelta(seconds=30 * n)
        for site in rng.sample(SITES, len(SITES)):
            late = n > 3 and site == "rs-3" and n % 4 == 0
            behind = site == "rs-2"  # its clock 10 min behind, no queue: judged in it
            taken = at - timedelta(seconds=75 if late else 600 if behind else 0)
            heard = not (site == "rs-4" and n % 5 == 0)
            sent = report(site, taken, n, battery=site < "rs-4")
            if behind:  # its kernel says its clock is not synchronised
                sent = sent.model_copy(update={"host": HostReading(clock_synced=False)})
            live.send(sent, at, heard=heard, vouched=behind)
        if n % 3 == 0:
            trap = Event(
                site="rs-1",
                province=P,
                seq=n,
                at=at + timedelta(seconds=1),
                event="on_battery",
                device="ups1",
                power=on_battery(runtime_s=1800.0 - n),
            )
            live.send(trap, at + timedelta(seconds=1))
        if n == rounds - 2:
            will = State(site="rs-6", province=P, state="offline", at=at)
            live.send(will, at + timedelta(seconds=2))
        tick.now = 30.0 * n
        live.store.save_changed()


@pytest.mark.parametrize("snapshot_every_s", [1.0, 120.0, 3600.0])
def test_a_crash_between_snapshots_restores_the_state_of_the_last_save(
    tmp_path: Path, snapshot_every_s: float
) -> None:
    tick = Tick()
    live = Live(tmp_path / "state.sqlite", tick, snapshot_every_s)
    run(live, tick, rounds=38, seed=int(snapshot_every_s))
    snapshots = live.store.saved.labels("snapshot")._value.get()
    reports = 38 * len(SITES)
    if snapshot_every_s >= 120:
        # each site written once, then every 4 passes, or once in the hour
        assert snapshots <= len(SITES) * (38 // 4 + 2)
        assert logged(tmp_path / "state.sqlite") > 0
    else:
        assert snapshots >= reports  # the old behaviour: a snapshot at every change
    # A crash: the last pass's transaction is all there is; the store is not closed.
    live.store._db.close()

    states, verdicts, store = restore(tmp_path / "state.sqlite", Tick())
    store.close()
    assert sorted(s.site for s in states.all()) == SITES
    for site in SITES:
        before, after = live.states.get(site), states.get(site)
        assert before is not None and after == before, site
        assert site_json(after) == site_json(before)  # the battery history too
        assert states.heard_at(site) == live.states.heard_at(site)
        assert verdicts.json_of(site) == live.verdicts.json_of(site)
        saved_before, saved_after = live.verdicts.saved_of(site), verdicts.saved_of(site)
        assert saved_before is not None and saved_after is not None
        assert held_json(saved_after[0]) == held_json(saved_before[0])
    refolded = store.refolded.labels("folded")._value.get()
    assert store.refolded.labels("refused")._value.get() == 0
    assert (refolded > 0) == (snapshot_every_s >= 120)
    corrected = verdicts.get("rs-2")  # its arrivals' vouching restored with them
    assert corrected is not None and corrected.reasons[0].code == "clock_corrected"


def test_messages_after_the_last_pass_are_what_a_crash_loses(tmp_path: Path) -> None:
    tick = Tick()
    live = Live(tmp_path / "state.sqlite", tick, 300.0)
    run(live, tick, rounds=6, seed=1)
    saved = {site: live.states.get(site) for site in SITES}
    later = T0 + timedelta(seconds=30 * 7)
    live.send(report("rs-0", later, 7, battery=True), later)  # folded, never saved
    live.store._db.close()
    states, _verdicts, store = restore(tmp_path / "state.sqlite", Tick())
    store.close()
    assert states.get("rs-0") == saved["rs-0"]
    assert live.states.get("rs-0") != saved["rs-0"]


def test_the_log_keeps_only_what_no_snapshot_covers(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 120.0)
    run(live, tick, rounds=3, seed=2)  # each site's first snapshot, then 2 passes logged
    assert logged(path) == 2 * len(SITES) + 1  # 2 rounds of reports and the trap
    run_more = T0 + timedelta(seconds=30 * 4)
    for site in SITES:
        live.send(report(site, run_more, 4, battery=False), run_more)
    tick.now = 150.0  # 120 s after their first: every snapshot due, the log emptied
    live.store.save_changed()
    assert logged(path) == 0
    live.store.close()


def test_a_clean_stop_writes_every_snapshot_and_leaves_no_log(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 3600.0)
    run(live, tick, rounds=5, seed=3)
    assert logged(path) > 0
    live.store.close()
    assert logged(path) == 0
    states, _v, store = restore(path, Tick())
    store.close()
    assert store.refolded.labels("folded")._value.get() == 0
    for site in SITES:
        assert states.get(site) == live.states.get(site)


def test_a_forgotten_site_is_not_brought_back_by_its_logged_messages(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 3600.0)
    run(live, tick, rounds=4, seed=4)
    gone = live.states.expire(
        T0 + timedelta(days=1), silent_for_s=60, keep=lambda site: site != "rs-5"
    )
    assert [s.site for s in gone] == ["rs-5"]
    live.verdicts.forget("rs-5")
    tick.now = 200.0
    live.store.save_changed()
    live.store._db.close()  # its messages may still be logged: a crash now
    states, _v, store = restore(path, Tick())
    store.close()
    assert states.get("rs-5") is None
    assert sorted(s.site for s in states.all()) == [s for s in SITES if s != "rs-5"]


def test_a_failed_save_loses_no_logged_message(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 3600.0)
    run(live, tick, rounds=2, seed=5)
    at = T0 + timedelta(seconds=90)
    live.send(report("rs-2", at, 3, battery=True), at)
    real = live.store._db
    live.store._db = sqlite3.connect(":memory:", isolation_level=None)  # no tables: fails
    with pytest.raises(sqlite3.OperationalError):
        live.store.save_changed()
    live.store._db.close()
    live.store._db = real
    live.store.save_changed()  # the retry: the message and the verdict with it
    real.close()
    states, verdicts, store = restore(path, Tick())
    store.close()
    assert states.get("rs-2") == live.states.get("rs-2")
    assert verdicts.json_of("rs-2") == live.verdicts.json_of("rs-2")


def test_a_file_of_the_release_before_the_log_restores(tmp_path: Path) -> None:
    """No ``folded`` or ``verdict`` table, no ``folded_upto`` column: its snapshots cover
    everything, its verdicts are in the site rows."""
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 1.0)
    run(live, tick, rounds=3, seed=6)
    live.store.close()
    with sqlite3.connect(path) as db:  # the earlier schema, the same rows
        db.execute("DROP TABLE folded")
        db.execute(
            "CREATE TABLE old AS SELECT s.site, s.province, s.format, v.heard_at, s.snapshot, "
            "v.held, v.status FROM site AS s JOIN verdict AS v ON v.site = s.site"
        )
        db.execute("DROP TABLE site")
        db.execute("DROP TABLE verdict")
        db.execute("ALTER TABLE old RENAME TO site")
    states, verdicts, store = restore(path, Tick())
    store.close()
    for site in SITES:
        assert states.get(site) == live.states.get(site)
        assert verdicts.json_of(site) == live.verdicts.json_of(site)


def test_a_snapshot_period_shorter_than_a_pass_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"snapshot_every_s \(0\.5\).*Fix: set"):
        StateConfig(save_every_s=1.0, snapshot_every_s=0.5)


@pytest.mark.parametrize("how", ["saver behind", "saves failing"])
def test_past_the_pending_cap_a_site_is_saved_whole_instead(tmp_path: Path, how: str) -> None:
    """Messages wait in memory for the log up to a cap (a saver stuck or failing for long
    must not grow the collector without bound); past it their sites' snapshots are
    written whole with the next save that works, and a crash then still restores the
    state of that save."""
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 3600.0)
    run(live, tick, rounds=2, seed=7)
    live.store.max_pending = 5
    real = live.store._db
    if how == "saves failing":
        live.store._db = sqlite3.connect(":memory:", isolation_level=None)  # no tables
    at = T0 + timedelta(seconds=90)
    for site in SITES:
        live.send(report(site, at, 3, battery=True), at)
    if how == "saves failing":
        with pytest.raises(sqlite3.OperationalError):
            live.store.save_changed()
        live.store._db.close()
        live.store._db = real
        live.store.max_pending = 2  # the failed save's 5 messages are now past the cap
        more = T0 + timedelta(seconds=120)
        live.send(report("rs-1", more, 4, battery=True), more)
    assert len(live.store._folded) <= 5
    before = live.store.saved.labels("snapshot")._value.get()
    tick.now = 130.0
    live.store.save_changed()
    assert live.store.saved.labels("snapshot")._value.get() - before >= len(SITES) - 5
    real.close()  # a crash
    states, verdicts, store = restore(path, Tick())
    store.close()
    for site in SITES:
        assert states.get(site) == live.states.get(site), site
        assert verdicts.json_of(site) == live.verdicts.json_of(site)


def test_a_message_logged_after_its_snapshot_does_not_hold_the_log(tmp_path: Path) -> None:
    """The collector folds a message, then logs it; a save can come between the two. Its
    site's snapshot then covers the message, which is logged with the next save: the site
    must still get a snapshot covering the entry, or, silent from then on, it would hold
    every later message in the log (found in benchmarks/fleet.py: 24 250 entries left
    after a clean stop)."""
    path = tmp_path / "state.sqlite"
    tick = Tick()
    live = Live(path, tick, 120.0)
    run(live, tick, rounds=1, seed=8)
    at = T0 + timedelta(seconds=60)
    message = report("rs-0", at, 2, battery=False)
    topic, payload = f"kienco/v1/{P}/rs-0/report", message.model_dump_json().encode()
    assert live.fold(topic, payload, at, True, False)  # folded ...
    tick.now = 150.0  # 120 s after the first: rs-0's snapshot written, with the message
    live.store.save_changed()
    live.store.folded(("rs-0", topic, payload, at, True, False))  # ... then logged
    for n in range(3, 16):  # rs-0 silent from here; the others report and are written
        when = T0 + timedelta(seconds=30 * n)
        for site in SITES[1:]:
            live.send(report(site, when, n, battery=False), when)
        tick.now = 150.0 + 30 * (n - 2)
        live.store.save_changed()
    # No more than a period of the others' reports (4 passes of 7), and a few more.
    assert logged(path) <= 5 * (len(SITES) - 1)
    live.store.close()
    assert logged(path) == 0
