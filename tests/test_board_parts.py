"""The board's pure parts: the overview's tallies and order, the charts' gaps, the change log
and a page's stream (what it is told, what it is not, what a laggard gets, when it ends)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from collector.board import stream as stream_module
from collector.board.charts import chart
from collector.board.live import Changes
from collector.board.render import Renderer
from collector.board.stream import MIN_GAP_S, events
from collector.board.views import overview, site_view
from contract.wire import Status
from plumbing.labels import Lang
from rules import evaluate, load_policy, to_status
from tests.test_rules_support import NOW as RULES_NOW
from tests.test_rules_support import clock_behind, on_battery, snap, two_paths

NOW = datetime(2026, 9, 7, 5, 0, tzinfo=UTC)


def status(
    site: str, province: str, kind: str, verdict: str, state: str, dark_in_s: float | None = None
) -> Status:
    return Status.model_validate(
        {
            "site": site,
            "province": province,
            "site_kind": kind,
            "verdict": verdict,
            "station_state": state,
            "evaluated_at": NOW - timedelta(minutes=10),
            "dark_in_s": dark_in_s,
        }
    )


def test_the_overview_counts_each_province_and_puts_the_worst_first() -> None:
    statuses = [
        status("hp-dc-1", "hp", "meeting_point", "ready", "up_commercial"),
        status("hp-dc-2", "hp", "meeting_point", "not_ready", "up_battery"),
        # judged 10 min ago with 2 h 5 min left: 1 h 55 min now, within 2 h
        status("hp-bts-1", "hp", "station", "not_ready", "up_battery", dark_in_s=7500),
        status("hp-bts-2", "hp", "station", "degraded", "up_generator", dark_in_s=30 * 3600),
        status("hp-bts-3", "hp", "station", "not_ready", "down_power"),
        status("hp-pr-1", "hp", "power_room", "not_ready", "down_power"),  # not a station
        status("qn-dc-1", "qn", "meeting_point", "ready", "up_commercial"),
        status("qn-bts-1", "qn", "station", "not_ready", "up_battery", dark_in_s=3 * 3600),
        status("hn-bts-1", "hn", "station", "ready", "up_commercial"),
    ]
    lines = overview(statuses, {"qn": 4}, NOW)
    assert [line.province for line in lines] == ["hp", "qn", "hn"]
    hp, qn, hn = lines
    assert (hp.points_ready, hp.points, hp.stations) == (1, 2, 3)
    assert (hp.on_battery, hp.on_generator, hp.dark, hp.dark_soon) == (1, 1, 1, 1)
    assert (qn.on_battery, qn.dark_soon, qn.risk_level, hp.risk_level) == (1, 0, 4, 0)
    assert hn.points == 0 and hn.points_ready_share == 1.0


@pytest.mark.parametrize(
    ("case", "cut_off", "expected_first"),
    [
        # Yagi: a province "lost all communication" — every station silent at once
        ("every station silent", ["unknown"] * 3, "yb"),
        ("one station silent", ["unknown", "ready", "ready"], "yb"),
        ("nothing silent", ["ready"] * 3, "hp"),  # then one on battery is the worse
    ],
)
def test_a_province_whose_stations_fell_silent_is_counted_and_not_shown_as_quiet(
    case: str, cut_off: list[str], expected_first: str
) -> None:
    """A station not heard from may be dark: the overview counts it, and a province
    whose stations went silent is not sorted below one with a station on battery."""
    statuses = [status("hp-bts-1", "hp", "station", "degraded", "up_battery", 5 * 3600)]
    statuses += [
        status(f"yb-bts-{n}", "yb", "station", verdict, verdict_state(verdict))
        for n, verdict in enumerate(cut_off)
    ]
    lines = {line.province: line for line in overview(statuses, {}, NOW)}
    assert lines["yb"].silent == cut_off.count("unknown") and lines["hp"].silent == 0
    assert overview(statuses, {}, NOW)[0].province == expected_first
    page = Renderer().render("_overview.html", "en", lines=list(lines.values()), now=NOW)
    row = page[page.index('id="province-yb"') :]
    assert f'data-silent="{cut_off.count("unknown")}"' in row.split(">", 1)[0]
    assert "Stations not known (silent)" in page


@pytest.mark.parametrize(
    ("case", "site", "column"),
    [
        # a power room dark: what it feeds goes dark with it
        ("power room dark", ("yb-pr-1", "power_room", "not_ready", "down_power", None),
         "rooms_dark"),
        # up on power, every path down: out of service to the network (FCC DIRS: transport)
        ("station cut off", ("yb-bts-1", "station", "not_ready", "down_transport", None),
         "cut_off"),
        ("power room on battery", ("yb-pr-1", "power_room", "not_ready", "up_battery", 5 * 3600.0),
         "rooms_on_backup"),
        ("power room silent", ("yb-pr-1", "power_room", "unknown", "unknown", None),
         "rooms_silent"),
    ],
)  # fmt: skip
def test_power_rooms_and_stations_cut_off_are_counted_and_sorted_worst_first(
    case: str, site: tuple[str, str, str, str, float | None], column: str
) -> None:
    """A province whose power room is dark, or whose station is cut off from transport,
    is not shown healthier than one with a station on battery: each is counted in its
    column, under its header, and the province is sorted accordingly."""
    name, kind, verdict, state, dark_in_s = site
    statuses = [
        status("hp-bts-1", "hp", "station", "degraded", "up_battery", 5 * 3600),
        status("hp-bts-2", "hp", "station", "ready", "up_commercial"),
        status(name, "yb", kind, verdict, state, dark_in_s),
        status("yb-bts-9", "yb", "station", "ready", "up_commercial"),
    ]
    lines = overview(statuses, {}, NOW)
    yb = next(line for line in lines if line.province == "yb")
    counted = {
        c: getattr(yb, c) for c in ("cut_off", "rooms_dark", "rooms_on_backup", "rooms_silent")
    }
    assert counted == {c: int(c == column) for c in counted}
    assert (yb.dark, yb.on_battery, yb.silent) == (0, 0, 0)  # a power room is no station
    if column != "rooms_on_backup":  # out of service or not known: worse than on battery
        assert lines[0].province == "yb"
    headers: dict[Lang, dict[str, str]] = {
        "en": {
            "cut_off": "Stations cut off from transport",
            "rooms_dark": "Power rooms dark",
            "rooms_on_backup": "Power rooms on battery or generator",
            "rooms_silent": "Power rooms not known (silent)",
        },
        "vi": {
            "cut_off": "Trạm mất truyền dẫn (còn điện)",
            "rooms_dark": "Phòng nguồn mất nguồn",
            "rooms_on_backup": "Phòng nguồn chạy ắc quy/máy phát",
            "rooms_silent": "Phòng nguồn không rõ (mất liên lạc)",
        },
    }
    for lang, said in headers.items():
        header = said[column]
        page = Renderer().render("_overview.html", lang, lines=lines, now=NOW)
        assert f'<th scope="col">{header}</th>' in page
        row = page[page.index('id="province-yb"') :].split(">", 1)[0]
        attribute = "data-" + column.replace("_", "-")
        assert f'{attribute}="1"' in row
        assert 'class="alarm"' in row or column == "rooms_on_backup"


def test_a_power_room_or_station_cut_off_and_off_mains_is_dark_soon_when_it_is() -> None:
    """Cut off from transport and on battery with 30 min left: out of service now, and
    dark within 2 h (restoring its fibre will not keep it up)."""
    statuses = [
        status("hp-bts-1", "hp", "station", "not_ready", "down_transport", 1800),
        status("hp-pr-1", "hp", "power_room", "not_ready", "down_transport", 1800),
    ]
    [hp] = overview(statuses, {}, NOW)
    assert (hp.cut_off, hp.dark_soon) == (1, 1)  # judged 10 min ago: 20 min left
    assert (hp.rooms_on_backup, hp.rooms_dark_soon) == (1, 1)


def verdict_state(verdict: str) -> str:
    return "unknown" if verdict == "unknown" else "up_commercial"


def test_a_chart_breaks_its_line_where_data_is_missing() -> None:
    series = {"fibre": [(0.0, 10.0), (60.0, 20.0), (120.0, None), (180.0, 30.0), (240.0, 40.0),
                        (1000.0, 50.0)]}  # fmt: skip
    drawn = chart(series, start_s=0.0, end_s=1000.0, step_s=60.0, y_floor=10.0)
    (line,) = drawn.lines
    assert len(line.segments) == 3  # the None, then a 760 s silence, each break it
    assert line.last == 50.0 and drawn.y_max == 50.0
    left, top, right, bottom = drawn.plot
    first = [tuple(map(float, p.split(","))) for p in line.segments[0].split()]
    assert first[0] == (left, bottom - (bottom - top) * 10 / 50)
    lone = line.segments[2].split()
    assert lone[0] == lone[1] and float(lone[0].split(",")[0]) == right  # a dot, at the end
    assert chart({}, start_s=0, end_s=1, step_s=1).empty


def test_the_change_log_says_what_changed_since_and_when_it_no_longer_knows() -> None:
    changes = Changes(keep=3)
    for n in range(5):
        changes.site(f"hp-bts-{n}", "hp")
    assert changes.since(4) == (5, [("hp-bts-4", "hp")])
    assert changes.since(5) == (5, [])
    for n in range(5, 8):  # past twice its size: the oldest are dropped
        changes.site(f"hp-bts-{n}", "hp")
    assert changes.since(0) == (8, None)
    generation, kept = changes.since(4)
    assert generation == 8 and kept is not None and len(kept) == 4


async def read(stream: AsyncIterator[bytes], until: str, timeout_s: float = 5) -> str:
    text = ""
    async with asyncio.timeout(timeout_s):
        async for chunk in stream:
            text += chunk.decode()
            if until in text:
                return text
    return text


async def test_a_stream_tells_only_what_its_page_shows_in_one_event_per_burst() -> None:
    changes = Changes()
    stream = events(changes, lambda site, province: province == "hp", last_seen=None)
    opened = await read(stream, ": kienco board")
    assert opened.startswith("retry: ")

    async def storm() -> None:
        await asyncio.sleep(0.05)
        for site, province in [("qn-bts-1", "qn"), ("hp-bts-2", "hp"), ("hp-bts-1", "hp")]:
            changes.site(site, province)

    told, _ = await asyncio.gather(read(stream, "\n\n"), storm())
    first_at = time.monotonic()
    assert told.startswith("id: 3\nevent: changed\n")
    assert json.loads(told.split("data: ")[1]) == {"sites": ["hp-bts-1", "hp-bts-2"]}
    changes.site("qn-bts-2", "qn")  # nothing for this page: no event
    changes.site("hp-bts-3", "hp")
    assert '"sites":["hp-bts-3"]' in await read(stream, "\n\n")
    assert time.monotonic() - first_at >= MIN_GAP_S - 0.1  # a page is told at most so often
    changes.close()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_a_stream_far_behind_is_told_to_fetch_everything() -> None:
    changes = Changes(keep=2)
    for n in range(6):
        changes.site(f"hp-bts-{n}", "hp")
    stream = events(changes, lambda site, province: True, last_seen=1)  # reconnected late
    told = await read(stream, '{"all":true}')
    assert 'event: changed\ndata: {"all":true}' in told
    changes.close()


@pytest.mark.parametrize("ends_on", ["a keep-alive", "a change"])
async def test_a_stream_whose_session_ends_ends_having_told_nothing_more(
    monkeypatch: pytest.MonkeyPatch, ends_on: str
) -> None:
    monkeypatch.setattr(stream_module, "KEEPALIVE_S", 0.1)
    changes = Changes()
    signed_in = [True]
    stream = events(changes, lambda s, p: True, last_seen=None, still_reads=lambda: signed_in[0])
    assert "kienco board" in await read(stream, ": kienco board")
    assert await read(stream, ": keep-alive") == ": keep-alive\n\n"  # while it reads
    signed_in[0] = False
    if ends_on == "a change":
        changes.site("hp-bts-1", "hp")
    async with asyncio.timeout(2):
        rest = [chunk async for chunk in stream]
    assert rest == []  # no event, no keep-alive: ended


def test_a_site_judged_as_if_its_clock_were_right_shows_its_readings_times_set_right() -> None:
    """Its status says its last report came now; its devices and paths say the same, not
    3 h ago (what its agent stamped)."""
    right = snap(power=[on_battery()], links=two_paths())
    behind = clock_behind(right, 3 * 3600)
    judged = to_status(evaluate(behind, load_policy(), RULES_NOW), behind)
    assert judged.reasons[0].code == "clock_corrected"
    view = site_view(judged, behind)
    assert judged.last_report_at == right.last_report_at
    assert [d.at for d in view.devices] == [right.power["ups1"][1]]
    assert {p.at for p in view.paths} == {at for _, at in right.links.values()}
    # Its clock right: shown as it reported.
    plain = site_view(to_status(evaluate(right, load_policy(), RULES_NOW), right), right)
    assert [d.at for d in plain.devices] == [d.at for d in view.devices]


def test_a_path_reported_with_no_probe_sent_is_shown_unknown_and_not_counted_up() -> None:
    """The site page showed it "up" in green and the province page counted it among the
    paths up (2/2), while the rules count it unknown: nothing measured it."""
    fibre, microwave = two_paths()
    unprobed = microwave.model_copy(update={"probes_sent": 0, "rtt_ms": None, "loss_pct": None})
    site = snap(power=[on_battery()], links=[fibre, unprobed])
    judged = to_status(evaluate(site, load_policy(), RULES_NOW), site)
    view = site_view(judged, site)
    assert view.paths_up == 1
    assert {p.path: p.up for p in view.paths} == {"fo1": True, "mw1": None}
    page = Renderer().render("_site.html", "en", view=view, now=NOW, charts=None, hours=24)
    assert '<tr id="path-mw1" data-up="unknown">' in page
    assert '<tr id="path-fo1" data-up="true">' in page


def test_a_failed_bandwidth_test_is_said_on_the_site_page() -> None:
    fibre, microwave = two_paths()
    failed = fibre.model_copy(update={"bandwidth_error": "download: no answer within 5 s"})
    site = snap(power=[on_battery()], links=[failed, microwave])
    view = site_view(to_status(evaluate(site, load_policy(), RULES_NOW), site), site)
    page = Renderer().render("_site.html", "en", view=view, now=NOW, charts=None, hours=24)
    assert "download: no answer within 5 s" in page
