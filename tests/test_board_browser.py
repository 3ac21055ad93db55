"""The board in a real browser (Debian's Chromium), on a real collector fed by a real agent.

A meeting point's UPS (snmpsim) goes on battery: its row on the open province page
changes, with its reason, within 2 s of the verdict changing, with no reload. Then a
meeting is planned and rehearsed from the pages, and its rehearsal results appear on
the open meeting page. The page runs with no console error (a Content-Security-Policy
violation is one), a site named ``<img src=x onerror=alert(1)>`` shows those characters,
the site's page draws its last hours from InfluxDB, and screenshots at phone width
(360 px) and on a 1080p screen are saved in tests/output/board/.

When its verdicts cannot be believed the open page says so without a reload: the
collector's broker stopped (a broker of the test's own), the blind-collector banner
comes (pushed on the stream: the poll is set to an hour) and goes once it is back;
the collector stopped, or the network to it cut, the lost-contact banner comes and the
live part greys, and goes with the first fetch that succeeds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from agent.config import SiteConfig
from agent.runner import Agent
from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Status
from rules import Policy
from tests.support.board import token_entries
from tests.support.board_fleet import a_province, on_battery, on_mains, tell
from tests.support.browser import (
    DESKTOP,
    PHONE,
    chromium,
    open_page,
    screenshot_path,
    sign_in,
)
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.support.snmpsim import SnmpSim, snmp_set_many

UPS = "1.3.6.1.2.1.33.1"
ON_MAINS = {f"{UPS}.4.1.0": 3, f"{UPS}.2.2.0": 0, f"{UPS}.2.3.0": 48, f"{UPS}.3.3.1.3.1": 230}
ON_BATTERY = {f"{UPS}.4.1.0": 5, f"{UPS}.2.2.0": 120, f"{UPS}.2.3.0": 10, f"{UPS}.3.3.1.3.1": 0}
NO_HOLD = {"hold_s": 0}  # the flip itself is watched here (hysteresis has its own tests)
POLICY = Policy.model_validate(
    {
        "meeting": {"duration_s": 1800, "devices": [], **NO_HOLD},
        "backup_power": NO_HOLD,
        "multipath": NO_HOLD,
        "link_quality": NO_HOLD,
    }
)
if TYPE_CHECKING:
    from playwright.async_api import Route

T = TypeVar("T")
SITE = "hp-dc-ups"
EVIL = "<img src=x onerror=alert(1)>"
TOKENS = {"noc": "noc-token-for-the-browser-test", "admin": "admin-token-for-the-browser-t"}


class Verdicts:
    """When each verdict change left the collector (its on_status hook), by site."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, Status]] = []

    def __call__(self, status: Status) -> None:
        self.seen.append((time.time(), status))

    def first(self, site: str, verdict: str) -> tuple[float, Status] | None:
        return next(((t, s) for t, s in self.seen if s.site == site and s.verdict == verdict), None)


@pytest.fixture
def verdicts() -> Verdicts:
    return Verdicts()


def collector_config(
    tmp_path: Path, broker: Broker, influxdb: InfluxServer, **http: Any
) -> CollectorConfig:
    db = influxdb.fresh_database("board")
    return CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"c-{db}",
                "topic_filter": "kienco/v1/+/+/#",
            },
            "influx": {"url": influxdb.url, "database": db},
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0, "tokens": token_entries(TOKENS), **http},
            "status": {"sweep_s": 0.2},
        }
    )


@contextmanager
def running(config: CollectorConfig, **options: Any) -> Iterator[Collector]:
    """A collector started and connected; stopped at the end unless the test stopped it."""
    collector = Collector(config, policy=POLICY, **options)
    collector.start()
    assert collector.wait_connected(10)
    try:
        yield collector
    finally:
        if not collector.supervisor.stopping.is_set():
            collector.stop()


@pytest.fixture
def collector(
    tmp_path: Path, fresh_broker: Broker, influxdb: InfluxServer, verdicts: Verdicts
) -> Iterator[Collector]:
    with running(collector_config(tmp_path, fresh_broker, influxdb), on_status=verdicts) as c:
        yield c


def agent_config(tmp_path: Path, broker: Broker, snmpsim: SnmpSim, ports: list[int]) -> SiteConfig:
    community = snmpsim.community("ups-mib")
    paths = [
        {"path": path, "media": media, "srlg": [srlg], "probes": 2, "timeout_s": 3,
         "target": {"host": "127.0.0.1", "port": port}}
        for (path, media, srlg), port in zip(
            [("fibre-a", "fibre", "duct-1"), ("lte", "cellular", "tower-2")], ports, strict=True
        )
    ]  # fmt: skip
    return SiteConfig.model_validate(
        {
            "site": SITE,
            "province": "hp",
            "kind": "meeting_point",
            "name": "Điểm cầu UBND huyện Thủy Nguyên",
            "interval_s": 1,
            "broker": {"url": broker.url},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "disk_path": str(tmp_path),
            "paths": paths,
            "snmp_credentials": {"sim": {"community": {"value": community}}},
            "devices": [
                {
                    "device": "ups1",
                    "profile": "ups-mib",
                    "host": snmpsim.host,
                    "port": snmpsim.port,
                    "credentials": "sim",
                }
            ],
        }
    )


async def wait_for(check: Callable[[], T | None], what: str, timeout_s: float = 20) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


# Records, in the page, when the watched row first shows the verdict (Date.now(), ms).
WATCH_ROW = """([site, verdict]) => {
  window.__flipped = null;
  const seen = () => {
    const row = document.getElementById('site-' + site);
    if (!window.__flipped && row && row.dataset.verdict === verdict) {
      window.__flipped = Date.now();
    }
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true,
                                                     attributes: true});
  seen();
}"""


async def test_a_ups_on_battery_changes_the_open_page_and_a_meeting_is_rehearsed_from_it(
    tmp_path: Path,
    fresh_broker: Broker,
    snmpsim: SnmpSim,
    collector: Collector,
    verdicts: Verdicts,
) -> None:
    assert collector.api is not None
    url = collector.api.url
    a_province(collector, "hp")
    servers = [await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0) for _ in range(2)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    community = snmpsim.community("ups-mib")
    stop = asyncio.Event()
    agent = asyncio.create_task(
        Agent(agent_config(tmp_path, fresh_broker, snmpsim, ports)).run(stop)
    )
    try:
        await wait_for(lambda: verdicts.first(SITE, "degraded"), "the point judged")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            await sign_in(page, url, TOKENS["noc"], then="/provinces/hp")
            row = page.locator(f"#site-{SITE}")
            assert await row.get_attribute("data-verdict") == "degraded"
            await page.evaluate(WATCH_ROW, [SITE, "not_ready"])

            await snmp_set_many(snmpsim.host, snmpsim.port, community, ON_BATTERY)
            changed_at, status = await wait_for(
                lambda: verdicts.first(SITE, "not_ready"), "the verdict change"
            )
            await page.wait_for_function("() => window.__flipped !== null", timeout=10_000)
            shown_at = await page.evaluate("window.__flipped") / 1000
            print(f"the row changed {shown_at - changed_at:.3f} s after the verdict")
            assert shown_at - changed_at < 2.0, f"shown {shown_at - changed_at:.2f} s after"
            assert page.url == f"{url}/provinces/hp"  # no reload, no navigation
            text = await row.inner_text()
            assert "mất điện lưới: không có máy phát, ắc quy còn" in text, text
            assert "ắc quy" in await row.locator(".state").inner_text()
            assert status.station_state == "up_battery"

            await page.screenshot(path=screenshot_path("province-desktop"), full_page=True)
            await page.set_viewport_size(PHONE)
            await page.screenshot(path=screenshot_path("province-phone"), full_page=True)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide at 360 px"
            await page.goto(f"{url}/")
            await page.screenshot(path=screenshot_path("overview-phone"), full_page=True)
            await page.set_viewport_size(DESKTOP)
            await page.screenshot(path=screenshot_path("overview-desktop"), full_page=True)
            hp = page.locator("#province-hp")
            assert await hp.get_attribute("data-dark-soon") == "1"  # Kiến An: 1 h 20 min
            # A power room dark and a station powered but cut off from transport: each in
            # its column, the province's row in alarm, the page told live (no reload).
            assert await hp.get_attribute("data-rooms-dark") == "0"
            tell(collector, "hp-pr-le-chan", "hp", "power_room", "Phòng nguồn Lê Chân",
                 power=on_battery(0))  # fmt: skip
            tell(collector, "hp-bts-thuy-nguyen", "hp", "station", "Trạm BTS Thủy Nguyên",
                 power=on_mains(), links_up=(False, False))  # fmt: skip
            await page.wait_for_function(
                "() => document.getElementById('province-hp').dataset.roomsDark === '1'"
                " && document.getElementById('province-hp').dataset.cutOff === '1'",
                timeout=10_000,
            )
            heads = await page.inner_text("table.overview thead")
            assert "Phòng nguồn mất nguồn" in heads and "Trạm mất truyền dẫn" in heads, heads
            assert await hp.get_attribute("class") == "alarm"

            # A site named like markup shows as the characters it is.
            tell(collector, "hp-bts-evil", "hp", "station", EVIL)
            await page.goto(f"{url}/provinces/hp?lang=en")
            evil = page.locator("#site-hp-bts-evil th a")
            assert await evil.inner_text() == EVIL
            assert await page.locator("#site-hp-bts-evil img").count() == 0

            # An admin plans a meeting with this point, rehearses it, watches the results.
            await browser.clear_cookies()
            await sign_in(page, url, TOKENS["admin"], then="/meetings")
            await page.fill("#plan input[name=title]", "Họp khẩn ứng phó bão số 3")
            await page.fill("#plan textarea[name=points]", SITE)
            await page.click("#plan button[type=submit]")
            await page.wait_for_url(f"{url}/meetings/m-*")
            assert "0/1 điểm sẵn sàng" in await page.inner_text("#ready-of")  # Vietnamese again
            counts = page.locator("#rehearsal-counts")
            assert await counts.get_attribute("data-missing") == "1"
            meeting_url = page.url
            await page.click("#rehearse button[type=submit]")
            await page.wait_for_url(f"{meeting_url}?asked=1")
            await page.evaluate("window.__same_page = true")
            result = await page.wait_for_selector(
                f"#rehearsal-{SITE}", state="attached", timeout=15_000
            )
            assert result is not None
            assert await result.get_attribute("data-passed") == "true"  # paths up, no room
            assert await counts.get_attribute("data-missing") == "0"
            assert await page.evaluate("window.__same_page === true")  # live, not reloaded
            # The site's page: its last hours from InfluxDB, drawn on the server as SVG.
            await page.goto(f"{url}/sites/{SITE}")
            charts = page.locator("figure.chart")
            assert await charts.count() == 3
            assert await page.locator("figure.chart svg polyline").count() >= 3
            legend = await page.locator("ul.legend").all_inner_texts()
            assert any("fibre-a" in text for text in legend), legend
            assert "10 phút" in await page.inner_text("#live")  # the battery's runtime
            await page.screenshot(path=screenshot_path("site-desktop"), full_page=True)
            assert not problems, problems
    finally:
        await snmp_set_many(snmpsim.host, snmpsim.port, community, ON_MAINS)
        stop.set()
        await agent
        for server in servers:
            server.close()


# --- when the page cannot be believed -------------------------------------------------

LOST = re.compile(r"^Mất kết nối tới kienco từ (\d\d):(\d\d):(\d\d) — trang có thể đã cũ$")


def near_now_in_vietnam(shown: str, within_s: float = 30) -> bool:
    found = LOST.match(shown)
    if found is None:
        return False
    now = datetime.now(UTC) + timedelta(hours=7)
    h, m, s = (int(x) for x in found.groups())
    at = now.replace(hour=h, minute=m, second=s, microsecond=0)
    gap = abs((now - at).total_seconds())
    return min(gap, 86400 - gap) <= within_s


TRUST = "#trust [data-code=broker_disconnected]"


async def test_an_open_page_says_when_the_collector_is_blind_and_when_it_sees_again(
    tmp_path: Path, fresh_broker: Broker, influxdb: InfluxServer
) -> None:
    # An hour between polls: the banner must come with the stream's word, not a poll.
    config = collector_config(tmp_path, fresh_broker, influxdb, board_poll_s=3600)
    with running(config) as collector:
        assert collector.api is not None
        url = collector.api.url
        a_province(collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            await sign_in(page, url, TOKENS["noc"], then="/provinces/hp")
            assert await page.locator("#trust").count() == 0  # healthy: no banner
            await page.evaluate("window.__same_page = true")

            await asyncio.to_thread(fresh_broker.stop)
            stopped_at = time.monotonic()
            banner = await page.wait_for_selector(TRUST, timeout=10_000)
            print(f"the banner came {time.monotonic() - stopped_at:.2f} s after the broker stopped")
            assert banner is not None
            text = await banner.inner_text()
            since = collector.health().problems[0].since
            assert since is not None
            local = (since + timedelta(hours=7)).strftime("%H:%M")
            assert text.startswith(f"Collector mất kết nối tới broker MQTT từ {local} — "), text
            assert "các trạng thái dưới đây là của trước lúc đó" in text
            assert await page.locator("#site-hp-bts-kien-an").count() == 1  # still shown
            await page.screenshot(path=screenshot_path("province-blind"), full_page=True)

            await asyncio.to_thread(fresh_broker.start)
            await page.wait_for_selector("#trust", state="detached", timeout=15_000)
            assert await page.evaluate("window.__same_page === true")  # never reloaded
            assert page.url == f"{url}/provinces/hp"
            assert not problems, problems

            # The collector stopped: its stream ends and the fetch made at once fails; with
            # an hour between polls, only that can show it.
            lost, part = page.locator("#lost"), page.locator("#live")
            assert await lost.is_hidden()
            await asyncio.to_thread(collector.stop)
            stopped_at = time.monotonic()
            await lost.wait_for(state="visible", timeout=5_000)
            print(f"lost contact shown {time.monotonic() - stopped_at:.2f} s after the stop")
            assert near_now_in_vietnam(await lost.inner_text()), await lost.inner_text()
            assert "stale" in (await part.get_attribute("class") or "")
            assert await page.locator("#site-hp-bts-kien-an").count() == 1  # the last it got
            assert await page.evaluate("window.__same_page === true")
            # The failed fetches are console errors; no script error, nothing injected.
            assert not problems.exceptions and not problems.dialogs, problems


async def test_an_open_page_says_when_the_network_to_it_is_cut_and_greys_what_it_shows(
    tmp_path: Path, fresh_broker: Broker, influxdb: InfluxServer
) -> None:
    """Bound: within a poll (http.board_poll_s, 2 s here) and htmx's 10 s timeout: a silent
    network breaks no stream. (A collector gone: at once, the test above.)"""
    with running(collector_config(tmp_path, fresh_broker, influxdb, board_poll_s=2)) as collector:
        assert collector.api is not None
        url = collector.api.url
        a_province(collector, "hp")
        async with chromium(tmp_path / "profile") as browser:
            page, problems = await open_page(browser)
            await sign_in(page, url, TOKENS["noc"], then="/provinces/hp")
            lost, part = page.locator("#lost"), page.locator("#live")
            assert await lost.is_hidden()
            await page.evaluate("window.__same_page = true")

            # The network to the collector silent: the live part's fetch gets no answer and
            # htmx gives up after its timeout. Then a network that refuses at once.
            cut = re.compile(r".*/provinces/hp$")
            held: list[Route] = []

            async def silent(route: Route) -> None:
                held.append(route)  # never answered

            async def refused(route: Route) -> None:
                await route.abort("internetdisconnected")

            for how, handle in (("silent", silent), ("refused", refused)):
                await page.route(cut, handle)
                cut_at = time.monotonic()
                await lost.wait_for(state="visible", timeout=2_000 + 10_000 + 2_000)
                took = time.monotonic() - cut_at
                print(f"{how}: lost contact shown {took:.2f} s after the cut")
                assert took < (2 + 10 + 2 if handle is silent else 2 + 2)  # poll (+ timeout)
                assert near_now_in_vietnam(await lost.inner_text()), await lost.inner_text()
                assert "stale" in (await part.get_attribute("class") or "")
                if how == "refused":
                    await page.screenshot(path=screenshot_path("province-lost"), full_page=True)

                # The network back: the next fetch succeeds and both go.
                await page.unroute(cut)
                for route in held:
                    with suppress(Exception):  # htmx dropped it at its timeout already
                        await route.abort()
                await lost.wait_for(state="hidden", timeout=2_000 + 3_000)
                assert "stale" not in (await part.get_attribute("class") or "")

            assert await page.evaluate("window.__same_page === true")
            assert not problems.exceptions and not problems.dialogs, problems
