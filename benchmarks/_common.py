"""Helpers shared by the benchmark scripts in this folder (not a benchmark itself).

Process sampling (psutil), Prometheus text parsing, realistic wire messages,
percentiles, the collector run as a subprocess from a generated YAML, and the
summary block every script prints at its end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from contract.wire import (
    DeviceDecl,
    HostReading,
    LinkReading,
    Meta,
    PathDecl,
    PowerReading,
    Report,
)
from kienco.local_services import free_port

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# Vietnam's provinces, by the short codes kienco uses as topic levels (a sample of 63).
PROVINCES: tuple[str, ...] = tuple(
    [
        "hn",
        "hp",
        "hcm",
        "dn",
        "ct",
        "qn",
        "qb",
        "qt",
        "tth",
        "qna",
        "qng",
        "bd",
        "kh",
        "py",
        "nt",
        "lc",
        "lci",
        "yb",
        "hg",
        "cb",
        "bk",
        "ls",
        "tn",
        "pt",
        "vp",
        "bn",
        "hd",
        "hy",
        "hb",
        "nd",
        "tb",
        "ninhb",
        "th",
        "na",
        "ht",
        "ktum",
        "gl",
        "dl",
        "dkn",
        "ld",
        "bp",
        "tni",
        "bdg",
        "dni",
        "brvt",
        "la",
        "tg",
        "bt",
        "tv",
        "vl",
        "dt",
        "ag",
        "kg",
        "hgi",
        "st",
        "bl",
        "cm",
        "dbn",
        "lchau",
        "sl",
        "tq",
        "bg",
        "hnam",
    ]
)
assert len(PROVINCES) == 63


# --- statistics ---------------------------------------------------------------------


def passes_parser(doc: str | None) -> argparse.ArgumentParser:
    """The parser of a benchmark that times passes over a fleet of sites in process:
    ``--reports`` a pass and ``--sites``, its first paragraph as the description."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0] if doc else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--reports", type=int, default=20_000, help="reports per pass")
    parser.add_argument("--sites", type=int, default=1_000, help="distinct sites")
    return parser


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- process sampling -----------------------------------------------------------------


@dataclass
class ProcStats:
    """CPU over a window (from cpu_times, so exact) and RSS sampled in that window."""

    name: str
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_samples: list[int] = field(default_factory=list)

    @property
    def cpu_pct(self) -> float:
        """Percent of one core over the window."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def peak_rss_mb(self) -> float:
        return max(self.rss_samples) / 2**20 if self.rss_samples else math.nan

    @property
    def mean_rss_mb(self) -> float:
        if not self.rss_samples:
            return math.nan
        return sum(self.rss_samples) / len(self.rss_samples) / 2**20


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _machine_busy_seconds() -> float:
    """CPU seconds all cores together spent on anything (not idle, iowait or steal)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq")  # guest time is inside user
    return float(sum(getattr(times, name, 0.0) for name in busy))


class Sampler:
    """Samples the RSS of some processes every ``every_s`` between ``start()`` and ``stop()``.

    CPU is the difference of the processes' cumulative CPU times between the two
    calls, divided by the wall time between them: % of one core. The whole
    machine's busy CPU over the same window is kept too (``machine_cpu_pct``), to
    tell how much went to processes outside the benchmark on a shared machine.
    """

    def __init__(self, processes: dict[str, int], every_s: float = 0.25) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in processes.items()}
        self.every_s = every_s
        self.stats = {name: ProcStats(name) for name in processes}
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0
        self._machine0 = 0.0
        self.wall_s = math.nan
        self.machine_cpu_s = math.nan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._t0 = time.monotonic()
        self._machine0 = _machine_busy_seconds()
        for name, process in self.processes.items():
            self._cpu0[name] = _cpu_seconds(process)
        self._thread.start()
        return self

    def _sample(self) -> None:
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                self.stats[name].rss_samples.append(process.memory_info().rss)

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.every_s):
            self._sample()

    def stop(self) -> dict[str, ProcStats]:
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self._t0
        self.machine_cpu_s = _machine_busy_seconds() - self._machine0
        self.wall_s = wall
        for name, process in self.processes.items():
            stats = self.stats[name]
            stats.wall_s = wall
            try:
                stats.cpu_s = _cpu_seconds(process) - self._cpu0[name]
            except psutil.Error:
                stats.cpu_s = math.nan
        self._sample()
        return self.stats

    @property
    def machine_cpu_pct(self) -> float:
        """The whole machine's busy CPU over the window, % of one core (all cores: 100 x n)."""
        return 100.0 * self.machine_cpu_s / self.wall_s if self.wall_s > 0 else math.nan

    def others_cpu_pct(self, extra_cpu_s: float = 0.0) -> float:
        """Busy CPU of the machine not spent by the sampled processes (nor ``extra_cpu_s``)."""
        ours = sum(stats.cpu_s for stats in self.stats.values()) + extra_cpu_s
        return 100.0 * (self.machine_cpu_s - ours) / self.wall_s if self.wall_s > 0 else math.nan


# --- Prometheus text -------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line of a Prometheus text exposition."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


GENERATIONS = ("young", "middle", "full")


def gc_summary(metrics: dict[str, float]) -> str:
    """A collector's garbage collection so far, from its /metrics (collector/heap.py):
    collections and seconds per generation, and the longest pause."""

    def per_generation(name: str) -> list[float]:
        return [
            metrics.get(f'kienco_gc_pause_{name}{{generation="{g}"}}', math.nan)
            for g in range(len(GENERATIONS))
        ]

    counts, seconds = per_generation("seconds_count"), per_generation("seconds_sum")
    parts = [
        f"{name} {n:.0f} / {s:.2f} s"
        for name, n, s in zip(GENERATIONS, counts, seconds, strict=True)
    ]
    return f"{'; '.join(parts)}; longest {max(per_generation('max_seconds')) * 1e3:.0f} ms"


def log_heap_audits(collectors: Sequence[CollectorProcess], name: str = "collector") -> None:
    """What each stopped collector's heap audit found (collector/heap.py)."""
    for index, collector in enumerate(collectors):
        log(f"{name} {index}: heap audit at stop: {collector.heap_audit()}")


# --- the collector as a subprocess ----------------------------------------------------------


@dataclass
class CollectorProcess:
    """``python -m kienco.cli collector run --config <generated yaml>``."""

    workdir: Path
    broker_port: int
    influx_url: str | None
    database: str = "kienco_bench"
    batch_max_messages: int = 2000
    batch_max_delay_s: float = 0.25
    status_publish: str = "on_change"
    influx_timeout_s: float = 3.0
    influx_ca_file: Path | None = None  # an https InfluxDB: the CA of its certificate
    http_port: int = field(default_factory=free_port)
    client_id: str = field(default_factory=lambda: f"bench-collector-{os.getpid()}")
    topic_filter: str = "kienco/v1/+/+/#"
    provinces: list[str] | None = None  # a shard: these provinces instead of topic_filter
    # 4 (MQTT 3.1.1) as the collector's default and the shipped configs; 5 to compare.
    protocol: int = 4
    read_window_ms: float | None = None  # broker.read_window_ms; None: the collector's default
    state: dict[str, Any] = field(default_factory=dict)  # the config's state: section
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "collector.log"

    def write_config(self) -> Path:
        config: dict[str, Any] = {
            "broker": {
                "url": f"mqtt://127.0.0.1:{self.broker_port}",
                "username": None,
                "client_id": self.client_id,
                **({} if self.provinces else {"topic_filter": self.topic_filter}),
                "protocol": self.protocol,
                **({} if self.read_window_ms is None else {"read_window_ms": self.read_window_ms}),
            },
            "influx": None
            if self.influx_url is None
            else {
                "url": self.influx_url,
                "database": self.database,
                "timeout_s": self.influx_timeout_s,
                **({"ca_file": str(self.influx_ca_file)} if self.influx_ca_file else {}),
            },
            **({"provinces": self.provinces} if self.provinces else {}),
            "data_dir": str(self.workdir / "collector-data"),
            "batch": {
                "max_messages": self.batch_max_messages,
                "max_delay_s": self.batch_max_delay_s,
            },
            "status": {"publish": self.status_publish},
            "state": self.state,
            "http": {"host": "127.0.0.1", "port": self.http_port},
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "collector.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout_s: float = 30.0) -> None:
        config = self.write_config()
        command = [PYTHON, "-m", "kienco.cli", "collector", "run", "--config", str(config)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"collector not healthy within {timeout_s} s: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def metrics(self, client: httpx.Client | None = None) -> dict[str, float]:
        getter = client.get if client is not None else httpx.get
        return parse_metrics(getter(f"{self.url}/metrics", timeout=5.0).text)

    def heap_audit(self) -> str:
        """What the stopped collector's heap audit said (kienco/commands/collector.py)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        said = [line for line in text.splitlines() if "heap audit at stop" in line]
        return said[-1].split("heap audit at stop: ", 1)[1] if said else "(none logged)"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the collector: it flushes what is pending, then exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# --- py-spy profiles ------------------------------------------------------------------------


class PySpy:
    """``py-spy record --pid`` attached for a window; ``stop()`` ends it and writes the profile.

    ``--gil`` by default: only samples of a thread holding the GIL are kept.

    Needs py-spy in the venv: ``/work/main/.venv/bin/pip install py-spy``.
    """

    def __init__(self, pid: int, out: Path, *, rate: int = 100, gil: bool = True) -> None:
        binary = Path(PYTHON).parent / "py-spy"
        if not binary.exists():
            raise RuntimeError(
                f"py-spy is not installed: {Path(PYTHON).parent / 'pip'} install py-spy"
            )
        self.out = out
        self.process = subprocess.Popen(
            [
                str(binary),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                str(rate),
                "--output",
                str(out),
                # Only samples of threads holding the GIL: for a GIL-bound process that
                # is exactly where its CPU goes (waits on sockets and locks drop out).
                *(["--gil"] if gil else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        time.sleep(0.3)  # attached and sampling

    def stop(self) -> Path:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.out


def summarize_pyspy(path: Path, top: int = 25) -> dict[str, Any]:
    """Own and cumulative sample counts per function from py-spy's ``--format raw`` output."""
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    stacks: list[tuple[frozenset[str], int]] = []
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function_of(frame) for frame in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        stacks.append((frozenset(frames), count))
        for name in set(frames):
            cumulative[name] = cumulative.get(name, 0) + count

    def ranked(counts: dict[str, int]) -> list[dict[str, Any]]:
        best = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [
            {"function": name, "samples": n, "pct": round(100.0 * n / total, 1) if total else 0}
            for name, n in best
        ]

    return {
        "samples": total,
        "own": ranked(own),
        "cumulative": ranked(cumulative),
        "_stacks": stacks,
    }


def stage_shares(
    profile: dict[str, Any], stages: Sequence[tuple[str, Sequence[str]]]
) -> list[dict[str, Any]]:
    """% of samples whose stack passes through any of each stage's functions (stages may nest)."""
    stacks: list[tuple[frozenset[str], int]] = profile["_stacks"]
    total = profile["samples"] or 1
    shares = []
    for label, names in stages:
        wanted = set(names)
        count = sum(n for frames, n in stacks if frames & wanted)
        shares.append({"stage": label, "pct": round(100.0 * count / total, 1)})
    return shares


def public_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile without its raw stacks (for ``--json``)."""
    return {key: value for key, value in profile.items() if not key.startswith("_")}


def _function_of(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (file.py)``, relative to the repo or venv."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    for prefix in (str(REPO) + "/", "site-packages/"):
        if prefix in file:
            file = file.split(prefix, 1)[1]
    return f"{name} ({file})"


def print_profile(
    profile: dict[str, Any],
    top: int = 25,
    stages: Sequence[dict[str, Any]] = (),
    *,
    of: str = "the collector",
) -> None:
    samples = profile["samples"]
    print(f"\n--- py-spy profile of {of}: {samples} samples holding the GIL ---")
    if stages:
        print("by stage (% of GIL-holding samples; indented stages are part of the one above):")
        for row in stages:
            print(f"  {row['pct']:5.1f} %  {row['stage']}")
    for title in ("own", "cumulative"):
        print(f"top {top} by {title} time:")
        for row in profile[title][:top]:
            print(f"  {row['pct']:5.1f} %  {row['function']}")


# --- realistic wire messages -------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    province: str
    site: str
    kind: str  # station | meeting_point

    @property
    def base_topic(self) -> str:
        return f"kienco/v1/{self.province}/{self.site}"


def make_sites(count: int, *, provinces: Sequence[str] = PROVINCES) -> list[Site]:
    """``count`` sites spread over the provinces; one in four is a meeting point."""
    sites = []
    for index in range(count):
        province = provinces[index % len(provinces)]
        kind = "meeting_point" if index % 4 == 3 else "station"
        prefix = "dc" if kind == "meeting_point" else "bts"
        sites.append(Site(province, f"{province}-{prefix}-{index:05d}", kind))
    return sites


_PATHS = (
    ("fibre-vnpt", "fibre", "vnpt", ("duct-ql5",)),
    ("mw-viettel", "microwave", "viettel", ("tower-1",)),
    ("vsat", "vsat", "vnpt", ()),
)


def make_meta(site: Site, at: datetime, *, interval_s: float) -> Meta:
    return Meta(
        site=site.site,
        province=site.province,
        site_kind=site.kind,  # type: ignore[arg-type]
        name=f"Trạm {site.site}" if site.kind == "station" else f"Điểm cầu {site.site}",
        operator="vnpt",
        hardened=site.kind == "station",
        site_class="hardened" if site.kind == "station" else "ordinary",
        paths=tuple(
            PathDecl(path=p, media=m, provider=pr, srlg=s)  # type: ignore[arg-type]
            for p, m, pr, s in _PATHS
        ),
        devices=(
            DeviceDecl(device="ups1", profile="ups-mib", role="ups"),
            DeviceDecl(device="gen1", profile="dse-7320", role="generator"),
        ),
        interval_s=interval_s,
        agent_version="0.1.0",
        at=at,
    )


def make_report(
    site: Site, seq: int, taken_at: datetime, *, interval_s: float, rng: random.Random
) -> Report:
    """A report of a healthy site on mains: a UPS (10 values), a generator (5), 3 paths, host."""
    ups = PowerReading(
        device="ups1",
        profile="ups-mib",
        mains_present=True,
        on_battery=False,
        battery_status="normal",
        battery_charge_pct=round(rng.uniform(95, 100), 1),
        battery_runtime_s=float(rng.randrange(14_000, 16_000, 60)),
        battery_voltage_v=round(rng.uniform(53.5, 54.5), 2),
        battery_temperature_c=round(rng.uniform(24, 30), 1),
        input_v=round(rng.uniform(218, 232), 1),
        output_v=round(rng.uniform(229, 231), 1),
        load_pct=round(rng.uniform(25, 45), 1),
    )
    generator = PowerReading(
        device="gen1",
        profile="dse-7320",
        generator_running=False,
        on_generator=False,
        fuel_pct=round(rng.uniform(80, 95), 1),
        fuel_l=round(rng.uniform(160, 190), 1),
        fuel_burn_l_per_h=3.5,
    )
    links = tuple(
        LinkReading(
            path=p,
            media=m,  # type: ignore[arg-type]
            provider=pr,
            srlg=s,
            up=True,
            rtt_ms=round(rng.uniform(5, 40) if m != "vsat" else rng.uniform(550, 700), 3),
            jitter_ms=round(rng.uniform(0.1, 5), 3),
            loss_pct=0.0,
            probes_sent=5,
        )
        for p, m, pr, s in _PATHS
    )
    host = HostReading(
        cpu_pct=round(rng.uniform(2, 20), 1),
        memory_pct=round(rng.uniform(30, 50), 1),
        disk_pct=round(rng.uniform(10, 30), 1),
        temperature_c=round(rng.uniform(40, 60), 1),
        uptime_s=float(rng.randrange(10_000, 10_000_000)),
        outbox_depth=0,
    )
    return Report(
        site=site.site,
        province=site.province,
        seq=seq,
        taken_at=taken_at,
        interval_s=interval_s,
        power=(ups, generator),
        links=links,
        host=host,
    )


def wire(message: Meta | Report) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


# --- summary -------------------------------------------------------------------------------------


def print_summary(title: str, rows: Iterable[tuple[str, Any]], *, as_json: bool) -> None:
    """The closing block: aligned ``label: value`` lines, or one JSON object."""
    items = list(rows)
    if as_json:
        clean = {label: _json_safe(value) for label, value in items}
        print(json.dumps(clean, ensure_ascii=False, indent=2))
        return
    width = max((len(label) for label, _ in items), default=0)
    bar = "=" * max(60, len(title) + 8)
    print(f"\n{bar}\n  {title}\n{bar}")
    for label, value in items:
        if isinstance(value, float):
            shown = "n/a" if math.isnan(value) else f"{value:,.2f}"
        else:
            shown = str(value)
        print(f"  {label.ljust(width)} : {shown}")
    print(bar)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return round(value, 3)
    return value


def verdict_of(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def log(message: str) -> None:
    """Progress, on stderr so that ``--json`` output stays clean on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ReportCounter:
    """Counts the reports the agent publishes (and keeps the last one)."""

    def __init__(self, port: int) -> None:
        self.reports: list[bytes] = []
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-reports-{os.getpid()}",
            protocol=mqtt.MQTTv5,
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe("kienco/v1/+/+/report", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.reports.append(bytes(msg.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.stop()
            raise RuntimeError("the report subscriber did not subscribe")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Listeners:
    """TCP listeners on loopback that accept and close every connection (the paths' targets)."""

    def __init__(self, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.sockets.append(sock)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listeners", daemon=True)
        self._thread.start()

    @property
    def ports(self) -> list[int]:
        return [int(s.getsockname()[1]) for s in self.sockets]

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                listener = key.fileobj
                assert isinstance(listener, socket.socket)
                with contextlib.suppress(BlockingIOError):
                    conn, _ = listener.accept()
                    conn.close()
                    self.accepted += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()
        self.selector.close()
