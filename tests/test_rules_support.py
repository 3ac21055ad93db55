"""Builders the rules tests share, and the tests of folding messages into a snapshot.

A snapshot is built the way the collector builds it: wire messages folded in with
``SiteSnapshot.with_report`` / ``with_meta`` / ``with_state``.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from contract.wire import (
    DeviceDecl,
    HostReading,
    LinkReading,
    Meta,
    PathDecl,
    PowerReading,
    Report,
    RoomReading,
    SiteKind,
    State,
)
from rules import Evaluation, PowerSample, SiteSnapshot, evaluate, load_policy

NOW = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)  # Yagi's landfall morning
SITE, PROVINCE = "hp-0012", "hai-phong"
POLICY = load_policy()


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def ups(device: str = "ups1", **fields: Any) -> PowerReading:
    """A UPS on mains, full, 30 % load, runtime 10 h unless told otherwise."""
    values: dict[str, Any] = {
        "mains_present": True,
        "on_battery": False,
        "battery_charge_pct": 100.0,
        "battery_runtime_s": 36_000.0,
        "load_pct": 30.0,
    }
    values.update(fields)
    return PowerReading(device=device, **values)


def on_battery(
    device: str = "ups1", runtime_s: float | None = 3600.0, **fields: Any
) -> PowerReading:
    values: dict[str, Any] = {"mains_present": False, "on_battery": True}
    values.update(fields)
    return ups(device, battery_runtime_s=runtime_s, **values)


def genset(device: str = "gen1", **fields: Any) -> PowerReading:
    """A generator controller: idle, 200 L of fuel, burn rate not reported."""
    values: dict[str, Any] = {"generator_running": False, "fuel_l": 200.0}
    values.update(fields)
    return PowerReading(device=device, **values)


def link(path: str, media: str = "fibre", *srlg: str, **fields: Any) -> LinkReading:
    """A path that is up and good for video unless told otherwise."""
    values: dict[str, Any] = {
        "up": True,
        "rtt_ms": 20.0,
        "jitter_ms": 3.0,
        "loss_pct": 0.0,
        "probes_sent": 10,
    }
    values.update(fields)
    return LinkReading(path=path, media=media, srlg=srlg, **values)  # type: ignore[arg-type]


def two_paths() -> tuple[LinkReading, ...]:
    return (link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b"))


def room(**fields: bool | None) -> RoomReading:
    values: dict[str, bool | None] = {
        "codec_reachable": True,
        "codec_registered": True,
        "camera_ok": True,
        "microphone_ok": True,
        "speaker_ok": True,
        "display_ok": True,
    }
    values.update(fields)
    return RoomReading.model_validate(values)


def meta(
    kind: SiteKind = "station",
    site_class: str = "ordinary",
    *,
    hardened: bool = False,
    paths: Sequence[PathDecl] = (),
    generator: bool = False,
    interval_s: float = 60.0,
) -> Meta:
    devices = (DeviceDecl(device="gen1", profile="dse", role="generator"),) if generator else ()
    return Meta(
        site=SITE,
        province=PROVINCE,
        site_kind=kind,
        name="Trạm Đồ Sơn",
        site_class=site_class,  # type: ignore[arg-type]
        hardened=hardened,
        paths=tuple(paths),
        devices=devices,
        interval_s=interval_s,
        agent_version="0.1.0",
        at=ago(86_400),
    )


def report(
    *,
    at: datetime | None = None,
    power: Sequence[PowerReading] = (),
    links: Sequence[LinkReading] = (),
    room_reading: RoomReading | None = None,
    seq: int = 1,
    interval_s: float = 60.0,
    host: HostReading | None = None,
) -> Report:
    return Report(
        site=SITE,
        province=PROVINCE,
        seq=seq,
        taken_at=at or ago(30),
        interval_s=interval_s,
        power=tuple(power),
        links=tuple(links),
        room=room_reading,
        host=host,
    )


def snap(
    kind: SiteKind = "station",
    *,
    site_class: str = "ordinary",
    hardened: bool = False,
    power: Sequence[PowerReading] = (),
    links: Sequence[LinkReading] = (),
    room_reading: RoomReading | None = None,
    at: datetime | None = None,
    online: bool | None = True,
    with_meta: bool = True,
    meta_paths: Sequence[PathDecl] = (),
    generator_declared: bool = False,
    history: dict[str, tuple[PowerSample, ...]] | None = None,
    interval_s: float = 60.0,
) -> SiteSnapshot:
    """One site after one report (30 s ago unless ``at``), folded the collector's way."""
    s = SiteSnapshot(site=SITE, province=PROVINCE, online=online, state_at=ago(3600))
    if with_meta:
        m = meta(
            kind,
            site_class,
            hardened=hardened,
            paths=meta_paths,
            generator=generator_declared,
            interval_s=interval_s,
        )
        s = s.with_meta(m)
    r = report(at=at, power=power, links=links, room_reading=room_reading, interval_s=interval_s)
    s = s.with_report(r, received_at=r.taken_at)
    if history is not None:
        s = SiteSnapshot(
            site=s.site,
            province=s.province,
            meta=s.meta,
            online=s.online,
            state_at=s.state_at,
            last_report_at=s.last_report_at,
            last_seen_at=s.last_seen_at,
            interval_s=s.interval_s,
            power=s.power,
            links=s.links,
            host=s.host,
            room=s.room,
            power_history=history,
        )
    return s


def clock_behind(s: SiteSnapshot, lag_s: float, *, vouched: bool = True) -> SiteSnapshot:
    """``s`` as its agent would have reported it with its clock ``lag_s`` behind and its
    kernel saying so (not synchronised): every time it stamped that much earlier, its last
    4 reports received on their interval up to its newest's true time (``vouched``: the
    collector ruled out every queue)."""
    assert s.last_report_at is not None
    every = timedelta(seconds=s.interval_s or 60.0)
    lag = timedelta(seconds=lag_s)
    received = [s.last_report_at - every * n for n in (3, 2, 1, 0)]
    return replace(
        s.shifted(-lag_s),
        host=(HostReading(clock_synced=False), s.last_report_at - lag),
        arrivals=tuple((at, at - lag, vouched) for at in received),
    )


def judge(s: SiteSnapshot, **kwargs: Any) -> Evaluation:
    return evaluate(s, POLICY, NOW, **kwargs)


def codes(e: Evaluation) -> list[str]:
    return [f.code for f in e.findings]


# --- folding messages into a snapshot


def test_replayed_old_report_never_overwrites_newer_state() -> None:
    s = snap(power=[on_battery(runtime_s=1800)], links=two_paths(), at=ago(30))
    replay = report(at=ago(7200), power=[ups()], links=[link("fo1", up=False)], seq=0)
    after = s.with_report(replay, received_at=NOW)
    assert after.last_report_at == ago(30)
    assert after.power["ups1"][0].on_battery is True
    assert after.links["fo1"][0].up is True
    # the replay still lands in the discharge history, in time order
    assert [p[0] for p in after.power_history["ups1"]] == [ago(7200), ago(30)]
    assert judge(after).station_state == judge(s).station_state == "up_battery"


def test_newer_report_replaces_readings_and_interval() -> None:
    s = snap(power=[ups()], at=ago(90))
    after = s.with_report(report(at=ago(30), power=[on_battery()], interval_s=30), received_at=NOW)
    assert after.power["ups1"][0].on_battery is True
    assert after.last_report_at == ago(30)
    assert after.interval_s == 30


def test_history_keeps_the_last_samples_only() -> None:
    s = SiteSnapshot(site=SITE, province=PROVINCE)
    for i in range(40):
        s = s.with_report(report(at=ago(4000 - i * 60), power=[ups()], seq=i), history_len=30)
    samples = s.power_history["ups1"]
    assert len(samples) == 30
    assert samples[-1][0] == ago(4000 - 39 * 60)


@pytest.mark.parametrize(
    ("first", "second", "online"),
    [
        pytest.param("online", "offline", False, id="will-after-birth"),
        pytest.param("offline", "online", True, id="birth-after-will"),
    ],
)
def test_state_last_delivered_wins(first: str, second: str, online: bool) -> None:
    s = SiteSnapshot(site=SITE, province=PROVINCE)
    for i, state in enumerate((first, second)):
        msg = State(site=SITE, province=PROVINCE, state=state, at=ago(100 - i))  # type: ignore[arg-type]
        s = s.with_state(msg)
    assert s.online is online


def test_a_will_stamped_before_the_birth_still_marks_the_site_offline() -> None:
    # The Will is stamped at connect time, before the birth; it fires later.
    birth = State(site=SITE, province=PROVINCE, state="online", at=ago(50))
    will = State(site=SITE, province=PROVINCE, state="offline", at=ago(60))
    s = SiteSnapshot(site=SITE, province=PROVINCE).with_state(birth).with_state(will)
    assert s.online is False


def test_snapshot_defaults_come_from_meta_and_readings() -> None:
    m = meta("meeting_point", interval_s=120)
    s = SiteSnapshot(site=SITE, province=PROVINCE, meta=m, links={"fo1": (link("fo1"), ago(10))})
    assert s.site_kind == "meeting_point"
    assert s.interval_s == 120
    assert s.last_report_at == ago(10)
    assert SiteSnapshot(site=SITE, province=PROVINCE).site_kind is None


def test_current_drops_readings_older_than_the_window() -> None:
    s = snap(power=[ups()], at=ago(1200)).with_report(
        report(at=ago(30), links=two_paths(), seq=2), received_at=NOW
    )
    assert "ups1" in s.power
    current = s.current(180)
    assert "ups1" not in current.power
    assert set(current.links) == {"fo1", "mw1"}


def test_history_keeps_plain_tuples() -> None:
    """PowerSamples in, plain tuples kept: the garbage collector stops watching those
    (a NamedTuple it walks at every full collection, all threads waiting)."""
    s = SiteSnapshot(
        site=SITE,
        province=PROVINCE,
        power_history={"ups1": (PowerSample(ago(60), 50.0, None, True),)},
    )
    (sample,) = s.power_history["ups1"]
    assert type(sample) is tuple
    named = PowerSample._make(sample)
    assert (named.battery_charge_pct, named.on_battery) == (50.0, True)


def test_folded_history_leaves_the_garbage_collectors_watch() -> None:
    snapshot = SiteSnapshot(site=SITE, province=PROVINCE)
    for minutes in (3, 2, 1):
        snapshot = snapshot.with_report(report(at=ago(60 * minutes), power=[ups()], seq=minutes))
    history = snapshot.power_history["ups1"]
    assert len(history) == 3 and all(type(s) is tuple for s in history)
    gc.collect()  # the samples; the tuple holding them, once they are untracked
    gc.collect()
    assert not gc.is_tracked(history)
    assert not any(gc.is_tracked(s) for s in history)


@pytest.mark.parametrize(
    "start",
    [
        SiteSnapshot(site=SITE, province=PROVINCE),  # a site's first report
        SiteSnapshot(site=SITE, province=PROVINCE, meta=meta()),  # meta first: its interval
        snap(power=[on_battery(runtime_s=1800)], links=two_paths(), at=ago(30)),
    ],
    ids=["first", "meta-only", "held"],
)
@pytest.mark.parametrize("at", [ago(7200), ago(10), NOW], ids=["replay", "newer", "now"])
def test_a_folded_snapshot_is_the_one_its_constructor_makes(
    start: SiteSnapshot, at: datetime
) -> None:
    # with_report skips __post_init__ (the collector folds every report): what it makes
    # must be exactly what the constructor, every check run, makes of the same fields.
    after = start.with_report(report(at=at, power=[ups()], links=two_paths()), received_at=NOW)
    rebuilt = SiteSnapshot(**{f.name: getattr(after, f.name) for f in dataclasses.fields(after)})
    assert after == rebuilt
    assert all(type(m) is MappingProxyType for m in (after.power, after.links, after.power_history))
    assert all(type(s) is tuple for samples in after.power_history.values() for s in samples)
