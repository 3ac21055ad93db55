"""The what-if forecast (rules/whatif.py): mains forced off in a province at a given time.

Tables of sites built the collector's way, the forecast checked against the Yagi
simulation it forecasts, and the same through the collector's API and ``kienco whatif``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from collector.config import CollectorConfig
from collector.inventory import InventorySite, inventory_meta
from collector.service import Collector
from collector.whatif_route import WHATIF_JSON
from contract.topics import topic as topic_of
from contract.wire import SiteKind
from kienco.cli import main as kienco_main
from kienco.demo.scenario import load_scenario
from kienco.demo.simulator import Fleet
from kienco.demo.whatif_check import INTERVAL_S, compare
from kienco.whatif_view import exit_status, render
from rules import Policy, SiteSnapshot
from rules.engine import evaluate
from rules.whatif import forecast, within_tolerance
from tests.support.mosquitto import Broker
from tests.test_rules_support import NOW, clock_behind, genset, on_battery, snap, two_paths, ups

POLICY = Policy.model_validate({"meeting": {"devices": []}})
AT = NOW + timedelta(hours=1)  # mains fail an hour from now


def site(
    name: str,
    *,
    kind: SiteKind = "station",
    area: str = "do-son",
    hardened: bool = False,
    **kwargs: Any,
) -> SiteSnapshot:
    """``snap()``'s site renamed, in area ``area`` of province hai-phong."""
    s = snap(kind, hardened=hardened, site_class="hardened" if hardened else "ordinary", **kwargs)
    assert s.meta is not None
    named = s.meta.model_copy(update={"site": name, "area": area, "name": f"Trạm {name}"})
    return SiteSnapshot(
        site=name,
        province=s.province,
        meta=named,
        online=s.online,
        state_at=s.state_at,
        last_report_at=s.last_report_at,
        last_seen_at=s.last_seen_at,
        power=s.power,
        links=s.links,
    )


def generator(fuel_h: float) -> Any:
    return genset(fuel_l=fuel_h * 2.0, fuel_burn_l_per_h=2.0)


def test_each_site_goes_dark_by_its_own_clock() -> None:
    fleet = [
        site("mains-5h", power=[ups(battery_runtime_s=5 * 3600.0)], links=two_paths()),
        site(
            "mains-gen",
            power=[ups(battery_runtime_s=3600.0), generator(10)],
            links=two_paths(),
            generator_declared=True,
        ),
        site("battery-2h", power=[on_battery(runtime_s=2 * 3600.0 + 30)], links=two_paths()),
        site("dark", power=[on_battery(runtime_s=0.0, battery_status="depleted")]),
        site("silent", power=[ups()], at=NOW - timedelta(minutes=30)),
        site("no-power-data", links=two_paths()),
    ]
    w = forecast(fleet, POLICY, NOW, province=fleet[0].province, at=AT, hours=12)
    by = {s.site: s for s in w.sites}
    assert by["mains-5h"].dark_at == AT + timedelta(hours=5)  # from when mains fail
    assert by["mains-5h"].basis == "battery"
    assert by["mains-gen"].dark_at == AT + timedelta(hours=11)  # generator assumed to start
    assert by["mains-gen"].basis == "battery+generator"
    assert by["battery-2h"].dark_at == NOW + timedelta(hours=2)  # already off: its own clock
    assert by["dark"].dark_at == NOW and by["dark"].basis == "dark"
    assert by["silent"].dark_at is None and by["silent"].basis == "silent"
    assert by["no-power-data"].dark_at is None and by["no-power-data"].basis == "no_power_data"
    assert [s.site for s in w.sites][:4] == ["dark", "battery-2h", "mains-5h", "mains-gen"]
    # dark by at + h: h = 0 sees "dark"; battery-2h is dark 1 h after mains fail; …
    assert w.dark_by_hour == (1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4)
    assert {s.site for s in w.dark_within()} == {"dark", "battery-2h", "mains-5h", "mains-gen"}
    shorter = forecast(fleet, POLICY, NOW, province=fleet[0].province, at=AT, hours=6)
    assert {s.site for s in shorter.dark_within()} == {"dark", "battery-2h", "mains-5h"}


@pytest.mark.parametrize(
    ("power", "basis"),
    [
        ([ups(battery_runtime_s=3600.0)], "battery"),
        ([ups(battery_runtime_s=3600.0), generator(10)], "battery+generator"),
        # no battery at all: its time is the generator's fuel alone (it read "battery +
        # generator", a UPS that is not there)
        ([genset(fuel_l=20.0, fuel_burn_l_per_h=2.0, mains_present=True)], "generator"),
    ],
)
def test_the_basis_names_the_sources_counted(power: list[Any], basis: str) -> None:
    one = site("s", power=power, links=two_paths(), generator_declared=len(power) > 1)
    (forecast_site,) = forecast([one], POLICY, NOW, province=one.province, at=AT).sites
    assert forecast_site.basis == basis


def test_a_time_in_the_past_is_now_and_bad_arguments_say_so() -> None:
    one = [site("a", power=[ups(battery_runtime_s=3600.0)], links=two_paths())]
    w = forecast(one, POLICY, NOW, province=one[0].province, at=NOW - timedelta(hours=3))
    assert w.at == NOW and w.sites[0].dark_at == NOW + timedelta(hours=1)
    with pytest.raises(ValueError, match="hours"):
        forecast(one, POLICY, NOW, province="x", hours=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        forecast(one, POLICY, NOW.replace(tzinfo=None), province="x")


def test_meeting_points_hold_a_meeting_or_say_why_not() -> None:
    points = [
        site(
            "dc-holds",
            kind="meeting_point",
            power=[ups(battery_runtime_s=1800.0), generator(20)],
            links=two_paths(),
            generator_declared=True,
        ),
        site(
            "dc-short",
            kind="meeting_point",
            power=[ups(battery_runtime_s=1800.0), generator(2)],
            links=two_paths(),
            generator_declared=True,
        ),
    ]
    w = forecast(points, POLICY, NOW, province=points[0].province, at=AT, meeting_s=3 * 3600)
    by = {m.site: m for m in w.meeting_points}
    assert by["dc-holds"].holds is True
    assert by["dc-short"].holds is False and by["dc-short"].verdict == "not_ready"
    [why] = [r for r in by["dc-short"].reasons if r.rule == "meeting"]
    assert why.code == "meeting_power_short"
    assert "2 giờ 30 phút" in why.text_vi  # battery + generator, if mains fail at the start
    assert [m.site for m in w.meeting_points] == ["dc-short", "dc-holds"]  # trouble first


# A policy whose level-4 step shortens the stale window for stations to 2 intervals.
TIGHT = Policy.model_validate(
    {"meeting": {"devices": []}, "risk": [{"min_level": 4, "stale_intervals": 2}]}
)


@pytest.mark.parametrize(
    ("name", "snapshot", "policy", "level"),
    [
        # its agent's clock proven 3 h behind: the verdict judges it in its own clock
        # (1 h 29 min of battery left); the forecast took its readings for 3 h old: dark now
        (
            "clock-behind",
            clock_behind(
                site("cb", power=[on_battery(runtime_s=5400.0)], links=two_paths()), 3 * 3600
            ),
            POLICY,
            0,
        ),
        (
            "clock-behind-on-mains",
            clock_behind(
                site("cm", power=[ups(battery_runtime_s=3600.0)], links=two_paths()), 3 * 3600
            ),
            POLICY,
            0,
        ),
        # silent for 150 s: stale at level 4 (2 intervals), so its verdict is unknown; the
        # forecast judged its freshness at level 0 and gave it a time to dark
        (
            "silent-at-level-4",
            site(
                "sl",
                power=[ups(battery_runtime_s=3600.0)],
                links=two_paths(),
                at=NOW - timedelta(seconds=150),
            ),
            TIGHT,
            4,
        ),
    ],
)
def test_a_site_is_forecast_from_what_its_verdict_judges(
    name: str, snapshot: SiteSnapshot, policy: Policy, level: int
) -> None:
    judged = evaluate(snapshot, policy, NOW, risk_level=level)
    w = forecast([snapshot], policy, NOW, province=snapshot.province, risk_level=lambda _p: level)
    (forecast_site,) = w.sites
    if judged.verdict == "unknown":
        assert forecast_site.dark_at is None and forecast_site.basis == "silent", name
        return
    assert judged.dark_in_s is not None or judged.backup_hours is not None, name
    if judged.dark_in_s is not None:  # off mains: its own clock, from now
        assert forecast_site.dark_at == NOW + timedelta(seconds=judged.dark_in_s), name
    else:  # on mains: its backup, from when mains fail
        assert judged.backup_hours is not None
        assert forecast_site.dark_at == w.at + timedelta(hours=judged.backup_hours), name


@dataclass(frozen=True)
class Listed:
    """An inventory row, as rules.compliance.ExpectedSite."""

    site: str
    area: str
    province: str = "hai-phong"
    kind: SiteKind = "station"
    hardened: bool = True
    name: str | None = None
    operator: str | None = None
    province_name: str | None = None
    area_name: str | None = "Huyện Thủy Nguyên"


def test_an_area_loses_all_its_hardened_stations_when_the_last_one_goes() -> None:
    def hardened(name: str, area: str, fuel_h: float) -> SiteSnapshot:
        return site(
            name,
            area=area,
            hardened=True,
            power=[ups(battery_runtime_s=3600.0), generator(fuel_h)],
            links=two_paths(),
            generator_declared=True,
        )

    fleet = [
        hardened("tn-1", "thuy-nguyen", 5),
        hardened("tn-2", "thuy-nguyen", 9),
        hardened("ds-1", "do-son", 5),
        hardened("ds-2", "do-son", 70),
        hardened("ca-1", "cat-hai", 2),
    ]
    listed = [Listed("ca-2", "cat-hai")]  # never reported: cannot be said to hold, or not
    w = forecast(fleet, POLICY, NOW, province="hai-phong", at=AT, hours=12, hardened_listed=listed)
    areas = {a.area: a for a in w.areas}
    assert areas["thuy-nguyen"].all_lost_at == AT + timedelta(hours=10)  # the last: 1 h + 9 h
    assert areas["thuy-nguyen"].stations == ("tn-1", "tn-2")
    assert areas["do-son"].all_lost_at is None and areas["do-son"].dark == 1
    assert areas["cat-hai"].all_lost_at is None and areas["cat-hai"].unknown == 1


@pytest.mark.parametrize(
    ("battery_h", "fuel", "dark", "unknown", "lost_h"),
    [
        # its generator's fuel is not reported: 1 h is what the battery alone gives, a
        # floor, not when it goes dark (the set may run for days): the area cannot be
        # said to lose it, nor to keep it
        (1.0, None, 0, 1, None),
        (1.0, 5.0, 1, 0, 7.0),  # fuel known: dark 6 h after mains fail (an hour from now)
        (13.0, None, 0, 0, None),  # the floor alone outlasts the horizon: it holds
    ],
)
def test_a_station_whose_time_is_only_a_floor_is_not_counted_lost(
    battery_h: float, fuel: float | None, dark: int, unknown: int, lost_h: float | None
) -> None:
    gen = genset(fuel_l=None) if fuel is None else generator(fuel)
    one = site(
        "tn-1",
        area="thuy-nguyen",
        hardened=True,
        power=[ups(battery_runtime_s=battery_h * 3600), gen],
        links=two_paths(),
        generator_declared=True,
    )
    w = forecast([one], POLICY, NOW, province=one.province, at=AT, hours=12)
    (area,) = w.areas
    assert (area.dark, area.unknown) == (dark, unknown)
    expected = None if lost_h is None else NOW + timedelta(hours=lost_h)
    assert area.all_lost_at == expected


@pytest.mark.parametrize(
    ("listed", "site_class", "areas"),
    [
        # the ministry's register lists it hardened; its own meta does not say so: it is
        # one of the area's hardened stations, forecast from its reports (it was counted
        # "cannot be forecast", and its area's loss at 08:00 never said)
        (True, "ordinary", {"thuy-nguyen": (1, 0, NOW + timedelta(hours=2))}),
        # its meta gives its class as hardened (compliance counts it so)
        (False, "hardened", {"thuy-nguyen": (1, 0, NOW + timedelta(hours=2))}),
        (False, "ordinary", {}),  # an ordinary station no register lists: no area of its own
    ],
)
def test_a_station_is_hardened_by_the_register_or_by_its_class(
    listed: bool, site_class: str, areas: dict[str, tuple[int, int, datetime]]
) -> None:
    s = snap(site_class=site_class, power=[ups(battery_runtime_s=3600.0)], links=two_paths())
    assert s.meta is not None and not s.meta.hardened
    meta = s.meta.model_copy(update={"site": "tn-1", "area": "thuy-nguyen"})
    one = dataclasses.replace(s, site="tn-1", meta=meta)
    register = [Listed("tn-1", "thuy-nguyen")] if listed else []
    w = forecast(
        [one], POLICY, NOW, province=one.province, at=AT, hours=12, hardened_listed=register
    )
    assert {a.area: (a.dark, a.unknown, a.all_lost_at) for a in w.areas} == areas


def test_the_forecast_taken_before_landfall_is_what_the_simulation_then_does() -> None:
    """Yagi: Quảng Ninh loses mains at minute 360, Hải Phòng at 420. Forecast from the
    fleet's reports at minute 300; then the simulation runs on."""
    qn = compare("qn", 360, hours=24, taken_minute=300)
    assert qn.predicted == qn.seen == {"qn-bts-cam-pha", "qn-bts-hoanh-bo"}
    assert all(row.within for row in qn.rows), qn.rows
    assert max(abs(row.error_s or 0) for row in qn.rows) <= 60  # the simulation's step

    hp = compare("hp", 420, hours=24, taken_minute=300)
    assert hp.predicted == hp.seen
    assert hp.seen == {"hp-bts-kien-an", "hp-bts-cat-hai", "hp-bts-thuy-nguyen", "hp-dc-cat-hai"}
    missed = {row.site for row in hp.rows if not row.within}
    # The scenario floods hp-dc-cat-hai's generator the minute mains fail: no forecast
    # taken before can know it (it assumed the set starts, and gave 19 h, not 2.5 h).
    assert missed == {"hp-dc-cat-hai"}
    # hp-bts-thuy-nguyen: the generator's 2-minute start, drawn from the battery.
    assert all(abs(row.error_s or 0) <= 5 * 60 for row in hp.rows if row.within)
    assert hp.whatif.areas[-1].area == "thuy-nguyen"
    assert hp.whatif.areas[-1].loses_all  # its one hardened station runs dry on day two


def _payload(
    *dark_in_h: float | None, holds: tuple[bool | None, ...] = (), area_unknown: int = 0
) -> dict[str, Any]:
    """An API answer: sites dark that many hours after ``at`` (None: cannot be forecast)."""
    at = NOW
    return {
        "at": at.isoformat(),
        "hours": 12,
        "sites": [
            {
                "site": f"s{n}",
                "dark_at": None if h is None else (at + timedelta(hours=h)).isoformat(),
            }
            for n, h in enumerate(dark_in_h)
        ],
        "meeting_points": [{"site": f"m{n}", "holds": h} for n, h in enumerate(holds)],
        "areas": [{"area": "a", "unknown": area_unknown}],
        "never_reported": [],
    }


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (_payload(20.0, 30.0, holds=(True,)), 0),  # every site outlasts the horizon
        (_payload(20.0, 5.0), 3),  # one goes dark
        (_payload(20.0, holds=(False,)), 3),
        (_payload(20.0, holds=(None,)), 3),  # a point that cannot be judged
        # a silent station, or one without power figures: not one that holds; 0 said
        # "nothing goes dark" to whoever scripts on it
        (_payload(20.0, None), 3),
        (_payload(None), 3),
        (_payload(20.0, area_unknown=1), 3),  # a listed hardened station never reported
    ],
)
def test_the_exit_status_is_0_only_when_every_site_is_known_to_hold(
    payload: dict[str, Any], status: int
) -> None:
    assert exit_status(payload) == status


def test_the_hourly_count_is_labelled_with_the_time_it_counts_to() -> None:
    """A 1.5 h horizon: the last row counts the sites dark by +1.5 h, and says so (it read
    "+2h" and the clock half an hour later than what it counted to)."""
    one = [site("a", power=[ups(battery_runtime_s=5400.0)], links=two_paths())]
    w = forecast(one, POLICY, NOW, province=one[0].province, at=AT, hours=1.5)
    assert w.dark_by_hour == (0, 0, 1)
    payload = json.loads(WHATIF_JSON.dump_json(w))
    console = Console(record=True, width=200)
    render(payload, "en", console)
    lines = [line for line in console.export_text().splitlines() if "h " in line and "+" in line]
    rows = [[cell for cell in line.split() if cell not in "│┃"] for line in lines]
    # AT is 07:00 UTC: 14:00 in Vietnam
    assert [row[:3] for row in rows] == [
        ["+0h", "14:00", "0"],
        ["+1h", "15:00", "0"],
        ["+1.5h", "15:30", "1"],
    ]


def _rendered(w: Any, lang: str) -> str:
    payload = json.loads(WHATIF_JSON.dump_json(w))
    console = Console(record=True, width=200)
    render(payload, lang, console)  # type: ignore[arg-type]
    return console.export_text()


def test_a_time_that_is_only_a_floor_is_not_counted_dark_by_the_hour() -> None:
    """A station whose set reports no fuel lasts at least its battery's hour: it may run
    for days. It was counted dark at +1 h in the hourly count and listed among the sites
    dark within the horizon; it is counted apart, as not known, and the table says so."""
    fleet = [
        site("known-2h", power=[ups(battery_runtime_s=2 * 3600.0)], links=two_paths()),
        site(
            "floor-1h",
            power=[ups(battery_runtime_s=3600.0), genset(fuel_l=None)],
            links=two_paths(),
            generator_declared=True,
        ),
    ]
    w = forecast(fleet, POLICY, NOW, province=fleet[0].province, at=AT, hours=3)
    assert w.dark_by_hour == (0, 0, 1, 1)
    assert w.floor_by_hour == (0, 1, 1, 1)
    assert [s.site for s in w.dark_within()] == ["known-2h"]
    assert [s.site for s in w.floors_within()] == ["floor-1h"]
    en, vi = _rendered(w, "en"), _rendered(w, "vi")
    rows = [
        [cell for cell in line.split() if cell not in "│┃"]
        for line in en.splitlines()
        if "h " in line and line.lstrip("│┃ ").startswith("+")
    ]
    assert [row[:4] for row in rows] == [
        ["+0h", "14:00", "0", "+0"],
        ["+1h", "15:00", "0", "+1"],
        ["+2h", "16:00", "1", "+1"],
        ["+3h", "17:00", "1", "+1"],
    ]
    dark_table = en.split("Sites dark within")[1].split("May go dark")[0]
    assert "known-2h" in dark_table and "floor-1h" not in dark_table
    en, vi = " ".join(en.split()), " ".join(vi.split())
    assert "dark (cumulative); +N: sites whose time is only a floor" in en
    assert "thời gian chỉ là mức tối thiểu" in vi
    assert "May go dark, time not known: 1 site(s) last at least until" in en
    assert "floor-1h (at least until 15:00 07/09, battery + generator)" in en
    assert "Có thể mất nguồn, không rõ lúc nào: 1 trạm" in vi


def test_inventory_sites_that_never_reported_are_named() -> None:
    """The register lists an ordinary station that never reported: the forecast said
    nothing of it, and the NOC took the province as covered; it is named as never
    reported, cannot be forecast, and the exit status is not 0."""
    one = site("reports", power=[ups(battery_runtime_s=20 * 3600.0)], links=two_paths())
    register = [
        Listed("reports", "do-son", hardened=False),
        Listed("quiet-1", "do-son", hardened=False),
        Listed("quiet-2", "do-son", kind="meeting_point", hardened=False),
        Listed("qn-quiet", "ha-long", province="quang-ninh", hardened=False),
    ]
    w = forecast([one], POLICY, NOW, province=one.province, at=AT, hours=3, inventory=register)
    assert w.never_reported == ("quiet-1", "quiet-2")
    payload = json.loads(WHATIF_JSON.dump_json(w))
    assert exit_status(payload) == 3
    en, vi = (" ".join(_rendered(w, lang).split()) for lang in ("en", "vi"))
    assert "2 site(s) never reported, cannot be forecast: quiet-1, quiet-2" in en
    assert "2 trạm chưa từng báo cáo, không dự báo được: quiet-1, quiet-2" in vi


def test_a_site_seeded_from_the_register_is_never_reported_not_silent() -> None:
    """The collector seeds every inventory site with its meta: one never heard from was
    said "silent" (mất liên lạc), a site that reported and went quiet; it never reported."""
    item = InventorySite.model_validate(
        {
            "site": "quiet-1",
            "kind": "station",
            "province": "hai-phong",
            "area": "do-son",
            "hardened": False,
        }
    )
    seeded = SiteSnapshot(site="quiet-1", province="hai-phong").with_meta(inventory_meta(item, 60))
    w = forecast([seeded], POLICY, NOW, province="hai-phong", at=AT, hours=3, inventory=[item])
    (one,) = w.sites
    assert (one.basis, one.dark_at, w.never_reported) == ("never_reported", None, ())
    en = " ".join(_rendered(w, "en").split())
    assert "1 site(s) never reported, cannot be forecast: quiet-1" in en
    assert "silent" not in en and "Cannot forecast" not in en


def test_a_battery_of_unknown_runtime_beside_a_known_one_is_no_site_that_holds() -> None:
    """ups1 gives 20 h, ups2's runtime is a vendor cap with no model: the site's hours are
    its weakest battery's, so 20 h is the most it lasts. It was said "still powered" past a
    12 h horizon; it is said to last at most that long, and not counted as holding."""
    two = [ups(battery_runtime_s=20 * 3600.0), ups("ups2", battery_runtime_s=65_535, load_pct=50)]
    fleet = [
        site("ceiling-20h", power=two, links=two_paths(), hardened=True, area="do-son"),
        site("ceiling-2h", power=[ups(battery_runtime_s=7200.0), two[1]], links=two_paths()),
        site("holds-20h", power=[ups(battery_runtime_s=20 * 3600.0)], links=two_paths()),
    ]
    w = forecast(fleet, POLICY, NOW, province=fleet[0].province, at=AT, hours=12)
    by = {s.site: s for s in w.sites}
    assert (by["ceiling-20h"].upper_bound, by["holds-20h"].upper_bound) == (True, False)
    # dark by +2 h at the latest: counted dark by then (it may go sooner)
    assert w.dark_by_hour[2] == 1
    (area,) = w.areas
    assert (area.dark, area.unknown, area.all_lost_at) == (0, 1, None)
    # without the site dark within the horizon: not "all hold" (it exited 0)
    rest = [f for f in fleet if f.site != "ceiling-2h"]
    alone = forecast(rest, POLICY, NOW, province=fleet[0].province, at=AT, hours=12)
    assert exit_status(json.loads(WHATIF_JSON.dump_json(alone))) == 3
    en, vi = (" ".join(_rendered(w, lang).split()) for lang in ("en", "vi"))
    assert "1 site(s) still powered at" in en  # holds-20h alone
    assert "May go dark sooner, time not known: 1 site(s) last at most until" in en
    assert "ceiling-20h (at most until 10:00 08/09" in en
    assert "≤: dark by then at the latest (a battery of unknown runtime may go first)" in en
    assert "Có thể mất nguồn sớm hơn, không rõ lúc nào: 1 trạm" in vi


def test_the_tolerance() -> None:
    since = NOW
    assert within_tolerance(NOW + timedelta(hours=2, minutes=14), NOW + timedelta(hours=2), since)
    assert not within_tolerance(
        NOW + timedelta(hours=2, minutes=16), NOW + timedelta(hours=2), since
    )
    # 5 % of a 10 h run is 30 min
    assert within_tolerance(NOW + timedelta(hours=10, minutes=29), NOW + timedelta(hours=10), since)


# --- the API and the CLI over a collector fed the Yagi fleet


class SimClock:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def __call__(self) -> datetime:
        return self.fleet.sim_time.astimezone(UTC)


@pytest.fixture
def yagi_collector(tmp_path: Path, mosquitto: Broker) -> Iterator[tuple[Collector, Fleet]]:
    """A collector on the simulation's clock, fed the fleet's reports up to minute 300."""
    fleet = Fleet(load_scenario())
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": "c-whatif",
                "topic_filter": "kienco/v1/none/none/#",  # fed by hand below
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0, "anonymous_read": True},
        }
    )
    collector = Collector(config, clock=SimClock(fleet))
    collector.start()
    seq = 0
    for minute in range(280, 301):
        fleet.advance_to_minute(minute)
        now = fleet.sim_time
        for s in fleet.sites:
            if s.is_dark or not s.is_reachable:
                continue
            seq += 1
            for message in (s.meta(now, INTERVAL_S), s.report(seq, now, INTERVAL_S)):
                topic = topic_of(s.province, s.site, message.kind)
                collector.handle(topic, message.model_dump_json().encode(), 0, 0)
    yield collector, fleet
    collector.stop()


def test_the_api_and_the_cli_forecast_from_the_collectors_sites(
    yagi_collector: tuple[Collector, Fleet],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the tables, unwrapped
    collector, fleet = yagi_collector
    assert collector.api is not None
    url = collector.api.url
    at = (fleet.scenario.start + timedelta(minutes=360)).isoformat()  # 12:00, 7 Sep
    answer = httpx.get(
        f"{url}/api/v1/whatif/grid-off",
        params={"province": "qn", "at": at, "hours": 12, "meeting_s": 3 * 3600},
    )
    assert answer.status_code == 200
    body = answer.json()
    until = datetime.fromisoformat(at) + timedelta(hours=12)
    dark = [
        s["site"]
        for s in body["sites"]
        if s["dark_at"] and datetime.fromisoformat(s["dark_at"]) <= until
    ]
    assert dark == ["qn-bts-cam-pha", "qn-bts-hoanh-bo"]
    assert body["dark_by_hour"][6:9] == [0, 1, 1]  # cam-pha at 18:51, between +6 h and +7 h
    assert {m["site"]: m["holds"] for m in body["meeting_points"]} == {
        "qn-dc-duong-huy": True,
        "qn-dc-tinh": True,
    }
    bad = httpx.get(f"{url}/api/v1/whatif/grid-off", params={"province": "qn", "hours": "x"})
    assert bad.status_code == 400 and "hours='x' is not a number" in bad.json()["error"]
    naive = httpx.get(
        f"{url}/api/v1/whatif/grid-off", params={"province": "qn", "at": "2024-09-07T12:00"}
    )
    assert naive.status_code == 400 and "has no offset" in naive.json()["error"]
    nowhere = httpx.get(f"{url}/api/v1/whatif/grid-off", params={"province": "zz"})
    assert nowhere.status_code == 404 and "hn, hp, qn" in nowhere.json()["error"]

    args = ["whatif", "--province", "qn", "--grid-off", "--at", at, "--hours", "12"]
    assert kienco_main([*args, "--meeting", "3h", "--json", "--url", url]) == 3
    printed = json.loads(capsys.readouterr().out)
    assert printed["meeting_s"] == 3 * 3600 and printed["province"] == "qn"

    assert kienco_main([*args, "--lang", "en", "--url", url]) == 3
    table = " ".join(capsys.readouterr().out.split())
    assert "What if: mains fail across province qn at 12:00 07/09/2024 (Vietnam time)" in table
    assert "qn-bts-cam-pha" in table and "18:51 07/09" in table and "6 h 51 min" in table
    assert "Meeting points that hold a 4 h meeting from 12:00: 2/2" in table  # the policy's
    assert "Areas losing all their hardened stations within 12 h: none" in table

    assert kienco_main([*args, "--url", url]) == 3
    table = " ".join(capsys.readouterr().out.split())
    assert "Giả định: mất điện lưới toàn tỉnh qn từ 12:00 07/09/2024 (giờ Việt Nam)" in table
    assert "Trạm BTS Cẩm Phả" in table and "ắc quy" in table

    assert kienco_main(["whatif", "--province", "zz", "--grid-off", "--url", url]) == 4
    assert "the collector knows: hn, hp, qn" in capsys.readouterr().err


def test_mains_gone_with_the_generator_unread_is_no_forecast_of_generator_hours() -> None:
    """It was forecast 'on generator', dark when its fuel ran out (80 h on), while
    nothing said the generator ran: the site may be on a battery running out."""
    unread = genset(generator_running=None, mains_present=False, fuel_l=160.0)
    fleet = [site("gen-unread", power=[unread], links=two_paths(), generator_declared=True)]
    (only,) = forecast(fleet, POLICY, NOW, province=fleet[0].province, at=AT, hours=12).sites
    assert (only.power_now, only.basis, only.dark_at) == ("unknown", "no_power_data", None)
