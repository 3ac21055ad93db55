"""The system dashboard's shard panels (kienco/dashboards/shards.py) on a real InfluxDB 1.6,
seeded with what three collector shards wrote of their own health (collector/health_points.py
turning /metrics and /healthz readings into points): every panel's query, sent as Grafana
sends it, returns each shard's figures; each cell and tile takes the colour its thresholds
give, as Grafana picks it; a shard whose health stopped coming five minutes ago reads red,
and so does a dashboard with no shard at all."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.health_points import MEASUREMENT, Reading, health_points
from collector.line_protocol import encode_many
from collector.system_alerts import DropRun
from kienco.dashboards import system
from kienco.dashboards.common import Built, Check
from kienco.dashboards.macros import TimeRange
from kienco.dashboards.replay import Influx, Outcome, Series, opened
from tests.support.influx import InfluxServer

END = datetime.now(UTC).replace(microsecond=0)  # the end of the range Grafana shows
SPAN = TimeRange(END - timedelta(minutes=15), END)
EVERY_S = 10
THREADS = ("api", "mqtt", "staleness", "writer")
BUILT: Built = system.build()


def _shard_checks(built: Built) -> list[Check]:
    return [c for c in built.checks if f'"{MEASUREMENT}"' in c.query]


def _readings(
    first: datetime,
    last: datetime,
    *,
    reports_per_s: float,
    invalid_per_s: float = 0.0,
    dropped_at: datetime | None = None,
    writer_stuck: bool = False,
    spooled: int = 0,
    late_s: float | None = None,
) -> list[Reading]:
    """A shard's readings every 10 s from ``first`` to ``last``: its counters growing at
    the rates given, 30 messages dropped by its own broker at ``dropped_at``."""
    readings = []
    at, elapsed = first, 0.0
    while at <= last:
        dropped = 30.0 if dropped_at is not None and at >= dropped_at else 0.0
        metrics: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
            "kienco_messages_received_total": {(): reports_per_s * elapsed},
            "kienco_messages_accepted_total": {(("kind", "report"),): reports_per_s * elapsed},
            "kienco_messages_rejected_total": {
                (("reason", "invalid_json"),): invalid_per_s * elapsed,
                (("reason", "schema"),): 0.0,
            },
            "kienco_points_written_total": {(): 7 * reports_per_s * elapsed},
            "kienco_report_lag_seconds": {(): 2.5},
            "kienco_pending_messages": {(): 120.0},
            "kienco_sites": {(): 400.0},
            "kienco_thread_errors_total": {(("thread", t),): 0.0 for t in THREADS},
            "kienco_gc_pause_seconds_sum": {(("generation", "2"),): 0.001 * elapsed},
            "kienco_gc_pause_max_seconds": {(("generation", "2"),): 0.3},
            "kienco_broker_dropped_messages": {(("broker", "own"),): dropped},
            "kienco_broker_stored_messages": {(("broker", "own"),): 40.0},
            "kienco_broker_bridge_up": {(("broker", "hp"),): 1.0, (("broker", "qn"),): 0.0},
        }
        stuck = {"writer"} if writer_stuck else set()
        health = {
            "ok": not stuck and not spooled,
            "problems": [{"code": "thread_silent"}] * len(stuck)
            + [{"code": "influx_unreachable"}] * bool(spooled),
            "broker_connected": True,
            "reports_late": {} if late_s is None else {"hp": {"behind_s": late_s}},
            "influx": {
                "configured": True,
                "taking_writes": not spooled,
                "spooled_batches": spooled,
            },
            "threads": {
                t: {"alive": True, "stuck": t in stuck, "heartbeat_age_s": 0.4} for t in THREADS
            },
        }
        drops = {} if dropped_at is None else {"own": DropRun(dropped_at, dropped_at, 30, 30)}
        readings.append(Reading(at, metrics, health, drops))
        at += timedelta(seconds=EVERY_S)
        elapsed += EVERY_S
    return readings


def _lines(collector: str, readings: list[Reading]) -> str:
    points = []
    before = None
    for reading in readings:
        points += health_points(collector, reading, before)
        before = reading
    return encode_many(points)


@pytest.fixture(scope="module")
def influx(influxdb: InfluxServer) -> Iterator[Influx]:
    """Three shards: a1 well (a burst of drops 2 min ago, hp's bridge up, qn's down), b1
    whose health stopped 5 min ago, c1 with its writer stuck, InfluxDB not taking its
    writes (its points came later, from its spool) and hp's reports read 30 min late."""
    recent = END - timedelta(seconds=5)
    shards = {
        "a1": _readings(
            END - timedelta(minutes=10, seconds=5),
            recent,
            reports_per_s=40.0,
            invalid_per_s=1.0,
            dropped_at=END - timedelta(minutes=2, seconds=5),
        ),
        "b1": _readings(
            END - timedelta(minutes=10, seconds=5),
            END - timedelta(minutes=5, seconds=5),
            reports_per_s=20.0,
        ),
        "c1": _readings(
            END - timedelta(minutes=10, seconds=5),
            recent,
            reports_per_s=10.0,
            writer_stuck=True,
            spooled=7,
            late_s=1800.0,
        ),
    }
    batches = [_lines(collector, readings) for collector, readings in shards.items()]
    with influxdb.seeded("dashboards_shards", *batches) as database:
        client = Influx(influxdb.url, database)
        yield client
        client.close()


def _run(influx: Influx, choose: Mapping[str, list[str]] | None = None) -> dict[str, Outcome]:
    outcomes = opened(BUILT, influx, SPAN, choose=choose, checks=_shard_checks(BUILT))
    for outcome in outcomes:
        assert outcome.error is None, (outcome.check.panel, outcome.error, outcome.sent)
    return {o.check.panel: o for o in outcomes}


def _panel(title: str) -> dict[str, Any]:
    return next(p for p in BUILT.json["panels"] if p.get("title") == title)


def _colour(thresholds: Mapping[str, Any], value: float | None) -> str:
    """The colour Grafana gives ``value`` (``getActiveThreshold``): the last step at or
    below it; no value at all takes the base step (``scaleFunc(-Infinity)``)."""
    steps = thresholds["steps"]
    colour = str(steps[0]["color"])
    for step in steps[1:]:
        if value is not None and value >= step["value"]:
            colour = str(step["color"])
    return colour


def _override(panel: Mapping[str, Any], column: str, prop: str) -> Any:
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"]["options"] == column:
            for item in override["properties"]:
                if item["id"] == prop:
                    return item["value"]
    raise KeyError((column, prop))


def _cell_colour(panel: Mapping[str, Any], column: str, value: float | None) -> str:
    try:
        (mapping,) = _override(panel, column, "mappings")
    except KeyError:
        return _colour(_override(panel, column, "thresholds"), value)
    return str(mapping["options"][str(int(value or 0))]["color"])


def _by(series: list[Series], *tags: str) -> dict[tuple[str, ...], list[Any]]:
    """Each series' one column of values, keyed by its tags."""
    return {tuple(s.tags[t] for t in tags): [row[1] for row in s.values] for s in series}


TILES = "Collector: tình trạng ghi cách đây bao lâu"
TABLE = "Từng collector, lúc cuối khoảng thời gian"


def test_every_shard_panel_is_checked_here() -> None:
    titles = {c.panel for c in _shard_checks(BUILT)}
    assert len(titles) == 11
    assert {TILES, TABLE} <= titles


def test_the_tiles_say_how_old_each_shard_s_health_is_and_a_stopped_one_is_red(
    influx: Influx,
) -> None:
    outcome = _run(influx)[TILES]
    ages = {s.tags["collector"]: s.values[0][1] for s in outcome.series}
    assert ages == {"a1": 5, "b1": 305, "c1": 5}
    thresholds = _panel(TILES)["fieldConfig"]["defaults"]["thresholds"]
    colours = {collector: _colour(thresholds, age) for collector, age in ages.items()}
    assert colours == {"a1": "green", "b1": "red", "c1": "green"}
    assert _colour(thresholds, 45) == "orange"  # late: three readings missed


def test_no_shard_at_all_reads_red_not_green(influxdb: InfluxServer) -> None:
    with influxdb.seeded("dashboards_no_shard") as database:
        client = Influx(influxdb.url, database)
        try:
            outcome = _run(client)[TILES]
        finally:
            client.close()
    assert outcome.series == []  # Grafana shows "No data", coloured by the base step
    defaults = _panel(TILES)["fieldConfig"]["defaults"]
    assert _colour(defaults["thresholds"], None) == "red"
    assert "không có collector" in defaults["noValue"]


def test_the_table_has_a_row_per_shard_with_its_figures_and_their_colours(
    influx: Influx,
) -> None:
    outcome = _run(influx)[TABLE]
    rows = {
        s.tags["collector"]: dict(zip(s.columns, s.values[0], strict=True)) for s in outcome.series
    }
    assert set(rows) == {"a1", "b1", "c1"}
    expected = {
        "a1": {"age_s": 5, "reports_per_s": 40, "rejected_per_s": 1, "brokers_dropping": 1},
        "b1": {"age_s": 305, "reports_per_s": 20, "rejected_per_s": 0, "brokers_dropping": 0},
        "c1": {"age_s": 5, "reports_per_s": 10, "rejected_per_s": 0, "brokers_dropping": 0},
    }
    for collector, figures in expected.items():
        row = rows[collector]
        assert {k: row[k] for k in figures} == figures, collector
        assert row["lag_s"] == 2.5 and row["pending"] == 120 and row["gc_pause_max_s"] == 0.3
        assert row["bridges_down"] == 1  # qn's bridge is down in every shard's reading
    assert rows["c1"]["loops_failing"] == 1 and rows["a1"]["loops_failing"] == 0
    assert (rows["c1"]["influx_writing"], rows["c1"]["spooled_batches"]) == (0, 7)
    assert (rows["c1"]["provinces_late"], rows["a1"]["provinces_late"]) == (1, 0)
    assert rows["a1"]["influx_writing"] == 1 == rows["a1"]["broker_connected"]
    panel = _panel(TABLE)
    colours = {
        collector: {c: _cell_colour(panel, c, v) for c, v in row.items() if c != "time"}
        for collector, row in rows.items()
    }
    assert colours["a1"]["age_s"] == "green" and colours["b1"]["age_s"] == "red"
    assert colours["a1"]["reports_per_s"] == "green"
    assert (
        colours["a1"]["brokers_dropping"] == "red" and colours["b1"]["brokers_dropping"] == "green"
    )
    assert colours["a1"]["rejected_per_s"] == "red"  # one a second
    assert colours["c1"]["loops_failing"] == "red" and colours["a1"]["loops_failing"] == "green"
    assert colours["c1"]["influx_writing"] == "red" and colours["a1"]["influx_writing"] == "green"
    assert colours["c1"]["spooled_batches"] == "orange"
    assert colours["c1"]["provinces_late"] == "orange"
    assert colours["a1"]["provinces_late"] == "green"
    assert colours["a1"]["bridges_down"] == "red"
    assert colours["a1"]["lag_s"] == "green" and colours["a1"]["pending"] == "green"
    assert colours["a1"]["gc_pause_max_s"] == "orange"  # 0.3 s: all threads stopped
    # A shard with nothing coming in is red, not green.
    assert _cell_colour(panel, "reports_per_s", 0) == "red"


def test_each_figure_over_time_per_shard(influx: Influx) -> None:
    outcomes = _run(influx)

    def values(title: str, *tags: str) -> dict[tuple[str, ...], list[Any]]:
        return _by(outcomes[title].series, *tags)

    reports = values("Báo cáo nhận mỗi giây, theo collector", "collector")
    assert {k: set(v) for k, v in reports.items()} == {("a1",): {40}, ("b1",): {20}, ("c1",): {10}}
    lag = {
        s.tags["collector"]: {c: set(s.column(c)) for c in ("lag_s", "late_s")}
        for s in outcomes["Độ trễ báo cáo, theo collector"].series
    }
    assert lag["a1"] == {"lag_s": {2.5}, "late_s": {0}}
    assert lag["c1"] == {"lag_s": {2.5}, "late_s": {1800}}
    backlog = {
        s.tags["collector"]: {c: set(s.column(c)) for c in ("pending", "spool")}
        for s in outcomes["Tồn đọng ghi: tin chờ ghi và lô trong spool"].series
    }
    assert backlog["a1"] == {"pending": {120}, "spool": {0}}
    assert backlog["c1"] == {"pending": {120}, "spool": {7}}
    dead = values("Tin bị từ chối theo lý do (dead letter)", "collector", "reason")
    assert set(dead[("a1", "invalid_json")]) == {1} and set(dead[("a1", "schema")]) == {0}
    assert set(dead[("b1", "invalid_json")]) == {0}
    drops = values("Tin broker bỏ (mất hẳn), theo broker", "collector", "broker")
    assert sum(drops[("a1", "own")]) == 30 and sum(drops[("b1", "own")]) == 0
    assert set(drops) >= {("a1", "hp"), ("a1", "qn")}  # the provinces' brokers too
    gc = values("GC: phần trăm thời gian mọi luồng phải dừng", "collector")
    assert {round(v, 6) for values_ in gc.values() for v in values_} == {0.1}  # 1 ms a second
    ok = values("Collector ổn hay có vấn đề (/healthz)", "collector")
    assert (set(ok[("a1",)]), set(ok[("c1",)])) == ({1}, {0})
    bridges = values("Cầu nối broker tỉnh → trung tâm", "collector", "broker")
    assert (set(bridges[("a1", "hp")]), set(bridges[("a1", "qn")])) == ({1}, {0})
    assert ("a1", "own") not in bridges  # the own broker has no bridge
    loops = values("Luồng của collector", "collector", "thread")
    assert set(loops[("c1", "writer")]) == {0} and set(loops[("c1", "api")]) == {1}
    assert {t for _, t in loops} == set(THREADS)
    # b1 stopped 5 min ago: its lines end there, nothing drawn after (no invented zero).
    stopped = (END - timedelta(minutes=5, seconds=5)).timestamp() * 1000
    for series in outcomes["Báo cáo nhận mỗi giây, theo collector"].series:
        if series.tags["collector"] == "b1":
            assert max(row[0] for row in series.values) <= stopped


def test_the_collector_variable_narrows_every_shard_panel(influx: Influx) -> None:
    outcomes = _run(influx, {"collector": ["a1"]})
    for outcome in outcomes.values():
        shown = {s.tags.get("collector") for s in outcome.series}
        assert shown == {"a1"}, outcome.check.panel
