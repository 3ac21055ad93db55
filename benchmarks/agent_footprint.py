"""Agent footprint: RSS and CPU of ``kienco agent run`` at a 10 s interval, one UPS, three paths.

What it sets up (loopback only): snmpsim serving firmware-configs/recordings
(the UPS, community ``ups-mib``), Mosquitto from the shipped config
(kienco.local_services), three TCP listeners as the paths' targets, and a site
YAML like firmware-configs/sites/station.yaml pointing at them. Then:

1. Poll-cycle duration: ``agent.cycle.poll_once`` timed in this process
   (--cycles times; the first builds the SNMP engine), and the wall time of one
   ``kienco agent probe --config`` (interpreter start and imports included).
2. Footprint: ``python -m kienco.cli agent run --config site.yaml`` as a
   subprocess; after --warmup s, its RSS (and USS) and CPU are sampled with
   psutil every second for --duration s. CPU is the process's CPU time over the
   window divided by the window: % of one core. A subscriber counts the reports
   the agent published meanwhile, to show it was working.
3. What the RSS is made of: the RSS of fresh interpreters that only import the
   agent's big dependencies (pydantic, aiomqtt, pysnmp) and its own modules.

Goals: <= 40 MB RSS, <= 2 % CPU.

Run (about 2 minutes with the defaults):

    /work/main/.venv/bin/python benchmarks/agent_footprint.py
    /work/main/.venv/bin/python benchmarks/agent_footprint.py --duration 30 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml
from _common import REPO, Listeners, ReportCounter, log, print_summary, verdict_of

from agent.config import load_site_config
from agent.cycle import Probes, poll_once
from contract.wire import Report, utc_now
from kienco.local_services import Mosquitto, free_port

GOAL_RSS_MB = 40.0
GOAL_CPU_PCT = 2.0
RECORDINGS = REPO / "firmware-configs" / "recordings"
PYTHON = sys.executable


class SnmpSim:
    """snmpsim-command-responder on a free loopback UDP port, serving a copy of the recordings."""

    def __init__(self, workdir: Path) -> None:
        binary = Path(PYTHON).parent / "snmpsim-command-responder"
        spec = importlib.util.find_spec("snmpsim")
        if not binary.exists() or spec is None or spec.origin is None:
            raise RuntimeError(f"snmpsim is not installed ({binary} missing)")
        data_dir = workdir / "recordings"
        shutil.copytree(RECORDINGS, data_dir)
        self.port = free_port(socket.SOCK_DGRAM)
        self.log = workdir / "snmpsim.log"
        command = [
            str(binary),
            f"--data-dir={data_dir}",
            f"--cache-dir={workdir / 'snmpsim-cache'}",
            f"--agent-udpv4-endpoint=127.0.0.1:{self.port}",
            f"--variation-modules-dir={Path(spec.origin).parent / 'variation'}",
        ]
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        self._wait_bound(30)

    def _wait_bound(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        proc = psutil.Process(self.process.pid)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"snmpsim exited: {self.log.read_text()[-2000:]}")
            if any(c.laddr and c.laddr[1] == self.port for c in proc.net_connections("udp")):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"snmpsim did not bind 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_site(workdir: Path, broker: Mosquitto, snmp_port: int, ports: list[int]) -> Path:
    site = {
        "site": "bench-bts-001",
        "province": "hp",
        "kind": "station",
        "name": "Trạm BTS đo tải",
        "operator": "vnpt",
        "hardened": True,
        "site_class": "hardened",
        "interval_s": 10,
        "broker": {"url": broker.url},
        "outbox": {"path": str(workdir / "outbox.sqlite")},
        "paths": [
            {
                "path": name,
                "media": media,
                "provider": provider,
                "target": {"host": "127.0.0.1", "port": port},
            }
            for (name, media, provider), port in zip(
                (
                    ("fibre-vnpt", "fibre", "vnpt"),
                    ("mw-viettel", "microwave", "viettel"),
                    ("vsat", "vsat", "vnpt"),
                ),
                ports,
                strict=True,
            )
        ],
        "snmp_credentials": {"site-ro": {"version": "2c", "community": {"value": "ups-mib"}}},
        "devices": [
            {
                "device": "ups1",
                "role": "ups",
                "profile": "ups-mib",
                "host": "127.0.0.1",
                "port": snmp_port,
                "credentials": "site-ro",
                "timeout_s": 2.0,
                "retries": 1,
            }
        ],
    }
    path = workdir / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False, allow_unicode=True))
    return path


def time_cycles(site_yaml: Path, cycles: int) -> tuple[list[float], Report]:
    """Wall time of ``poll_once`` ``cycles`` times in one event loop, and the last report."""
    config = load_site_config(site_yaml)

    async def run() -> tuple[list[float], Report]:
        probes = Probes()
        times: list[float] = []
        report: Report | None = None
        for seq in range(cycles):
            started = time.perf_counter()
            report = await poll_once(config, probes, seq=seq, now=utc_now())
            times.append(time.perf_counter() - started)
        assert report is not None
        transport = probes.snmp_transport
        close = getattr(transport, "close", None)
        if callable(close):
            close()
        return times, report

    return asyncio.run(run())


def time_probe_command(site_yaml: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "kienco.cli", "agent", "probe", "--config", str(site_yaml)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        timeout=60,
    )
    return time.perf_counter() - started


IMPORT_SETS: tuple[tuple[str, str], ...] = (
    ("bare interpreter (+psutil)", ""),
    ("pydantic + contract.wire", "contract.wire"),
    ("aiomqtt + paho", "aiomqtt"),
    ("pysnmp hlapi (asyncio)", "pysnmp.hlapi.v3arch.asyncio"),
    ("everything `agent run` imports", "kienco.cli, agent.runner, agent.cycle"),
)
"""What the agent's RSS is made of: each set imported alone in a fresh interpreter."""


def import_rss_mb(modules: str) -> float:
    """RSS of a fresh interpreter after importing ``modules`` (comma-separated)."""
    code = "import psutil\n"
    if modules:
        code += f"import {modules}\n"
    code += "print(psutil.Process().memory_info().rss)"
    done = subprocess.run(
        [PYTHON, "-c", code], check=True, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    return int(done.stdout.strip()) / 2**20


def problems_of(report: dict[str, Any]) -> list[str]:
    """Errors or down paths in a report (the footprint of a failing agent is not the point)."""
    found = [f"power {p['device']}: {p['error']}" for p in report.get("power", []) if "error" in p]
    found += [f"path {link['path']} down" for link in report.get("links", []) if not link["up"]]
    return found


def measure_agent(
    site_yaml: Path, workdir: Path, warmup_s: float, duration_s: float
) -> dict[str, Any]:
    log_path = workdir / "agent.log"
    with log_path.open("wb") as out:
        agent = subprocess.Popen(
            [PYTHON, "-m", "kienco.cli", "agent", "run", "--config", str(site_yaml)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    try:
        proc = psutil.Process(agent.pid)
        rss_startup: list[int] = []
        warm_until = time.monotonic() + warmup_s
        while time.monotonic() < warm_until:
            if agent.poll() is not None:
                raise RuntimeError(f"agent exited: {log_path.read_text()[-2000:]}")
            rss_startup.append(proc.memory_info().rss)
            time.sleep(0.5)
        log(f"agent: sampling for {duration_s:g} s")
        rss: list[int] = []
        uss: list[int] = []
        cpu_per_s: list[float] = []
        t0 = time.monotonic()
        times0 = proc.cpu_times()
        cpu0 = times0.user + times0.system
        previous = cpu0
        end = t0 + duration_s
        while time.monotonic() < end:
            time.sleep(1.0)
            if agent.poll() is not None:
                raise RuntimeError(f"agent exited: {log_path.read_text()[-2000:]}")
            info = proc.memory_full_info()
            rss.append(info.rss)
            uss.append(info.uss)
            times = proc.cpu_times()
            now = times.user + times.system
            cpu_per_s.append(100.0 * (now - previous))
            previous = now
        wall = time.monotonic() - t0
        cpu_s = previous - cpu0
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
    return {
        "cpu_pct": 100.0 * cpu_s / wall,
        "cpu_peak_1s": max(cpu_per_s, default=math.nan),
        "rss_peak_mb": max(rss) / 2**20,
        "rss_mean_mb": statistics.fmean(rss) / 2**20,
        "rss_startup_peak_mb": max(rss_startup, default=0) / 2**20,
        "uss_peak_mb": max(uss) / 2**20,
        "exit_code": agent.returncode,
        "window_s": wall,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="RSS and CPU of the agent at a 10 s interval (one UPS, three paths).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=90.0, help="sampling window, s")
    parser.add_argument("--warmup", type=float, default=10.0, help="s before sampling")
    parser.add_argument("--cycles", type=int, default=3, help="in-process poll_once timings")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kienco-bench-agent-"))
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            log(f"temporary folder kept: {workdir}")
        else:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        snmpsim = SnmpSim(workdir)
        cleanup.callback(snmpsim.stop)
        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        cleanup.callback(broker.stop)
        listeners = Listeners(3)
        cleanup.callback(listeners.stop)
        site_yaml = write_site(workdir, broker, snmpsim.port, listeners.ports)

        log("timing poll cycles in-process")
        cycle_times, report = time_cycles(site_yaml, max(1, args.cycles))
        probe_s = time_probe_command(site_yaml)
        imports = [(label, import_rss_mb(modules)) for label, modules in IMPORT_SETS]
        problems = problems_of(json.loads(report.model_dump_json(exclude_none=True)))
        if problems:
            log(f"WARNING: the poll cycle is not clean: {problems}")

        counter = ReportCounter(broker.port)
        cleanup.callback(counter.stop)
        log(f"agent: warm-up {args.warmup:g} s")
        footprint = measure_agent(site_yaml, workdir, args.warmup, args.duration)
        published = list(counter.reports)
    total_s = time.monotonic() - started

    last_problems = problems_of(json.loads(published[-1])) if published else ["no report"]
    rows: list[tuple[str, Any]] = [
        ("interval s / UPS / paths", "10 / 1 (snmpsim ups-mib) / 3 (loopback TCP)"),
        ("sampling window s (after warm-up)", footprint["window_s"]),
        ("agent CPU % of a core (mean)", footprint["cpu_pct"]),
        ("agent CPU % of a core (worst 1 s)", footprint["cpu_peak_1s"]),
        ("agent peak RSS MB", footprint["rss_peak_mb"]),
        ("agent mean RSS MB", footprint["rss_mean_mb"]),
        ("agent peak USS MB (private)", footprint["uss_peak_mb"]),
        ("agent peak RSS MB during warm-up", footprint["rss_startup_peak_mb"]),
        ("poll cycle s, first (SNMP engine built)", cycle_times[0]),
        (
            "poll cycle s, later (median)",
            statistics.median(cycle_times[1:]) if len(cycle_times) > 1 else math.nan,
        ),
        ("`kienco agent probe` wall s (with start-up)", probe_s),
        *((f"RSS MB after importing {label}", mb) for label, mb in imports),
        ("reports the agent published", len(published)),
        ("last report clean (UPS answered, paths up)", "; ".join(last_problems) or "yes"),
        ("agent exit code after SIGTERM", footprint["exit_code"]),
        ("goal RSS <= 40 MB", verdict_of(footprint["rss_peak_mb"] <= GOAL_RSS_MB)),
        ("goal CPU <= 2 %", verdict_of(footprint["cpu_pct"] <= GOAL_CPU_PCT)),
        ("cores on this machine (shared)", os.cpu_count()),
        ("benchmark wall s", total_s),
    ]
    print_summary("kienco agent footprint", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
