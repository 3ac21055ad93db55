"""The agent's drills: its link cut for a compressed 72 h, its disk full, its outbox file corrupt.

Each runs a real agent (``agent.runner.Agent``: the SQLite outbox, the drain, the
reconnects with backoff) against the real stack of ``benchmarks/drills.py`` —
Mosquitto with the shipped config, InfluxDB 1.6, ``kienco collector run`` — over a
TCP relay that cuts the agent's link while the broker and the collector stay up.
Only the measuring is simulated (a realistic report: a UPS, a generator, three
paths, the host with the outbox's real counters), and time is compressed: the
drill calls the agent's own ``poll_and_store`` as fast as the outbox takes it,
and each report is stamped one interval after the last, ending now.

    agent-outage-72h       the link down for 72 h at a 13 s interval: 20 000 reports
                           wait in the outbox; then the link returns and they drain
    agent-disk-full        the outbox on a 16 MiB disk of its own that another program
                           fills while the link is down (needs root: a tmpfs mount)
    agent-corrupt-outbox   the agent stops with a backlog; its outbox file is damaged
                           (three pages torn mid-file, then the header overwritten);
                           it starts again on it

Each ends with made / published / stored / lost / doubled: reports the agent made,
reports the broker acknowledged, distinct reports in InfluxDB, made but not
stored, and stored or delivered more than once.

    .venv/bin/python benchmarks/drills.py agent-outage-72h     # with the other drills
    .venv/bin/python benchmarks/drills_agent.py --quick        # these alone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _common import Site, log, make_report, print_summary
from drills import Stack
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import SiteConfig
from agent.runner import Agent
from contract.wire import Report

Rows = list[tuple[str, Any]]

OUTAGE_REPORTS = 20_000
INTERVAL_S = 72 * 3600 / OUTAGE_REPORTS  # 12.96 s: 20 000 reports in 72 h


# --- the agent's link, and what reaches the broker -------------------------------------------


class LinkCut:
    """A TCP relay from the agent to Mosquitto; ``cut()`` drops it like a fibre cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        ).result()
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}

    def _set(self, cut: bool) -> None:
        self._cut = cut
        if cut:
            for writer in list(self._writers):
                writer.transport.abort()

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self._set, True)

    def mend(self) -> None:
        self._loop.call_soon_threadsafe(self._set, False)

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Deliveries:
    """A QoS 1 subscriber on the broker: every report delivered, with when it arrived."""

    def __init__(self, port: int, site: str) -> None:
        self.arrivals: list[tuple[int, float]] = []  # (seq, wall time)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"drill-deliveries-{site}",
            protocol=mqtt.MQTTv5,
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(f"kienco/v1/+/{site}/report", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.arrivals.append(
            (int(json.loads(msg.payload)["seq"]), time.time())
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("the deliveries subscriber did not subscribe")

    def doubled(self) -> int:
        return len(self.arrivals) - len({seq for seq, _ in self.arrivals})

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- a site whose agent the drill drives -----------------------------------------------------


class DrilledSite:
    """One site: its config, its agent (made on demand, again after a 'restart')."""

    def __init__(self, site: str, outbox: Path, link: LinkCut) -> None:
        self.site = Site("dr", site, "station")
        self.config = SiteConfig.model_validate(
            {
                "site": site,
                "province": "dr",
                "kind": "station",
                "name": f"Trạm {site}",
                "interval_s": INTERVAL_S,
                "broker": {
                    "url": f"mqtt://127.0.0.1:{link.port}",
                    "reconnect_min_s": 0.5,
                    "reconnect_max_s": 5.0,
                },
                "outbox": {"path": str(outbox)},
                "disk_path": str(outbox.parent),
            }
        )
        self.made: list[int] = []
        self.poll_failures = 0
        self.polled_at: dict[int, float] = {}
        self.reconnected_at: float | None = None
        self._stamps: list[datetime] = []  # the compressed timeline still to come
        self._rng = random.Random(site)
        self.agent = self.new_agent()

    def new_agent(self) -> Agent:
        self.agent = Agent(self.config, measure=self._measure, clock=self._clock)
        return self.agent

    def _clock(self) -> datetime:
        return self._stamps.pop() if self._stamps else datetime.now(UTC)

    def plan(self, reports: int) -> None:
        """The next ``reports`` polls are stamped one interval apart, the last one now."""
        end = datetime.now(UTC)
        self._stamps = [end - timedelta(seconds=INTERVAL_S * n) for n in range(reports)]

    async def _measure(self, seq: int, taken_at: datetime) -> Report:
        report = make_report(self.site, seq, taken_at, interval_s=INTERVAL_S, rng=self._rng)
        outbox = self.agent.outbox
        host = report.host.model_copy(  # type: ignore[union-attr]
            update={
                "outbox_depth": outbox.depth(),
                "outbox_dropped_total": outbox.dropped_total(),
                "outbox_resets_total": outbox.resets_total(),
            }
        )
        self.made.append(seq)
        self.polled_at[seq] = time.time()
        return report.model_copy(update={"host": host})

    async def poll(self) -> None:
        try:
            await self.agent.poll_and_store()
        except Exception as exc:  # what the agent's own poll loop would log and survive
            self.poll_failures += 1
            if self.poll_failures <= 3:
                log(f"{self.config.site}: poll cycle failed: {type(exc).__name__}: {exc}")

    async def polls(self, reports: int) -> float:
        """Poll ``reports`` times, as fast as the outbox takes them; returns the wall time."""
        started = time.monotonic()
        for _ in range(reports):
            await self.poll()
        return time.monotonic() - started

    async def outage(self, reports: int) -> float:
        self.plan(reports)
        return await self.polls(reports)

    async def drain(self, link: LinkCut, timeout_s: float = 900.0) -> tuple[float, int]:
        """Mend the link; poll live every second until the outbox is empty.

        Returns (seconds from the mend to an empty outbox, live reports made meanwhile);
        ``reconnected_at`` is when the agent was back on the broker (its backoff).
        """
        link.mend()
        started = time.monotonic()
        live = 0
        self.reconnected_at = None
        while time.monotonic() - started < timeout_s:
            await self.poll()
            live += 1
            for _ in range(20):
                await asyncio.sleep(0.05)
                if self.reconnected_at is None and self.agent.connected:
                    self.reconnected_at = time.time()
            if self.agent.outbox.depth() == 0:
                return time.monotonic() - started, live
        raise RuntimeError(f"the outbox did not drain within {timeout_s:.0f} s")

    def fresh_delay_s(self, deliveries: Deliveries, since: float) -> float | None:
        """The longest a report made after ``since`` waited, once the agent was back on the
        broker, to reach a subscriber there (the backlog drains behind it)."""
        first: dict[int, float] = {}
        for seq, at in deliveries.arrivals:
            first.setdefault(seq, at)
        back = self.reconnected_at or since
        waits = [
            max(0.0, first[seq] - max(polled, back))
            for seq, polled in self.polled_at.items()
            if polled >= since and seq in first
        ]
        return max(waits) if waits else None


def stored(stack: Stack, site: str) -> tuple[set[int], int]:
    """(distinct seqs of ``site`` in InfluxDB, rows beyond them)."""
    rows = stack.influx.query(stack.database, f"SELECT seq FROM report WHERE site = '{site}'")
    seqs = [int(r["seq"]) for r in rows]
    return set(seqs), len(seqs) - len(set(seqs))


def wait_stored(stack: Stack, site: str, expected: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        seqs, _ = stored(stack, site)
        if expected <= seqs or time.monotonic() > deadline:
            return seqs
        time.sleep(1.0)


def outcome(
    stack: Stack,
    drilled: DrilledSite,
    deliveries: Deliveries,
    *,
    expect: set[int] | None = None,
    dropped: int = 0,
) -> tuple[Rows, set[int], set[int]]:
    """The four numbers for one site; also (made, stored) seqs. ``lost`` is what went
    missing beyond the ``dropped`` the outbox counted (its policy on a full disk)."""
    made = set(drilled.made)
    seqs = wait_stored(stack, drilled.config.site, expect if expect is not None else made, 120)
    _, doubled_rows = stored(stack, drilled.config.site)
    rows: Rows = [
        ("made", len(made)),
        ("published (PUBACKed)", drilled.agent.published_total),
        ("stored (distinct in InfluxDB)", len(seqs & made)),
        *([("dropped by the outbox, oldest first (counted)", dropped)] if dropped else []),
        ("lost", len(made - seqs) - dropped),
        ("doubled (InfluxDB rows)", doubled_rows),
        ("doubled on the wire (delivered twice)", deliveries.doubled()),
    ]
    return rows, made, seqs


async def _running(agent: Agent, body: Callable[[], Any]) -> Any:
    """Run the agent's send loop (its polls are the drill's) around ``body``."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop, poll=False))
    try:
        return await body()
    finally:
        stop.set()
        await task


# --- the drills ------------------------------------------------------------------------------


def drill_outage_72h(workdir: Path, args: argparse.Namespace) -> Rows:
    """72 h without the broker at a 13 s interval, then the link returns."""
    reports = 3_000 if getattr(args, "quick", False) else OUTAGE_REPORTS
    stack = Stack(workdir)
    link = LinkCut(stack.broker.port)
    drilled = DrilledSite("dr-bts-outage", workdir / "agent" / "outbox.sqlite", link)
    deliveries = Deliveries(stack.broker.port, drilled.config.site)
    figures: dict[str, Any] = {}

    async def body() -> None:
        link.cut()
        figures["outage_s"] = await drilled.outage(reports)
        figures["depth"] = drilled.agent.outbox.depth()
        log(f"agent-outage-72h: {figures['depth']} reports waiting; the link returns")
        mended = time.time()
        figures["drain_s"], figures["live"] = await drilled.drain(link)
        figures["back_s"] = (drilled.reconnected_at or mended) - mended
        figures["fresh_wait_s"] = drilled.fresh_delay_s(deliveries, mended)

    try:
        asyncio.run(_running(drilled.agent, body))
        rows, _, _ = outcome(stack, drilled, deliveries)
        return [
            ("outage, compressed", f"{reports} reports x {INTERVAL_S:g} s"),
            ("outage took (wall), s", figures["outage_s"]),
            ("waiting in the outbox when the link returned", figures["depth"]),
            ("outbox dropped", drilled.agent.outbox.dropped_total()),
            ("agent back on the broker after the link returned, s", figures["back_s"]),
            ("drained in, s (from the link's return)", figures["drain_s"]),
            ("drain rate, reports/s", figures["depth"] / (figures["drain_s"] - figures["back_s"])),
            ("live reports during the drain", figures["live"]),
            ("longest a live report waited once the agent was back, s", figures["fresh_wait_s"]),
            *rows,
        ]
    finally:
        deliveries.close()
        link.stop()
        stack.close()


def _fill(disk: Path) -> None:
    """Another program takes every byte left on ``disk`` (logs, a core dump)."""
    for chunk in (1 << 16, 512):
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, bytes(chunk))
        except OSError:
            pass
        finally:
            os.close(fd)


def _free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Any:
    if os.geteuid() != 0:
        raise RuntimeError("agent-disk-full mounts a small tmpfs: run it as root")
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def drill_disk_full(workdir: Path, args: argparse.Namespace) -> Rows:
    """The outbox's disk fills (the agent's backlog, then another program) while the link is
    down: the newest must be kept, the oldest dropped and counted."""
    quick = getattr(args, "quick", False)
    before, during = (1_000, 3_000) if quick else (4_000, 12_000)
    stack = Stack(workdir)
    link = LinkCut(stack.broker.port)
    figures: dict[str, Any] = {}
    with _small_disk(workdir / "disk", "16m") as disk:
        drilled = DrilledSite("dr-bts-diskfull", disk / "outbox.sqlite", link)
        deliveries = Deliveries(stack.broker.port, drilled.config.site)

        async def body() -> None:
            link.cut()
            drilled.plan(before + during)
            await drilled.polls(before)
            _fill(disk)
            figures["free_after_fill"] = _free_bytes(disk)
            log(f"agent-disk-full: disk full ({figures['free_after_fill']} B free); polling on")
            for _ in range(0, during, 1_000):  # the other program takes any space freed
                await drilled.polls(1_000)
                _fill(disk)
            figures["depth"] = drilled.agent.outbox.depth()
            figures["dropped"] = drilled.agent.outbox.dropped_total()
            (disk / "filler").unlink()  # the operator frees the disk; the link returns
            figures["drain_s"], figures["live"] = await drilled.drain(link)

        try:
            asyncio.run(_running(drilled.agent, body))
            # What the outbox still held when the link returned, and the live reports after.
            kept = set(drilled.made[before + during - figures["depth"] :])
            rows, made, seqs = outcome(
                stack, drilled, deliveries, expect=kept, dropped=figures["dropped"]
            )
            lost = made - seqs
            newest_outage = drilled.made[before + during - 1]
            return [
                ("reports made while the link was down", before + during),
                ("of which while the disk was full", during),
                ("free bytes after the other program filled the disk", figures["free_after_fill"]),
                ("poll cycles that failed", drilled.poll_failures),
                ("waiting in the outbox when the link returned", figures["depth"]),
                ("newest report of the outage stored", newest_outage in seqs),
                ("every report not stored older than every one kept", max(lost) < min(seqs)),
                *rows,
            ]
        finally:
            deliveries.close()
            link.stop()
            stack.close()


def _damage(path: Path, at: int, size: int) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        f.write(bytes(range(256)) * (size // 256))


def drill_corrupt_outbox(workdir: Path, args: argparse.Namespace) -> Rows:
    """A backlog, the agent stopped, its outbox file damaged, the agent started again."""
    backlog = 500 if getattr(args, "quick", False) else 2_000
    stack = Stack(workdir)
    link = LinkCut(stack.broker.port)
    rows: Rows = []
    try:
        for damage in ("torn pages mid-file", "header overwritten"):
            site = "dr-bts-torn" if damage.startswith("torn") else "dr-bts-header"
            path = workdir / site / "outbox.sqlite"
            drilled = DrilledSite(site, path, link)
            deliveries = Deliveries(stack.broker.port, site)
            figures: dict[str, Any] = {}

            async def before(drilled: DrilledSite = drilled) -> None:
                link.cut()
                await drilled.outage(backlog)

            async def after(
                drilled: DrilledSite = drilled, figures: dict[str, Any] = figures
            ) -> None:
                held = drilled.agent.outbox.take(1_000_000)
                figures["kept"] = {json.loads(e.payload)["seq"] for e in held}
                figures["depth"] = len(held)
                figures["resets"] = drilled.agent.outbox.resets_total()
                figures["drain_s"], figures["live"] = await drilled.drain(link)

            asyncio.run(_running(drilled.agent, before))
            drilled.agent.outbox.close()  # a clean stop: the WAL is folded into the file
            if damage.startswith("torn"):
                _damage(path, path.stat().st_size // 2 // 4096 * 4096, 3 * 4096)
            else:
                _damage(path, 0, 4096)
            started = time.monotonic()
            agent = drilled.new_agent()  # the agent starting again on the damaged file
            figures["start_s"] = time.monotonic() - started
            restarted_at = len(drilled.made)
            asyncio.run(_running(agent, after))
            expect = figures["kept"] | set(drilled.made[restarted_at:])
            results, made, seqs = outcome(stack, drilled, deliveries, expect=expect)
            lost = sorted(made - seqs)
            deliveries.close()
            aside = sorted(p.name for p in path.parent.glob("outbox.sqlite.corrupt-*"))
            resets_seen = stack.influx.query(
                stack.database,
                f"SELECT max(outbox_resets_total) FROM host WHERE site = '{site}'",
            )
            rows += [
                (f"[{damage}] backlog when stopped", backlog),
                (f"[{damage}] agent started again, s", figures["start_s"]),
                (f"[{damage}] moved aside", ", ".join(aside)),
                (f"[{damage}] recovered from the damaged file", figures["depth"]),
                (f"[{damage}] resets counted by the agent", figures["resets"]),
                (
                    f"[{damage}] outbox_resets_total seen in InfluxDB",
                    resets_seen[0]["max"] if resets_seen else None,
                ),
                (f"[{damage}] drained in, s", figures["drain_s"]),
                (f"[{damage}] lost seqs", f"{lost[0]}..{lost[-1]}" if lost else "none"),
                (f"[{damage}] seq numbers made twice", len(drilled.made) - len(made)),
                *((f"[{damage}] {name}", value) for name, value in results),
            ]
        return rows
    finally:
        link.stop()
        stack.close()


DRILLS: dict[str, Callable[[Path, argparse.Namespace], Rows]] = {
    "agent-outage-72h": drill_outage_72h,
    "agent-disk-full": drill_disk_full,
    "agent-corrupt-outbox": drill_corrupt_outbox,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("drills", nargs="*", help=f"which (default: all of {list(DRILLS)})")
    parser.add_argument("--quick", action="store_true", help="fewer reports")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    chosen = args.drills or list(DRILLS)
    results: dict[str, Any] = {}
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"kienco-drill-{name}-") as tmp:
            log(f"drill {name}")
            rows = DRILLS[name](Path(tmp), args)
        results[name] = dict(rows)
        if not args.json:
            print_summary(f"drill: {name}", rows, as_json=False)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
