"""The saved form of a site: the saver's encoding (its battery history kept encoded between
saves) is ``site_json`` byte for byte, whatever happened between two saves; text from the
field round-trips exactly; a store saved and restored brings back every verdict unchanged,
also from a file written by the whole encoding (every release before the kept one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry

from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_codec import SiteEncoder, site_from_json, site_json
from collector.state_store import StateStore
from contract.wire import HostReading, Meta, PowerReading, Report
from rules import SiteSnapshot, load_policy
from rules.snapshot import HISTORY_LEN, Sample
from tests.test_rules_support import genset, on_battery, two_paths, ups

T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def fold(snapshot: SiteSnapshot, *seconds: float, device: str = "ups1") -> SiteSnapshot:
    """Reports at T0 + each of ``seconds``, a UPS discharging and a generator."""
    for s in seconds:
        charge = min(100.0, max(1.0, 99.0 - s / 60))
        report = Report(
            site="rs-1",
            province="rs",
            seq=1,
            taken_at=T0 + timedelta(seconds=s),
            interval_s=30,
            power=(
                on_battery(device, runtime_s=7200.0 - s, battery_charge_pct=charge),
                genset(),
            ),
            links=two_paths(),
        )
        snapshot = snapshot.with_report(report, received_at=report.taken_at)
    return snapshot


def start() -> SiteSnapshot:
    return SiteSnapshot(site="rs-1", province="rs")


def renewed(snapshot: SiteSnapshot) -> SiteSnapshot:
    """The same values in new objects, as a restore makes them."""
    return site_from_json(site_json(snapshot))


def emptied(snapshot: SiteSnapshot) -> SiteSnapshot:
    return replace(snapshot, power_history=MappingProxyType({}))


def shortened(snapshot: SiteSnapshot) -> SiteSnapshot:
    return replace(
        snapshot,
        power_history=MappingProxyType({d: h[5:] for d, h in snapshot.power_history.items()}),
    )


Step = Callable[[SiteSnapshot], SiteSnapshot]
META = Meta(
    site="rs-1",
    province="rs",
    site_kind="station",
    name="Trạm",
    interval_s=30,
    agent_version="t",
    at=T0 - timedelta(days=1),
)
FULL = tuple(30.0 * i for i in range(HISTORY_LEN + 5))


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([lambda s: fold(s, 0)], id="first save, one sample"),
        pytest.param([lambda s: fold(s, *FULL)], id="first save, history full"),
        pytest.param([lambda s: fold(s, 0), lambda s: fold(s, 30)], id="one report more"),
        pytest.param(
            [lambda s: fold(s, *FULL), lambda s: fold(s, 3000)], id="full: one in, one out"
        ),
        pytest.param(
            [lambda s: fold(s, *FULL), lambda s: fold(s, 3000, 3030, 3060, 3090)],
            id="full: several reports between saves",
        ),
        pytest.param(
            [lambda s: fold(s, *FULL), lambda s: fold(s, *(3000 + 30.0 * i for i in range(40)))],
            id="full: the whole window replaced",
        ),
        pytest.param([lambda s: fold(s, *FULL), lambda s: s], id="nothing changed"),
        pytest.param(
            [lambda s: fold(s, *FULL), lambda s: fold(s, 31 * 30 + 15)],
            id="a replay merged in the middle",
        ),
        pytest.param(
            [lambda s: fold(s, *FULL), lambda s: fold(s, -45)], id="a replay older than all"
        ),
        pytest.param(
            [lambda s: fold(s, *FULL), renewed, lambda s: fold(s, 3000)],
            id="a restored site (equal samples, new objects)",
        ),
        pytest.param(
            [lambda s: fold(s, 0, 30), lambda s: fold(s, 60, device="ups2")],
            id="a device new to the history",
        ),
        pytest.param([lambda s: fold(s, *FULL), emptied], id="history emptied"),
        pytest.param(
            [lambda s: fold(s, *FULL), shortened, lambda s: fold(s, 3000)],
            id="history shortened, then one more",
        ),
        pytest.param([lambda s: s], id="no history at all"),
        pytest.param(
            [lambda s: fold(s, *FULL).with_meta(META), lambda s: fold(s, 3000)],
            id="a meta, then a report",
        ),
        pytest.param(
            [
                lambda s: fold(s, *FULL).with_meta(META),
                lambda s: s.with_meta(META.model_copy(update={"name": "Mới", "at": T0})),
            ],
            id="a new meta",
        ),
        pytest.param(
            [lambda s: fold(s, 0).with_meta(META), lambda s: replace(s, meta=None)],
            id="the meta gone",
        ),
    ],
)
@pytest.mark.parametrize("history", [True, False], ids=["history kept", "history whole"])
@pytest.mark.parametrize("meta", [True, False], ids=["meta kept", "meta whole"])
def test_the_savers_encoding_is_site_json_byte_for_byte(
    steps: list[Step], history: bool, meta: bool
) -> None:
    encoder = SiteEncoder(history=history, meta=meta)
    snapshot = start()
    for step in steps:
        snapshot = step(snapshot)
        saved = encoder.site_json(snapshot)
        assert saved == site_json(snapshot)
        assert site_from_json(saved) == snapshot


def test_forgotten_sites_are_not_kept() -> None:
    encoder = SiteEncoder()
    encoder.site_json(fold(start(), 0, 30))
    assert len(encoder) == 1
    encoder.forget("rs-1")
    assert len(encoder) == 0


HOSTILE = [
    "line\nbreak\r\nand\rreturn",
    "quote \" and \\ backslash ' apostrophe",
    "control \x00\x01\x08\x0b\x0c\x1b[31m\x7f",
    "<script>alert(1)</script> &amp; ]]>",
    "bidi \u202eevil\u202c zero\u200bwidth",
    "Trạm Đồ Sơn — 🏔",
    '],["2026-01-01T00:00:00Z",1.0,2.0,true],[',  # the saver's separator in text
    '"power_history":{}}',  # the end the saver cuts, in text
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("kept", [True, False], ids=["kept", "whole"])
def test_text_from_the_field_round_trips_exactly(text: str, kept: bool) -> None:
    meta = Meta(
        site="rs-1",
        province="rs",
        site_kind="station",
        name=text,
        area_name=text,
        interval_s=30,
        agent_version=text[:40],
        at=T0,
    )
    snapshot = fold(start().with_meta(meta), *FULL)
    snapshot = replace(
        snapshot,
        site=text,
        host=(HostReading(error=text), T0),
        power={**snapshot.power, "ups1": (ups(profile=text[:64]), T0)},
        power_history=MappingProxyType({**snapshot.power_history, text: ((T0, 1.0, None, True),)}),
    )
    encoder = SiteEncoder(history=kept, meta=kept)
    for current in (snapshot, fold(snapshot, 5000)):
        saved = encoder.site_json(current)
        assert saved == site_json(current)
        back = site_from_json(saved)
        assert back == current
        assert back.site == text and back.meta is not None and back.meta.name == text
        history: tuple[Sample, ...] = back.power_history[text]
        assert history == ((T0, 1.0, None, True),)


class _Whole(SiteEncoder):
    """The saver's encoding before the history was kept: every site encoded whole."""

    def site_json(self, snapshot: SiteSnapshot) -> bytes:
        return site_json(snapshot)


def _fleet(count: int) -> tuple[SiteStates, Verdicts]:
    states = SiteStates()
    verdicts = Verdicts(states, load_policy())
    for n in range(count):
        site = f"rs-{n}"
        meta = Meta(
            site=site,
            province="rs",
            site_kind="station",
            name=HOSTILE[n % len(HOSTILE)],
            interval_s=30,
            agent_version="t",
            at=T0,
        )
        states.apply_meta(meta)
    return states, verdicts


def _report_all(states: SiteStates, verdicts: Verdicts, count: int, at: float) -> None:
    for n in range(count):
        taken = T0 + timedelta(seconds=at)
        power: tuple[PowerReading, ...] = (
            on_battery(runtime_s=7200 - at, battery_charge_pct=max(1.0, 90 - at / 100))
            if n % 2
            else ups(),
            genset(),
        )
        report = Report(
            site=f"rs-{n}",
            province="rs",
            seq=int(at),
            taken_at=taken,
            interval_s=30,
            power=power,
            links=two_paths(),
        )
        states.apply_report(report, received_at=taken)
        verdicts.evaluate(f"rs-{n}", taken)


@pytest.mark.parametrize("writer", ["kept", "whole (the file of an earlier release)"])
def test_saved_and_restored_every_verdict_is_unchanged(tmp_path: Path, writer: str) -> None:
    count = 12
    states, verdicts = _fleet(count)
    store = StateStore(
        tmp_path / "state.sqlite", states, verdicts, CollectorRegistry(), save_every_s=1
    )
    if writer != "kept":
        store._encoder = _Whole()
    for step in range(HISTORY_LEN + 3):  # saved after each round: the kept path, sliding
        _report_all(states, verdicts, count, 30.0 * step)
        assert store.save_changed() == count
    store.close()

    fresh_states = SiteStates()
    fresh = Verdicts(fresh_states, load_policy())
    reader = StateStore(
        tmp_path / "state.sqlite", fresh_states, fresh, CollectorRegistry(), save_every_s=1
    )
    now = T0 + timedelta(seconds=30.0 * (HISTORY_LEN + 3))
    restored = reader.restore(now, listed_in=lambda _site: None, not_before=now)
    reader.close()
    assert (restored.sites, restored.skipped) == (count, 0)
    for n in range(count):
        site = f"rs-{n}"
        assert fresh_states.get(site) == states.get(site)
        assert fresh.json_of(site) == verdicts.json_of(site)
        before, after = verdicts.saved_of(site), fresh.saved_of(site)
        assert before is not None and after is not None
        assert after[0] == before[0]


def test_a_sliding_history_encodes_only_its_new_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    import collector.state_codec as codec

    encoded: list[int] = []
    real = codec._SAMPLES

    class Counting:
        def dump_json(self, samples: list[Sample]) -> bytes:
            encoded.append(len(samples))
            return real.dump_json(samples)

    monkeypatch.setattr(codec, "_SAMPLES", Counting())
    encoder = SiteEncoder()
    snapshot = fold(start(), *FULL)
    encoder.site_json(snapshot)
    assert encoded == [HISTORY_LEN, HISTORY_LEN]  # the UPS and the generator, whole
    encoded.clear()
    snapshot = fold(snapshot, 3000, 3030)
    assert encoder.site_json(snapshot) == site_json(snapshot)
    assert encoded == [2, 2]  # two reports since: their samples only


def test_arrivals_keep_their_vouching_and_a_file_saved_before_it_reads_back() -> None:
    at = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)
    s = SiteSnapshot(site="hp-1", province="hp")
    for n in range(4):
        received = at + timedelta(seconds=60 * n)
        sent = Report(
            site="hp-1", province="hp", seq=n, taken_at=received - timedelta(hours=2), interval_s=60
        )
        s = s.with_report(sent, received_at=received, vouched=n > 0)
    restored = site_from_json(site_json(s))
    assert restored.arrivals == s.arrivals
    assert restored.last_seq == s.last_seq == 3  # a clock stepped back is told by it
    assert [vouched for _, _, vouched in restored.arrivals] == [False, True, True, True]
    # Saved before arrivals were vouched for: (received, taken) pairs, read as not vouched.
    old = site_json(s).replace(b",true]", b"]").replace(b",false]", b"]")
    assert b"true" not in old
    assert [v for _, _, v in site_from_json(old).arrivals] == [False] * 4


def test_a_report_refused_for_its_clock_ahead_is_remembered_across_a_restart() -> None:
    at = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)
    s = SiteSnapshot(site="hp-1", province="hp").with_refused_ahead(at, 25_200.5, 300.0)
    assert site_from_json(site_json(s)).refused_ahead == (at, 25_200.5, 300.0)
    assert site_from_json(site_json(SiteSnapshot(site="hp-1", province="hp"))).refused_ahead is None


def test_the_outboxes_of_a_site_are_remembered_across_a_restart() -> None:
    """Else a restart would take the replaced box's replay for a new numbering."""
    at = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)
    s = SiteSnapshot(site="hp-1", province="hp")
    for n, outbox in enumerate((7, 2**53)):
        sent = Report(site="hp-1", province="hp", seq=n, taken_at=at, interval_s=60)
        s = s.with_report(sent.model_copy(update={"outbox": outbox}), received_at=at)
    assert site_from_json(site_json(s)).outboxes == s.outboxes == (7, 2**53)
    assert SiteEncoder().site_json(s) == site_json(s)
    plain = SiteSnapshot(site="hp-1", province="hp")
    assert b"outboxes" not in site_json(plain)  # none said: nothing saved
    assert site_from_json(site_json(plain)).outboxes == ()
