"""The system dashboard's clock panels (kienco/dashboards/clocks.py) on a real InfluxDB 1.6:
a few sites' messages through the collector's own decode and rules (``Collector.process``),
its per-minute summaries (``fleet``, ``clock_wrong``) written, then each panel's query sent
as Grafana sends it. Some boxes keep time, some say they do not, one is silent, one older
agent does not say, one is stamped 200 s ahead, one 7 h ahead (Vietnam's time set as UTC:
its reports refused): the counts per province and the list of boxes are what a technician
needs, and nothing else."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.config import CollectorConfig
from collector.line_protocol import encode_many
from collector.service import Collector
from kienco.dashboards import system
from kienco.dashboards.clocks import CLOCK_NAMES
from kienco.dashboards.common import Built
from kienco.dashboards.macros import TimeRange
from kienco.dashboards.replay import Influx, Outcome, opened
from kienco.fleet.fleet import Site, Storm, meta_payload, report_payload, utc_iso
from tests.support.influx import InfluxServer

END = datetime.now(UTC).replace(microsecond=0)  # the end of the range Grafana shows
SPAN = TimeRange(END - timedelta(hours=6), END)
INTERVAL_S = 60.0
BUILT: Built = system.build()
COUNTS = "Hộp không giữ đúng giờ, theo tỉnh"
LIST = next(c.panel for c in BUILT.checks if 'FROM "clock_wrong"' in c.query)

# site → (what its box says of its clock, its report's age by its own clock, s)
SITES: Mapping[Site, tuple[bool | None, float]] = {
    Site(1, "hp", "hp-bts-000001", "station", hardened=False): (True, 20),
    Site(2, "hp", "hp-bts-000002", "station", hardened=False): (False, 20),
    Site(3, "hp", "hp-dc-000003", "meeting_point", hardened=True): (False, 20),
    Site(4, "hp", "hp-bts-000004", "station", hardened=False): (False, 7200),  # silent 2 h
    Site(5, "hp", "hp-bts-000005", "station", hardened=False): (True, -200),  # 200 s ahead
    Site(9, "hp", "hp-bts-000009", "station", hardened=False): (False, -25_200),  # refused
    Site(6, "qn", "qn-bts-000006", "station", hardened=False): (False, 20),
    Site(7, "qn", "qn-bts-000007", "station", hardened=False): (None, 20),  # an older agent
    Site(8, "qn", "qn-bts-000008", "station", hardened=False): (True, 20),
}


def _lines(workdir: Path) -> str:
    """What one collector shard writes: the messages' points, then its summaries."""
    collector = Collector(
        CollectorConfig(data_dir=workdir / "collector", influx=None, provinces=("hp", "qn"))
    )
    storm = Storm.calm()
    texts: list[str] = []
    try:
        for site, (synced, age_s) in SITES.items():
            taken = END - timedelta(seconds=age_s)
            heard = min(taken, END) + timedelta(seconds=0.5)
            meta = meta_payload(site, INTERVAL_S, heard - timedelta(minutes=5))
            texts.append(str(collector.process(site.topic("meta"), meta, heard)))
            payload = report_payload(
                site, 1, utc_iso(taken.timestamp()), INTERVAL_S, storm, 0.0, clock_synced=synced
            )
            text = collector.process(site.topic("report"), payload, heard)
            if age_s < -300:  # past the decoder's tolerance: refused, kept as a dead letter
                assert not isinstance(text, str) and text.reason == "future_timestamp", text
                continue
            assert isinstance(text, str), text
            texts.append(text)
        now = END - timedelta(seconds=5)
        texts.append(encode_many(collector.summaries.due(now, collector._judged)))
    finally:
        collector.stop()
        shutil.rmtree(workdir / "collector", ignore_errors=True)
    return "\n".join(t for t in texts if t)


@pytest.fixture(scope="module")
def influx(influxdb: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    with influxdb.seeded("dashboards_clocks", _lines(tmp_path_factory.mktemp("clocks"))) as db:
        client = Influx(influxdb.url, db)
        yield client
        client.close()


def _run(influx: Influx, choose: Mapping[str, list[str]] | None = None) -> dict[str, Outcome]:
    checks = [c for c in BUILT.checks if c.panel in (COUNTS, LIST)]
    assert len(checks) == 2
    outcomes = opened(BUILT, influx, SPAN, choose=choose, checks=checks)
    for outcome in outcomes:
        assert outcome.error is None, (outcome.check.panel, outcome.error, outcome.sent)
    return {o.check.panel: o for o in outcomes}


def _rows(outcome: Outcome) -> list[dict[str, object]]:
    """The table Grafana shows: each series' rows, with its tags as columns."""
    return [
        {**series.tags, **dict(zip(series.columns, row, strict=True))}
        for series in outcome.series
        for row in series.values
    ]


def test_the_counts_per_province_say_how_many_boxes_do_not_keep_time(influx: Influx) -> None:
    rows = {str(r["province"]): r for r in _rows(_run(influx)[COUNTS])}
    assert set(rows) == {"hp", "qn"}
    counts = {p: {c: rows[p][c] for c in (*CLOCK_NAMES, "sites")} for p in rows}
    # hp: two boxes say they are not synchronised (the silent one is not counted: it is
    # unknown), one keeps time by its own word but is stamped ahead, one so far ahead its
    # reports are refused; qn: one says not, the older agent says nothing and is not counted
    assert counts["hp"] == {
        "clock_wrong": 4,
        "clock_unsynced": 2,
        "clock_behind": 0,
        "clock_corrected": 0,
        "clock_ahead": 1,
        "clock_ahead_refused": 1,
        "sites": 6,
    }
    assert counts["qn"] == {
        "clock_wrong": 1,
        "clock_unsynced": 1,
        "clock_behind": 0,
        "clock_corrected": 0,
        "clock_ahead": 0,
        "clock_ahead_refused": 0,
        "sites": 3,
    }


def test_the_list_names_the_boxes_furthest_off_first(influx: Influx) -> None:
    rows = _rows(_run(influx)[LIST])
    by_site = {str(r["site"]): r for r in rows}
    assert sorted(by_site) == [
        "hp-bts-000002",
        "hp-bts-000005",
        "hp-bts-000009",
        "hp-dc-000003",
        "qn-bts-000006",
    ]
    ahead = by_site["hp-bts-000005"]
    assert ahead["synced"] is True and ahead["reason"] == "clock_ahead"
    assert ahead["off_s"] == pytest.approx(200, abs=2)
    assert ahead["ahead_s"] == ahead["off_s"]
    unsynced = by_site["qn-bts-000006"]
    assert (unsynced["synced"], unsynced["reason"], unsynced["off_s"]) == (False, None, 0.0)
    assert unsynced["name"] == "Trạm BTS qn-bts-000006"
    refused = by_site["hp-bts-000009"]
    assert refused["reason"] == "clock_ahead_refused"
    assert refused["off_s"] == pytest.approx(25_200, abs=2)
    assert max(rows, key=lambda r: float(str(r["off_s"])))["site"] == "hp-bts-000009"


def test_one_province_chosen_shows_its_boxes_only(influx: Influx) -> None:
    outcomes = _run(influx, {"province": ["qn"]})
    assert [r["province"] for r in _rows(outcomes[COUNTS])] == ["qn"]
    assert [r["site"] for r in _rows(outcomes[LIST])] == ["qn-bts-000006"]
