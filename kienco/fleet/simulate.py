"""The fleet simulator's engine: N sites over C real MQTT connections from one event loop.

Each site reports every ``interval_s`` at its own phase (sites are spread evenly over the
interval, as a real fleet's are), with a sequence number of its own, through the
connection that carries it. A connection carries the sites of one province only (a
province has one broker); one site per connection logs in as ``<province>/<site>``, as an
agent does, with its Will; several per connection need a broker without the per-site ACL.

At the end the simulator stops making reports and waits until every one is acknowledged
(``drain_s`` at most), then disconnects. ``Summary`` says what was held and sustained.
"""

from __future__ import annotations

import asyncio
import math
import resource
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from kienco.fleet.fleet import Site, Storm, meta_payload, report_payload, state_payload, utc_iso
from kienco.fleet.mqtt_lite import Connection, Login, Message, Stats

TICK_S = 0.01
GOLDEN = (math.sqrt(5) - 1) / 2  # spreads phases evenly whatever the count


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: ssl.SSLContext | None = None


@dataclass
class Options:
    sites: list[Site]
    connections: int
    interval_s: float
    duration_s: float
    brokers: Mapping[str, Broker]  # province -> broker; "*" for the others
    storm: Storm = field(default_factory=Storm)
    username: str | None = None  # several sites per connection: one account for all
    password: str | None = None
    site_password: Callable[[Site], str | None] | None = None  # one site per connection
    ramp_per_s: float = 2000.0
    drain_s: float = 60.0
    keepalive_s: int = 60
    subscribe_commands: bool = True
    hold_s: float = 0.0  # connected and idle this long before the first report
    seq_start: int = 1
    progress: Callable[[str], None] | None = None
    progress_every_s: float = 10.0


@dataclass
class Summary:
    sites: int
    connections: int
    connections_held: int  # connected at the end of the reporting window
    connections_peak: int
    connect_s: float  # until every connection was up
    reports_made: int
    published: int
    acked: int
    resent: int
    unacked_at_end: int
    refused_connects: int
    lost_connections: int
    window_s: float
    target_msgs_per_s: float
    made_msgs_per_s: float
    acked_msgs_per_s: float  # over the reporting window
    ack_latency_p50_ms: float
    ack_latency_p99_ms: float
    scheduler_late_max_ms: float
    sites_dark_at_peak: int
    last_seq: dict[str, int] = field(default_factory=dict)  # site -> last seq made

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def raise_fd_limit(needed: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard one; fail when that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < needed:
        raise RuntimeError(
            f"{needed} file descriptors needed, the limit is {soft}: raise it "
            f"(ulimit -n {needed}, or LimitNOFILE= for a service)"
        )
    return soft


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


class Fleet:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stats = Stats()
        self.connections: list[Connection] = []
        self.carrier: dict[int, Connection] = {}  # site index -> its connection
        self.seq: dict[int, int] = {}
        self.sites_of: dict[int, list[Site]] = {}  # id(connection) -> its sites
        self.started = 0.0
        self.late_max_s = 0.0
        self.dark_peak = 0

    def _broker(self, province: str) -> Broker:
        brokers = self.options.brokers
        broker = brokers.get(province) or brokers.get("*")
        if broker is None:
            raise ValueError(f"no broker for province {province!r} (give one, or '*')")
        return broker

    def _plan(self) -> list[tuple[Login, Broker, list[Site]]]:
        """Connections per province in proportion to its sites; sites dealt round-robin."""
        options = self.options
        by_province: dict[str, list[Site]] = {}
        for site in options.sites:
            by_province.setdefault(site.province, []).append(site)
        total = len(options.sites)
        plans = []
        for province, sites in by_province.items():
            count = max(1, min(len(sites), round(options.connections * len(sites) / total)))
            groups: list[list[Site]] = [[] for _ in range(count)]
            for index, site in enumerate(sites):
                groups[index % count].append(site)
            for number, group in enumerate(groups):
                plans.append((self._login(province, number, group), self._broker(province), group))
        return plans

    def _login(self, province: str, number: int, group: list[Site]) -> Login:
        options = self.options
        if len(group) == 1:
            site = group[0]
            offline = state_payload(site, "offline", datetime.now(UTC))
            password = options.site_password(site) if options.site_password else options.password
            return Login(
                client_id=f"sim-{site.site}",
                username=site.username if options.site_password else options.username,
                password=password,
                will_topic=site.topic("state"),
                will_payload=offline,
                keepalive_s=options.keepalive_s,
            )
        return Login(
            client_id=f"sim-{province}-{number}",
            username=options.username,
            password=options.password,
            keepalive_s=options.keepalive_s,
        )

    def _announce(self, connection: Connection) -> None:
        """What an agent says on every connect: online (retained), then its meta (retained)."""
        now = datetime.now(UTC)
        f = self._fraction()
        for site in self.sites_of[id(connection)]:
            if self.options.storm.dark(site, f):
                continue
            connection.send(
                Message(
                    site.topic("state"), state_payload(site, "online", now), True, time.monotonic()
                )
            )
            meta = meta_payload(site, self.options.interval_s, now)
            connection.send(Message(site.topic("meta"), meta, True, time.monotonic()))

    def _fraction(self) -> float:
        if not self.started:
            return 0.0
        return min(1.0, (time.monotonic() - self.started) / self.options.duration_s)

    async def _connect_all(self) -> float:
        options = self.options
        plans = self._plan()
        raise_fd_limit(len(plans) + 256)
        began = time.monotonic()
        spacing = 1.0 / options.ramp_per_s
        for login, broker, group in plans:
            subscribe = (
                tuple(site.topic("command") for site in group) if options.subscribe_commands else ()
            )
            connection = Connection(
                broker.host,
                broker.port,
                login,
                self.stats,
                tls=broker.tls,
                subscribe=subscribe,
                on_connected=self._announce,
            )
            self.connections.append(connection)
            self.sites_of[id(connection)] = group
            for site in group:
                self.carrier[site.index] = connection
                self.seq[site.index] = options.seq_start - 1
            await connection.open()
            await asyncio.sleep(spacing)
        await asyncio.gather(*(c.first_connected for c in self.connections))
        return time.monotonic() - began

    async def _report_loop(self) -> int:
        """Make every site's reports at their phases until the duration is over."""
        options = self.options
        slots = max(1, round(options.interval_s / TICK_S))
        wheel: list[list[Site]] = [[] for _ in range(slots)]
        for site in options.sites:
            wheel[int((site.index * GOLDEN) % 1.0 * slots)].append(site)
        made = 0
        tick = 0
        self.started = time.monotonic()
        end = self.started + options.duration_s
        while True:
            due = self.started + tick * TICK_S
            now = time.monotonic()
            if due >= end:
                return made
            if due > now:
                await asyncio.sleep(due - now)
            else:
                self.late_max_s = max(self.late_max_s, now - due)
            f = (due - self.started) / options.duration_s
            taken_at = utc_iso(time.time())
            made_at = time.monotonic()
            dark = 0
            for site in wheel[tick % slots]:
                if options.storm.dark(site, f):
                    dark += 1
                    continue
                seq = self.seq[site.index] + 1
                self.seq[site.index] = seq
                payload = report_payload(site, seq, taken_at, options.interval_s, options.storm, f)
                self.carrier[site.index].send(
                    Message(site.topic("report"), payload, False, made_at)
                )
                made += 1
            if tick % slots == 0 and tick:
                self.dark_peak = max(
                    self.dark_peak, sum(options.storm.dark(s, f) for s in options.sites)
                )
            tick += 1

    async def _progress_loop(self) -> None:
        options = self.options
        if options.progress is None:
            return
        last_acked, last_at = self.stats.acked, time.monotonic()
        while True:
            await asyncio.sleep(options.progress_every_s)
            now = time.monotonic()
            rate = (self.stats.acked - last_acked) / (now - last_at)
            last_acked, last_at = self.stats.acked, now
            waiting = sum(len(c.unsent) + len(c.inflight) for c in self.connections)
            options.progress(
                f"{self.stats.connected} connected, {rate:,.0f} acked/s, "
                f"{waiting} waiting, {self.stats.resent} resent, {self._fraction():.0%} of the run"
            )

    def _say(self, line: str) -> None:
        if self.options.progress is not None:
            self.options.progress(line)

    def _waiting(self) -> int:
        return sum(len(c.unsent) + len(c.inflight) for c in self.connections)

    async def run(self) -> Summary:
        options = self.options
        connect_s = await self._connect_all()
        peak = self.stats.connected
        self._say(f"all {peak} connections up in {connect_s:.1f} s; holding {options.hold_s:g} s")
        await asyncio.sleep(options.hold_s)
        self._say(f"reporting: {len(options.sites) / options.interval_s:,.0f} reports/s")
        progress = asyncio.create_task(self._progress_loop())
        acked_before = self.stats.acked
        try:
            made = await self._report_loop()
            window_s = time.monotonic() - self.started
            acked_in_window = self.stats.acked - acked_before
            held = self.stats.connected
            peak = max(peak, held)
            deadline = time.monotonic() + options.drain_s
            while self._waiting() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            progress.cancel()
            for connection in self.connections:
                connection.close()
            await asyncio.sleep(0.1)
        latencies = [s * 1000 for s in self.stats.ack_latency_s]
        return Summary(
            sites=len(options.sites),
            connections=len(self.connections),
            connections_held=held,
            connections_peak=peak,
            connect_s=round(connect_s, 2),
            reports_made=made,
            published=self.stats.published,
            acked=self.stats.acked,
            resent=self.stats.resent,
            unacked_at_end=self._waiting(),
            refused_connects=self.stats.refused,
            lost_connections=self.stats.lost,
            window_s=round(window_s, 2),
            target_msgs_per_s=round(len(options.sites) / options.interval_s, 1),
            made_msgs_per_s=round(made / window_s, 1),
            acked_msgs_per_s=round(acked_in_window / window_s, 1),
            ack_latency_p50_ms=round(_percentile(latencies, 50), 2),
            ack_latency_p99_ms=round(_percentile(latencies, 99), 2),
            scheduler_late_max_ms=round(self.late_max_s * 1000, 1),
            sites_dark_at_peak=self.dark_peak,
            last_seq={site.site: self.seq[site.index] for site in options.sites},
        )
