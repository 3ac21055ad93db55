"""The board: page weight and first render, and live-update latency with many open pages.

What it measures (loopback only; a real Mosquitto from kienco.local_services, the real
collector in this process, filled through its decode path, ``Collector.handle``):

a. Pages. A fleet of --sites sites over 34 provinces, --points of them meeting points
   (a national fleet has ~3 400), and a meeting planned with every meeting point.
   For the overview (/) and that meeting's page: the HTML's size, the server's time
   to answer (median of --loads), and in a real Chromium (Debian's, headless, as in
   the tests) the first contentful paint and the load event, cold (a fresh profile)
   and warm (assets cached), medians of --loads.
b. Live updates. --pages open pages (server-sent-event streams, each fetching its
   page's live part again on every ``changed`` event, as a page's htmx does), run in a
   separate process so their work is not counted as the server's, plus --browsers
   real Chromium pages with the province's page open. --changes times a station of
   that province loses mains (a report through the decode path: on battery, its
   verdict changes at once); for each change: the verdict change (the collector's
   ``on_status``) -> each stream's event -> each stream's live part fetched, and ->
   the row changed in each browser page (a MutationObserver's clock; one machine,
   one clock).

Run (about 2 minutes with the defaults on 2 cores):

    .venv/bin/python benchmarks/board.py
    .venv/bin/python benchmarks/board.py --sites 10000 --points 3400 --pages 200 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import PROVINCES, REPO, Site, log, make_meta, make_report, percentile, print_summary

from collector.config import CollectorConfig
from collector.service import Collector
from collector.web.tokens import sha256_hex
from contract.wire import PowerReading, Report, Status
from kienco.local_services import Mosquitto
from plumbing.labels import LOCAL_TZ

sys.path.insert(0, str(REPO))
from tests.support.browser import FLAGS, require_chromium

NOC_TOKEN = "board-benchmark-noc-token-0123456789"
ADMIN_TOKEN = "board-benchmark-admin-token-0123456789"
GOAL_S = 2.0


def fleet(count: int, points: int) -> list[Site]:
    """``count`` sites over 34 provinces, ``points`` of them meeting points."""
    provinces = PROVINCES[:34]
    sites = []
    for index in range(count):
        province = provinces[index % len(provinces)]
        kind = "meeting_point" if index < points else "station"
        prefix = "dc" if kind == "meeting_point" else "bts"
        sites.append(Site(province, f"{province}-{prefix}-{index:05d}", kind))
    return sites


class Recorder:
    """When each site's verdict changed (the collector's on_status), wall clock."""

    def __init__(self) -> None:
        self.changed: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, status: Status) -> None:
        if status.station_state == "up_battery":
            with self.lock:
                self.changed.setdefault(status.site, time.time())


def start(workdir: Path, broker: Mosquitto, recorder: Recorder) -> Collector:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": "board-bench",
                "topic_filter": "kienco/v1/nothing-here/#",
            },
            "influx": None,
            "data_dir": str(workdir / "collector"),
            "state": {"persist": False},
            "http": {
                "port": 0,
                "max_connections": 2000,
                "tokens": [
                    {"name": "noc", "role": "noc", "sha256": sha256_hex(NOC_TOKEN)},
                    {"name": "admin", "role": "admin", "sha256": sha256_hex(ADMIN_TOKEN)},
                ],
            },
        }
    )
    collector = Collector(config, on_status=recorder)
    collector.start()
    if not collector.wait_connected(10):
        raise RuntimeError("the collector did not connect to the broker")
    return collector


def fill(collector: Collector, sites: list[Site]) -> None:
    import random

    rng = random.Random(7)
    now = datetime.now(UTC)
    for site in sites:
        for message in (
            make_meta(site, now, interval_s=3600),
            make_report(site, 0, now, interval_s=3600, rng=rng),
        ):
            topic = f"{site.base_topic}/{message.kind}"
            collector.handle(topic, message.model_dump_json().encode(), 0, 0)


def on_battery(site: Site, seq: int) -> bytes:
    report = Report(
        site=site.site,
        province=site.province,
        seq=seq,
        taken_at=datetime.now(UTC),
        interval_s=3600,
        power=(
            PowerReading(
                device="ups1",
                mains_present=False,
                on_battery=True,
                battery_charge_pct=60,
                battery_runtime_s=5400,
            ),
        ),
    )
    return report.model_dump_json().encode()


def session(url: str, token: str) -> dict[str, str]:
    answer = httpx.post(
        f"{url}/login", data={"token": token, "next": "/"}, headers={"Origin": url}, timeout=30
    )
    if answer.status_code != 303:
        raise RuntimeError(f"login: {answer.status_code} {answer.text}")
    return dict(answer.cookies)


# --- a. pages ---------------------------------------------------------------------------


def server_times(
    url: str, cookies: dict[str, str], path: str, loads: int, bust: Callable[[], None]
) -> dict[str, Any]:
    """The answer's time with nothing cached (a change just came: the page is worked out
    and rendered), median of ``loads``; and its size, plain and gzipped."""
    times, size, sent = [], 0, 0
    with httpx.Client(base_url=url, cookies=cookies, timeout=60) as client:
        for _ in range(loads):
            bust()
            t0 = time.perf_counter()
            answer = client.get(path, headers={"Accept-Encoding": "gzip"})
            times.append(time.perf_counter() - t0)
            answer.raise_for_status()
            size, sent = len(answer.content), answer.num_bytes_downloaded
    return {"html_bytes": size, "sent_bytes": sent, "server_s": statistics.median(times)}


PAINTED = "() => performance.getEntriesByName('first-contentful-paint').length > 0"
RENDER = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const resources = performance.getEntriesByType('resource');
  return {fcp: paint ? paint.startTime : null, load: nav.loadEventEnd,
          ttfb: nav.responseStart, html: nav.transferSize,
          assets: resources.reduce((n, r) => n + r.transferSize, 0)};
}"""


async def browser_render(
    url: str,
    cookies: dict[str, str],
    paths: list[str],
    loads: int,
    workdir: Path,
    bust: Callable[[], None],
) -> dict[str, dict[str, Any]]:
    from playwright.async_api import async_playwright

    out: dict[str, dict[str, Any]] = {}
    async with async_playwright() as driver:
        for path in paths:
            cold, warm = [], []
            for run in range(loads):
                context = await driver.chromium.launch_persistent_context(
                    str(workdir / f"profile-{path.strip('/').replace('/', '-')}-{run}"),
                    executable_path=str(require_chromium()),
                    headless=True,
                    args=FLAGS,
                    viewport={"width": 1920, "height": 1080},
                )
                await context.add_cookies(
                    [{"name": k, "value": v, "url": url} for k, v in cookies.items()]
                )
                page = await context.new_page()
                for runs in (cold, warm):
                    bust()  # nothing cached on the server: the whole work, every time
                    await page.goto(url + path, wait_until="load", timeout=120_000)
                    await page.wait_for_function(PAINTED, timeout=60_000)
                    runs.append(await page.evaluate(RENDER))
                await context.close()

            def med(runs: list[dict[str, Any]], key: str) -> float:
                return statistics.median(r[key] for r in runs if r[key] is not None) / 1000

            out[path] = {
                "fcp_cold_s": med(cold, "fcp"),
                "load_cold_s": med(cold, "load"),
                "fcp_warm_s": med(warm, "fcp"),
                "load_warm_s": med(warm, "load"),
                "assets_bytes_cold": int(statistics.median(r["assets"] for r in cold)),
            }
    return out


# --- b. live updates --------------------------------------------------------------------

# The open pages, in their own process: each holds a stream and, on every event, fetches
# its page's live part as htmx does; it prints one JSON line per (event, fetch).
# The open pages, in their own process: each holds a stream and, on every event, fetches
# its page's live part as htmx does; it prints one JSON line per (event, fetch). Plain
# HTTP/1.1 on asyncio streams: an HTTP library's own cost for 200 pages would be what
# this measured (httpx needed ~4 ms of this process's CPU per fetch).
PAGES = textwrap.dedent(
    r"""
    import asyncio, json, sys, time
    from urllib.parse import urlsplit

    url, path, live = sys.argv[1], sys.argv[2], sys.argv[3]
    count, seconds, cookies = int(sys.argv[4]), float(sys.argv[5]), json.loads(sys.argv[6])
    host, port = urlsplit(url).hostname, urlsplit(url).port
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())

    def request(target, extra=""):
        return (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
                f"Accept-Encoding: gzip\r\n{extra}\r\n").encode()

    async def head(reader):
        length, chunked = None, False
        status = await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        return status, length, chunked

    async def fetch(state):
        if state.get("w") is None:
            state["r"], state["w"] = await asyncio.open_connection(host, port)
        state["w"].write(request(path, "HX-Request: true\r\n"))
        status, length, chunked = await head(state["r"])
        body = await state["r"].readexactly(length) if length else b""
        return len(body)

    async def page(opened):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request(live, "Accept: text/event-stream\r\n"))
        await head(reader)
        opened.set()
        state = {}
        while line := await reader.readline():
            if not line.startswith(b"data: "):
                continue
            got = time.time()
            sites = json.loads(line[6:]).get("sites", [])
            size = await fetch(state)
            done = time.time()
            print(json.dumps({"sites": sites, "event": got, "fetched": done, "bytes": size}),
                  flush=True)

    async def main():
        opened = [asyncio.Event() for _ in range(count)]
        tasks = [asyncio.create_task(page(o)) for o in opened]
        for o in opened:
            await o.wait()
        print(json.dumps({"ready": count}), flush=True)
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    """
)

WATCH = """([prefix]) => {
  window.__shown = {};
  const look = () => {
    for (const row of document.querySelectorAll('tr[id^="site-' + prefix + '"]')) {
      const site = row.id.slice(5);
      if (row.dataset.state === 'up_battery' && !(site in window.__shown)) {
        window.__shown[site] = Date.now();
      }
    }
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true});
  look();
}"""


async def live_latency(
    args: argparse.Namespace,
    collector: Collector,
    recorder: Recorder,
    url: str,
    cookies: dict[str, str],
    province: str,
    stations: list[Site],
    workdir: Path,
) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    path = f"/provinces/{province}"
    seconds = args.changes * args.every + 15
    pages = subprocess.Popen(
        [sys.executable, "-c", PAGES, url, path, f"/live?province={province}", str(args.pages),
         str(seconds), json.dumps(cookies)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert pages.stdout is not None
        for line in pages.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any("ready" in line for line in lines):
        if time.monotonic() > deadline or pages.poll() is not None:
            raise RuntimeError("the open pages did not all connect")
        await asyncio.sleep(0.1)
    log(f"live: {args.pages} streams open on {path}; {args.browsers} browser pages")
    shown: list[dict[str, float]] = []
    async with async_playwright() as driver:
        context = await driver.chromium.launch_persistent_context(
            str(workdir / "profile-live"),
            executable_path=str(require_chromium()),
            headless=True,
            args=FLAGS,
            viewport={"width": 1920, "height": 1080},
        )
        await context.add_cookies([{"name": k, "value": v, "url": url} for k, v in cookies.items()])
        browser_pages = []
        for _ in range(args.browsers):
            page = await context.new_page()
            await page.goto(url + path, wait_until="load", timeout=120_000)
            await page.evaluate(WATCH, [province])
            browser_pages.append(page)
        await asyncio.sleep(2)  # every stream connected in every tab
        changed = stations[: args.changes]
        cpu0 = time.process_time()
        pages_cpu0 = sum(psutil.Process(pages.pid).cpu_times()[:2])
        for seq, site in enumerate(changed, start=1):
            collector.handle(f"{site.base_topic}/report", on_battery(site, seq), 0, 0)
            await asyncio.sleep(args.every)
        await asyncio.sleep(3)
        server_cpu = time.process_time() - cpu0
        pages_cpu = sum(psutil.Process(pages.pid).cpu_times()[:2]) - pages_cpu0
        for page in browser_pages:
            shown.append(await page.evaluate("window.__shown"))
        await context.close()
    pages.wait(timeout=seconds + 30)
    reader.join(timeout=5)

    event_s: list[float] = []
    fetched_s: list[float] = []
    part_bytes = 0
    for line in lines:
        if "sites" not in line:
            continue
        at = min(
            (recorder.changed[s] for s in line["sites"] if s in recorder.changed), default=None
        )
        if at is None:
            continue
        event_s.append(line["event"] - at)
        fetched_s.append(line["fetched"] - at)
        part_bytes = line["bytes"]
    browser_s = [
        seen_ms / 1000 - recorder.changed[site]
        for per_page in shown
        for site, seen_ms in per_page.items()
        if site in recorder.changed
    ]
    expected = len(changed) * args.pages
    return {
        "changes": len(changed),
        "events": len(event_s),
        "events_expected": expected,
        "event_p50_s": percentile(event_s, 50),
        "event_p99_s": percentile(event_s, 99),
        "fetched_p50_s": percentile(fetched_s, 50),
        "fetched_p99_s": percentile(fetched_s, 99),
        "fetched_max_s": max(fetched_s, default=float("nan")),
        "live_part_bytes": part_bytes,
        "browser_rows": len(browser_s),
        "browser_rows_expected": len(changed) * args.browsers,
        "browser_p50_s": percentile(browser_s, 50),
        "browser_max_s": max(browser_s, default=float("nan")),
        "server_cpu_per_change_s": server_cpu / max(1, len(changed)),
        "pages_cpu_per_change_s": pages_cpu / max(1, len(changed)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=3_400)
    parser.add_argument("--pages", type=int, default=200, help="open pages (SSE streams)")
    parser.add_argument("--browsers", type=int, default=3, help="real browser pages")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between changes")
    parser.add_argument("--loads", type=int, default=3, help="page loads per measure")
    parser.add_argument("--only", choices=("pages", "live"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    require_chromium()

    rows: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kienco-board-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        recorder = Recorder()
        collector = start(workdir, broker, recorder)
        try:
            assert collector.api is not None
            url = collector.api.url
            sites = fleet(args.sites, args.points)
            t0 = time.perf_counter()
            fill(collector, sites)
            took = time.perf_counter() - t0
            log(f"{len(sites)} sites ({args.points} meeting points) told in {took:.1f} s")
            cookies = session(url, NOC_TOKEN)
            admin = session(url, ADMIN_TOKEN)
            rows += [("sites", len(sites)), ("meeting points", args.points)]
            if args.only in (None, "pages"):
                points = [s.site for s in sites if s.kind == "meeting_point"]
                planned = httpx.post(
                    f"{url}/meetings",
                    data={
                        "title": "Họp trực tuyến toàn quốc",
                        "starts_at": (datetime.now(UTC) + timedelta(hours=2))
                        .astimezone(LOCAL_TZ)
                        .strftime("%Y-%m-%dT%H:%M"),
                        "duration_h": "3",
                        "points": " ".join(points),
                        "province": "",
                    },
                    cookies=admin,
                    headers={"Origin": url},
                    timeout=120,
                )
                if planned.status_code != 303:
                    raise RuntimeError(f"planning: {planned.status_code} {planned.text[:500]}")
                meeting = planned.headers["location"]
                paths = {"overview": "/", f"meeting ({len(points)} points)": meeting}

                def bust() -> None:  # a change no page shows: every cached part is stale
                    collector.changes.site("zz-bench", "zz")

                for name, path in paths.items():
                    got = server_times(url, cookies, path, args.loads, bust)
                    rows += [
                        (
                            f"{name}: HTML bytes / gzipped",
                            f"{got['html_bytes']:,} / {got['sent_bytes']:,}",
                        ),
                        (f"{name}: server answer (nothing cached), median s", got["server_s"]),
                    ]
                rendered = asyncio.run(
                    browser_render(url, cookies, list(paths.values()), args.loads, workdir, bust)
                )
                for name, path in paths.items():
                    r = rendered[path]
                    rows += [
                        (f"{name}: first paint cold / warm, s",
                         f"{r['fcp_cold_s']:.3f} / {r['fcp_warm_s']:.3f}"),
                        (f"{name}: load event cold / warm, s",
                         f"{r['load_cold_s']:.3f} / {r['load_warm_s']:.3f}"),
                        (f"{name}: assets on a cold load, bytes", r["assets_bytes_cold"]),
                    ]  # fmt: skip
            if args.only in (None, "live"):
                province = PROVINCES[0]
                stations = [s for s in sites if s.province == province and s.kind == "station"]
                live = asyncio.run(
                    live_latency(
                        args, collector, recorder, url, cookies, province, stations, workdir
                    )
                )
                shown = len([s for s in sites if s.province == province])
                rows += [
                    ("live: open pages (streams) / browser pages",
                     f"{args.pages} / {args.browsers}"),
                    ("live: province page rows", shown),
                    ("live: verdict changes", live["changes"]),
                    ("live: events received / expected",
                     f"{live['events']} / {live['events_expected']}"),
                    ("live: change -> event p50 / p99, s",
                     f"{live['event_p50_s']:.3f} / {live['event_p99_s']:.3f}"),
                    ("live: change -> live part fetched p50 / p99 / max, s",
                     f"{live['fetched_p50_s']:.3f} / {live['fetched_p99_s']:.3f} / "
                     f"{live['fetched_max_s']:.3f}"),
                    ("live: live part bytes (gzipped)", live["live_part_bytes"]),
                    ("live: CPU per change, collector / the pages' process, s",
                     f"{live['server_cpu_per_change_s']:.3f} / "
                     f"{live['pages_cpu_per_change_s']:.3f}"),
                    ("live: browser rows changed / expected",
                     f"{live['browser_rows']} / {live['browser_rows_expected']}"),
                    ("live: change -> browser row p50 / max, s",
                     f"{live['browser_p50_s']:.3f} / {live['browser_max_s']:.3f}"),
                    ("live: goal (every page within 2 s)",
                     "MET" if max(live["fetched_max_s"], live["browser_max_s"]) <= GOAL_S
                     else "NOT MET"),
                ]  # fmt: skip
        finally:
            collector.stop()
            broker.stop()
    print_summary("kienco board", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
