"""Every panel's every query, as Grafana would send it, on a real InfluxDB 1.6 holding what
the real collector wrote from a real pipe run: Typhoon Yagi (kienco/demo's scenario) played
by real agents through Mosquitto, one more agent with real link probes and a real throughput
test, a meeting planned and rehearsed through the API, the inventory loaded for compliance.

Variables are resolved through InfluxDB as Grafana resolves them and substituted as it
substitutes them (``kienco/dashboards/macros.py``): "All" (``.*``), one value, several
values."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import SiteConfig
from agent.runner import Agent
from collector.config import CollectorConfig
from collector.inventory import COLUMNS, InventorySite
from collector.service import Collector
from collector.summaries import SummaryClock
from contract.wire import Meta, Report
from kienco.dashboards import build, retention
from kienco.dashboards.common import Built
from kienco.dashboards.macros import TimeRange
from kienco.dashboards.replay import Influx, Outcome, opened
from kienco.demo.run import demo_policy
from kienco.demo.scenario import Scenario, load_scenario
from kienco.demo.simulator import Fleet, SimulatedSite
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker

RUN_S = 24.0  # real seconds for the storm's 48 simulated hours
SETTLE_S = 3.0  # then the agents go on reporting while the last points and summaries land
INTERVAL_S = 1.0
TOKEN = "dashboards-test-admin-token"
PROBE_SITE = "hp-dc-do-thu"  # the agent with real link probes and a real throughput test


@dataclass(frozen=True)
class StormRun:
    database: str
    started: datetime
    peak: datetime  # when the most sites were off mains
    ended: datetime
    meeting: str
    scenario: Scenario


def _inventory(scenario: Scenario, path: Path) -> None:
    """The scenario's sites as the ministry's register, plus the probe agent."""
    rows = [
        InventorySite(
            site=s.site,
            kind=s.kind,
            name=s.name,
            operator=s.operator,
            province=s.province,
            province_name=scenario.provinces[s.province].name,
            area=s.area or s.province,
            area_name=s.area_name,
            hardened=s.hardened,
            site_class=s.site_class,
            latitude=s.latitude,
            longitude=s.longitude,
        )
        for s in scenario.sites
    ]
    rows.append(
        InventorySite(
            site=PROBE_SITE, kind="meeting_point", operator="vnpt", province="hp",
            area="do-son", hardened=False, latitude=20.72, longitude=106.78,
        )
    )  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in rows:
            values = row.model_dump()
            writer.writerow(["" if values[c] is None else values[c] for c in COLUMNS])


def _simulated_agent(site: SimulatedSite, broker_url: str, workdir: Path) -> Agent:
    """A real agent (outbox, MQTT, commands) whose readings come from the simulator."""
    config = SiteConfig.model_validate(
        {
            "site": site.site,
            "province": site.province,
            "kind": site.kind,
            "name": site.spec.name,
            "interval_s": INTERVAL_S,
            "broker": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
            "outbox": {"path": str(workdir / f"{site.site}.sqlite")},
        }
    )

    async def measure(seq: int, now: datetime) -> Report:
        return site.report(seq, now, INTERVAL_S)

    def meta(now: datetime) -> Meta:
        return site.meta(now, INTERVAL_S)

    return Agent(config, measure=measure, meta=meta)


def _probe_agent(broker_url: str, api_url: str, ports: list[int], workdir: Path) -> Agent:
    """A real agent with real probes: TCP link timing, host, a throughput test."""
    declared = [
        ("fibre-vnpt", "fibre", "duct-ds", "vnpt"),
        ("lte-viettel", "cellular", "tower-ds", "viettel"),
    ]
    paths: list[dict[str, Any]] = [
        {
            "path": path,
            "media": media,
            "srlg": [srlg],
            "provider": provider,
            "probes": 2,
            "timeout_s": 2,
            "target": {"host": "127.0.0.1", "port": port},
        }
        for (path, media, srlg, provider), port in zip(declared, ports, strict=True)
    ]
    return Agent(
        SiteConfig.model_validate(
            {
                "site": PROBE_SITE,
                "province": "hp",
                "kind": "meeting_point",
                "name": "Điểm cầu đo thử Đồ Sơn",
                "operator": "vnpt",
                "area": "do-son",
                "latitude": 20.72,
                "longitude": 106.78,
                "interval_s": INTERVAL_S,
                "broker": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
                "outbox": {"path": str(workdir / f"{PROBE_SITE}.sqlite")},
                "disk_path": str(workdir),
                "paths": paths,
                "throughput": {"url": api_url, "max_bytes": 200_000, "max_s": 2},
            }
        )
    )


async def _storm(
    fleet: Fleet, collector: Collector, broker_url: str, workdir: Path
) -> tuple[datetime, str]:
    assert collector.api is not None
    api = collector.api.url
    servers = [await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0) for _ in "ab"]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    agents = {s.site: _simulated_agent(s, broker_url, workdir) for s in fleet.sites}
    probe = _probe_agent(broker_url, api, ports, workdir)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop, poll=False)) for a in agents.values()]
    tasks.append(asyncio.create_task(probe.run(stop)))
    started = time.monotonic()
    peak, most_off_mains = datetime.now(UTC), -1
    meeting = ""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=f"{api}/api/v1", headers=headers) as http:
            while (elapsed := time.monotonic() - started) < RUN_S + SETTLE_S:
                fleet.advance_to(elapsed)
                for site in fleet.sites:
                    if not site.is_dark:  # a dark site's agent has no power: silence
                        await agents[site.site].poll_and_store()
                off_mains = sum(1 for s in fleet.sites if s.on_battery or s.is_dark)
                if off_mains > most_off_mains:
                    peak, most_off_mains = datetime.now(UTC), off_mains
                if not meeting and elapsed > RUN_S * 0.7:
                    await probe.test_bandwidth()  # its next reports carry the throughput
                    starts = datetime.now(UTC) + timedelta(hours=2)
                    body = {
                        "title": "Họp khẩn ứng phó bão số 3",
                        "starts_at": starts.isoformat(),
                        "duration_s": 3 * 3600,
                        "province": "hp",
                    }
                    planned = await http.post("/meetings", json=body)
                    meeting = planned.raise_for_status().json()["id"]
                    (await http.post(f"/meetings/{meeting}/rehearse")).raise_for_status()
                next_tick = started + (int(elapsed / INTERVAL_S) + 1) * INTERVAL_S
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            server.close()
    assert most_off_mains > 0, "the storm put no site off mains"
    return peak, meeting


BRIDGE_TOPIC = "kienco/brokers/hp/bridge"


def _retain(broker: Broker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="module")
def storm(
    mosquitto: Broker, influxdb: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StormRun]:
    workdir = tmp_path_factory.mktemp("dashboards-storm")
    database = influxdb.fresh_database("dashboards")
    scenario = load_scenario()
    fleet = Fleet(scenario, minutes_per_second=scenario.duration_min / RUN_S)
    inventory = workdir / "inventory.csv"
    _inventory(scenario, inventory)
    collector = Collector(
        CollectorConfig.model_validate(
            {
                "broker": {
                    "url": mosquitto.url,
                    "username": None,
                    "client_id": f"c-{database}",
                    "topic_filter": "kienco/v1/+/+/#",
                },
                "influx": {"url": influxdb.url, "database": database},
                "data_dir": str(workdir / "collector"),
                "inventory": str(inventory),
                "http": {"port": 0, "admin_token": {"value": TOKEN}, "anonymous_read": True},
                "status": {"sweep_s": 0.2},
            }
        ),
        policy=demo_policy(),
        risk_level=lambda province: fleet.risk_levels.get(province, 0),
    )
    # The storm's 48 h pass in 24 s: summaries every 2 s, not every minute (so the
    # per-minute sums of this run count each site up to 30 times; only shapes are checked).
    collector.summaries.fleet = SummaryClock(2)
    collector.summaries.compliance = SummaryClock(2)
    started = datetime.now(UTC)
    # hp's provincial bridge says it is up, as provincial-hp.conf's notification_topic makes
    # it say at the centre (retained): the collector's health carries it (bridge_up).
    _retain(mosquitto, BRIDGE_TOPIC, b"1")
    collector.start()
    try:
        assert collector.wait_connected(15)
        peak, meeting = asyncio.run(_storm(fleet, collector, mosquitto.url, workdir))
    finally:
        collector.stop()
        _retain(mosquitto, BRIDGE_TOPIC, b"")  # no other test's collector finds it
    # The shipped retention and continuous queries, applied; the trends backfilled by running
    # each continuous query's own SELECT … INTO over the run (InfluxDB runs it every 5 min).
    for statement in retention.statements(database):
        influxdb.query(database, statement)
    since = (started - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for select in retention.continuous_queries(database).values():
        influxdb.query(
            database, select.replace(" GROUP BY ", f" WHERE time >= '{since}' GROUP BY ")
        )
    yield StormRun(database, started, peak, datetime.now(UTC), meeting, scenario)
    influxdb.drop_database(database)


@pytest.fixture(scope="module")
def influx(influxdb: InfluxServer, storm: StormRun) -> Iterator[Influx]:
    client = Influx(influxdb.url, storm.database)
    yield client
    client.close()


DASHBOARDS = {b.uid: b for b in build.build_all()}


def _check(outcome: Outcome, *, strict: bool) -> list[str]:
    """What is wrong with one query's answer, for its panel."""
    check, expect = outcome.check, outcome.check.expect
    where = f"{check.dashboard} #{check.panel_id} {check.panel!r} {check.ref_id}"
    if outcome.error is not None:
        return [f"{where}: {outcome.error}\n  sent: {outcome.sent}"]
    problems = []
    if not outcome.series:
        return [f"{where}: no series\n  sent: {outcome.sent}"] if strict else []
    for series in outcome.series:
        missing = [c for c in expect.columns if c not in series.columns]
        if missing:
            problems.append(f"{where}: columns {missing} missing from {series.columns}")
        untagged = [t for t in expect.tags if t not in series.tags]
        if untagged:
            problems.append(f"{where}: series not keyed by {untagged}: {series.tags}")
        if expect.single and len(series.values) != 1:
            problems.append(f"{where}: {len(series.values)} rows in a one-value series")
        if not series.values:
            problems.append(f"{where}: a series without rows")
    if strict:
        for column in expect.columns:
            if column in expect.sparse:
                continue
            values = [v for s in outcome.series if column in s.columns for v in s.column(column)]
            if all(v is None for v in values):
                problems.append(f"{where}: no value at all in column {column!r}")
    return problems


def _run(
    built: Built, influx: Influx, span: TimeRange, choose: dict[str, list[str]] | None = None
) -> list[Outcome]:
    return opened(built, influx, span, choose=choose)


@pytest.mark.parametrize("rp", [retention.RAW, retention.TREND])
@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_query_with_all_selected_returns_what_its_panel_shows(
    uid: str, rp: str, influx: Influx, storm: StormRun
) -> None:
    built = DASHBOARDS[uid]
    # "All" everywhere, except the kind a dashboard opens on (meeting points for provinces);
    # the time series on raw points, then on the 5-minute trends
    outcomes = _run(built, influx, TimeRange.last(timedelta(hours=6)), {"rp": [rp]})
    assert len(outcomes) == len(built.checks) > 0
    problems = [p for outcome in outcomes for p in _check(outcome, strict=True)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_sparse_columns_fill_at_the_storms_peak(uid: str, influx: Influx, storm: StormRun) -> None:
    """Time to dark is empty once every site is back on mains: look when most were not (and
    up to two summaries after: the per-minute ``attention`` list, every 2 s here, is stamped
    at its slot)."""
    built = DASHBOARDS[uid]
    sparse = [c for c in built.checks if c.expect.sparse]
    span = TimeRange(storm.started - timedelta(minutes=1), storm.peak + timedelta(seconds=5))
    for outcome in opened(built, influx, span, checks=sparse):
        assert outcome.error is None, outcome.error
        for column in outcome.check.expect.sparse:
            values = [v for s in outcome.series for v in s.column(column)]
            assert any(v is not None for v in values), (outcome.check.panel, column)


SELECTIONS: dict[str, dict[str, list[str]]] = {
    "one-province": {"province": ["hp"]},
    "two-provinces-two-operators": {"province": ["hp", "qn"], "operator": ["vnpt", "viettel"]},
    "one-site": {"province": ["hp"], "site": [PROBE_SITE]},
}


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_variables_one_or_several_values_filter_every_query(
    uid: str, selection: str, influx: Influx, storm: StormRun
) -> None:
    built = DASHBOARDS[uid]
    names = {v["name"] for v in built.json["templating"]["list"]}
    choose = {k: v for k, v in SELECTIONS[selection].items() if k in names}
    if uid == "kienco-ministry" and selection == "one-site":
        choose["site"] = ["hp-bts-do-son"]  # the probe agent is no hardened station
    if "site" in choose and "kind" in names and choose["site"] == [PROBE_SITE]:
        choose["kind"] = ["meeting_point"]
    outcomes = _run(built, influx, TimeRange.last(timedelta(hours=6)), choose)
    problems = [p for outcome in outcomes for p in _check(outcome, strict=False)]
    assert not problems, "\n".join(problems)
    answered = [o for o in outcomes if o.series]
    assert len(answered) >= len(outcomes) // 2, "most panels must show something"
    for outcome in answered:  # what came back is what was chosen
        for key in ("province", "site", "operator"):
            if key in choose:
                for series in outcome.series:
                    shown = _values(series, key)
                    assert shown <= set(choose[key]), (outcome.check.panel, key, shown)


# Per-site measurements the agents' messages write (collector/points.py), and those the
# collector writes of a site (its verdict, its attention, its rehearsal).
DATA_MEASUREMENTS = ('"link"', '"power"', '"host"', '"agent_state"', '"rehearsal"')


@pytest.mark.parametrize(
    ("uid", "choose"),
    [
        ("kienco-noc", {"operator": ["viettel"]}),
        ("kienco-system", {"operator": ["mobifone"]}),
        ("kienco-province", {"operator": ["vnpt"], "kind": ["meeting_point"]}),
        ("kienco-noc", {"kind": ["power_room"]}),
    ],
)
def test_data_panels_filter_by_operator_and_kind_on_their_own_tags(
    uid: str, choose: dict[str, list[str]], influx: Influx, storm: StormRun
) -> None:
    """ "All" sites is ``.*``, not the list of sites found: a panel on the agents' points
    finds the operator and kind on the points themselves (``site_tags``). Untagged points
    would leave these panels empty; points of other operators or kinds would show."""
    built = DASHBOARDS[uid]
    site_var = next(v for v in built.json["templating"]["list"] if v["name"] == "site")
    assert site_var["allValue"] == ".*"
    operator_of = {s.site: s.operator for s in storm.scenario.sites} | {PROBE_SITE: "vnpt"}
    kind_of = {s.site: s.kind for s in storm.scenario.sites} | {PROBE_SITE: "meeting_point"}
    data = [
        c
        for c in built.checks
        if any(f"FROM {m}" in c.query or f'."{m[1:]}' in c.query for m in DATA_MEASUREMENTS)
    ]
    assert data, f"{uid} has no panel on per-site points"
    outcomes = _run(built, influx, TimeRange.last(timedelta(hours=6)), choose)
    shown: set[str] = set()
    for outcome in outcomes:
        if outcome.check not in data:
            continue
        assert outcome.error is None, outcome.error
        for series in outcome.series:
            shown |= _values(series, "site")
    assert shown, f"{uid}: no per-site panel shows a site for {choose}"
    for site in shown:
        assert operator_of[site] in choose.get("operator", [operator_of[site]]), site
        assert kind_of[site] in choose.get("kind", [kind_of[site]]), site


def test_trends_fold_raw_points_so_the_same_query_reads_both(
    influx: Influx, storm: StormRun
) -> None:
    """The 5-minute trend of each folded field is what the panels take of the raw points."""
    series, error, _ = influx.query("SHOW CONTINUOUS QUERIES")
    assert error is None
    names = {str(v) for s in series if s.name == storm.database for v in s.column("name")}
    assert names == set(retention.continuous_queries(storm.database))
    policies, _, _ = influx.query(f'SHOW RETENTION POLICIES ON "{storm.database}"')
    durations = {row[0]: row[1] for s in policies for row in s.values}
    assert durations == {"autogen": "840h0m0s", "trend": "9600h0m0s"}
    checks = [
        ('max("state_code")', "readiness", '"site"'),
        ('mean("fuel_pct")', "power", '"site", "device"'),
        ('max("loss_pct")', "link", '"site", "path"'),
        ('sum("up_battery")', "fleet", '"province", "kind", "operator"'),
        ('sum("compliant")', "compliance", '"province", "area"'),
        ('sum("missing")', "compliance_province", '"province"'),
    ]
    since = (storm.started - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for aggregate, measurement, keys in checks:
        field = aggregate.split('"')[1]
        raw, error, _ = influx.query(
            f'SELECT {aggregate} FROM "autogen"."{measurement}" WHERE time >= \'{since}\' '
            f"GROUP BY time(5m), {keys} fill(none)"
        )
        assert error is None and raw, measurement
        folded, error, _ = influx.query(
            f'SELECT "{field}" FROM "trend"."{measurement}" WHERE time >= \'{since}\' '
            f"GROUP BY {keys}"
        )
        assert error is None
        as_raw = {(tuple(sorted(s.tags.items())), r[0]): r[1] for s in raw for r in s.values}
        as_trend = {(tuple(sorted(s.tags.items())), r[0]): r[1] for s in folded for r in s.values}
        assert as_trend == pytest.approx(as_raw), measurement


def _values(series: Any, key: str) -> set[str]:
    if key in series.tags:
        return {series.tags[key]} - {""}
    return {str(v) for v in series.column(key)} - {"None", ""} if key in series.columns else set()


def test_the_run_wrote_what_the_issue_asks_for(influx: Influx, storm: StormRun) -> None:
    """A few facts behind the panels, checked directly: throughput was measured, the meeting
    is ahead, rehearsals came back, coordinates are there, compliance was judged per area."""
    queries = {
        "throughput": 'SELECT count("bandwidth_down_mbps") FROM "link"',
        "meeting": f'SELECT "title" FROM "meeting" WHERE "meeting" = \'{storm.meeting}\' '
        "AND time > now()",
        "rehearsals": 'SELECT count("passed") FROM "rehearsal"',
        "coordinates": 'SELECT count("latitude") FROM "readiness"',
        "areas": 'SHOW TAG VALUES FROM "compliance" WITH KEY = "area"',
    }
    for what, query in queries.items():
        series, error, _ = influx.query(query)
        assert error is None and series and series[0].values, what
    storm_areas = {s.area for s in storm.scenario.sites if s.hardened and s.kind == "station"}
    series, _, _ = influx.query('SHOW TAG VALUES FROM "compliance" WITH KEY = "area"')
    assert storm_areas <= {v for s in series for v in s.column("value")}
