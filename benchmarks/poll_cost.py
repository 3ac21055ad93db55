"""Poll cost: many simulated SNMP devices, three link paths, and the real agent for a minute.

Run by hand (loopback only; needs snmpsim and Mosquitto, as the tests do)::

    /work/main/.venv/bin/python benchmarks/poll_cost.py [--switches 20] [--ups 0]

What it sets up: snmpsim serving ``--switches`` copies of a 24-port switch walk
(IF-MIB, profile ``if-mib-router``: 24 interfaces x 8 values per device) and ``--ups``
copies of ``ups-mib.snmprec``, each under its own community, from a temporary data
dir; three TCP listeners as the site's link paths; a Mosquitto.

What it prints:

1. the cost of polling one device (each polled alone, several rounds): wall ms
   p50/p99 and CPU ms per poll, per profile;
2. the wall time of a whole poll cycle (``agent.cycle.poll_once``: every device and
   path concurrently), first and later cycles;
3. the agent itself (``kienco agent run``, interval 10 s) sampled with psutil for
   ``--duration`` seconds: CPU % of one core and RSS, and the reports it published.
   It runs as on an edge box, whose install has no pysmi: pysmi (and ``requests``
   with it) is a test-only dependency here, for snmpsim, and pysnmp imports it when
   present. ``--with-test-deps`` runs it as it comes instead; the import RSS of both
   is printed either way.

Goals: a cycle <= 2 s, the agent <= 5 % of a core and <= 60 MB RSS.
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
from _common import REPO, Listeners, ReportCounter, log, percentile, print_summary, verdict_of

from agent.config import load_site_config
from agent.cycle import poll_once
from agent.probes import Transports
from agent.probes.snmp import SnmpTarget, poll
from agent.profiles import load_profile_by_name
from agent.snmp_transport import PySnmpTransport, SnmpError
from contract.wire import utc_now
from kienco.local_services import Mosquitto, free_port

GOAL_CYCLE_S, GOAL_CPU_PCT, GOAL_RSS_MB = 2.0, 5.0, 60.0
PYTHON = sys.executable
RECORDINGS = REPO / "firmware-configs" / "recordings"
IF, IFX = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."


def switch_recording(hostname: str, ports: int, seed: int) -> str:
    """A ``ports``-port switch (plus VLAN 1 and a loopback): snmprec lines in OID order."""
    rows = [(i, f"GigabitEthernet1/0/{i}", f"Gi1/0/{i}", 6, 1000) for i in range(1, ports + 1)]
    rows += [(ports + 1, "Vlan1", "Vl1", 53, 1000), (ports + 2, "Loopback0", "Lo0", 24, 0)]
    records: list[tuple[str, str, str]] = [
        ("1.3.6.1.2.1.1.1.0", "4", "Cisco IOS Software, C2960X Software, Version 15.2(7)E8"),
        ("1.3.6.1.2.1.1.2.0", "6", "1.3.6.1.4.1.9"),
        ("1.3.6.1.2.1.1.3.0", "67", "8640000"),
        ("1.3.6.1.2.1.1.5.0", "4", hostname),
        ("1.3.6.1.2.1.2.1.0", "2", str(len(rows))),
    ]
    for index, descr, name, if_type, speed in rows:
        oper = 2 if index % 7 == 0 else 1  # a few ports with nothing plugged in
        traffic = (seed * 7919 + index * 104_729) * 1_000_003 if oper == 1 else 0
        records += [
            (f"{IF}2.{index}", "4", descr),
            (f"{IF}3.{index}", "2", str(if_type)),
            (f"{IF}7.{index}", "2", "1"),
            (f"{IF}8.{index}", "2", str(oper)),
            (f"{IF}14.{index}", "65", str(index % 5)),
            (f"{IF}20.{index}", "65", "0"),
            (f"{IFX}1.{index}", "4", name),
            (f"{IFX}6.{index}", "70", str(traffic)),
            (f"{IFX}10.{index}", "70", str(traffic // 3)),
            (f"{IFX}15.{index}", "66", str(speed)),
        ]
    records.sort(key=lambda r: tuple(int(p) for p in r[0].split(".")))
    return "".join(f"{oid}|{kind}|{value}\n" for oid, kind, value in records)


def make_data_dir(data_dir: Path, switches: int, ups: int, ports: int) -> list[tuple[str, str]]:
    """Write the recordings; return (community, profile) per simulated device."""
    data_dir.mkdir(parents=True)
    devices = []
    for n in range(1, switches + 1):
        name = f"bench-sw-{n:02d}"
        (data_dir / f"{name}.snmprec").write_text(switch_recording(name, ports, n))
        devices.append((name, "if-mib-router"))
    for n in range(1, ups + 1):
        name = f"bench-ups-{n:02d}"
        shutil.copy(RECORDINGS / "ups-mib.snmprec", data_dir / f"{name}.snmprec")
        devices.append((name, "ups-mib"))
    return devices


class SnmpSim:
    """snmpsim-command-responder on a free loopback UDP port."""

    def __init__(self, workdir: Path, data_dir: Path, community: str) -> None:
        binary = Path(PYTHON).parent / "snmpsim-command-responder"
        spec = importlib.util.find_spec("snmpsim")
        if not binary.exists() or spec is None or spec.origin is None:
            raise RuntimeError(f"snmpsim is not installed ({binary} missing)")
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
        if not asyncio.run(self._answers(community, within_s=60)):
            self.stop()
            raise RuntimeError(f"snmpsim did not answer: {self.log.read_text()[-2000:]}")

    async def _answers(self, community: str, within_s: float) -> bool:
        snmp = PySnmpTransport()
        deadline = time.monotonic() + within_s
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(SnmpError):
                    sys_descr = "1.3.6.1.2.1.1.1.0"
                    got = await snmp.get(
                        "127.0.0.1", self.port, community, [sys_descr], timeout_s=0.5, retries=0
                    )
                    if got.get(sys_descr):
                        return True
                await asyncio.sleep(0.2)
            return False
        finally:
            snmp.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_site(
    workdir: Path, broker_url: str, snmp_port: int, devices: list[tuple[str, str]], paths: list[int]
) -> Path:
    site = {
        "site": "bench-bts-020",
        "province": "hp",
        "kind": "station",
        "name": "Trạm BTS đo chi phí poll",
        "interval_s": 10,
        "broker": {"url": broker_url},
        "outbox": {"path": str(workdir / "outbox.sqlite")},
        "disk_path": str(workdir),
        "paths": [
            {
                "path": f"path-{n}",
                "media": media,
                "target": {"host": "127.0.0.1", "port": port},
                "probes": 3,
            }
            for n, (media, port) in enumerate(
                zip(("fibre", "microwave", "vsat"), paths, strict=True), 1
            )
        ],
        "snmp_credentials": {c: {"community": {"value": c}} for c, _ in devices},
        "devices": [
            {
                "device": community,
                "role": "router" if profile == "if-mib-router" else "ups",
                "profile": profile,
                "host": "127.0.0.1",
                "port": snmp_port,
                "credentials": community,
                "timeout_s": 2.0,
                "retries": 1,
            }
            for community, profile in devices
        ],
    }
    path = workdir / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False, allow_unicode=True))
    return path


async def device_costs(
    port: int, devices: list[tuple[str, str]], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall ms, CPU ms) of each poll of each device alone, by profile."""
    snmp = PySnmpTransport()
    costs: dict[str, list[tuple[float, float]]] = {}
    try:
        for round_ in range(rounds + 1):
            for community, name in devices:
                profile = load_profile_by_name(name)
                target = SnmpTarget(
                    device=community, host="127.0.0.1", port=port, community=community, profile=name
                )
                wall, cpu = time.perf_counter(), time.process_time()
                readings = await poll(target, transport=snmp, profile=profile)
                spent = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
                if any(r.error for r in readings):
                    raise RuntimeError(f"{community}: {readings[0].error}")
                if round_:  # round 0 warms the engine and snmpsim's caches
                    costs.setdefault(name, []).append(spent)
    finally:
        snmp.close()
    return costs


async def cycle_times(site_yaml: Path, cycles: int) -> tuple[list[float], int, list[str]]:
    """Wall s of each poll_once, the interfaces in the last report, and its errors."""
    config = load_site_config(site_yaml)
    transports = Transports()
    times: list[float] = []
    try:
        for seq in range(cycles):
            started = time.perf_counter()
            report = await poll_once(config, transports, seq=seq, now=utc_now())
            times.append(time.perf_counter() - started)
    finally:
        transports.snmp().close()
    errors = [f"{r.device}: {r.error}" for r in report.power if r.error]
    errors += [f"{r.device}/{r.port}: {r.error}" for r in report.interfaces if r.error]
    errors += [f"{link.path} down" for link in report.links if not link.up]
    return times, len(report.interfaces), errors


# Edge boxes install no pysmi (a test dependency here): hide it, as it is absent there.
EDGE_BOX = "import sys; sys.modules['pysmi'] = None\n"


def import_rss_mb(prelude: str) -> float:
    """RSS of a fresh interpreter once it has imported what ``agent run`` imports."""
    code = prelude + "import psutil, kienco.cli, agent.runner, agent.cycle\n"
    code += "print(psutil.Process().memory_info().rss)"
    done = subprocess.run(
        [PYTHON, "-c", code], check=True, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    return int(done.stdout.strip()) / 2**20


def measure_agent(
    site_yaml: Path, workdir: Path, warmup_s: float, duration_s: float, prelude: str
) -> dict[str, Any]:
    """Run the agent; sample its CPU and RSS once a second after the warm-up."""
    log_path = workdir / "agent.log"
    run = f"{prelude}from kienco.cli import main\nsys.exit(main(sys.argv[1:]))"
    with log_path.open("wb") as out:
        agent = subprocess.Popen(
            [PYTHON, "-c", f"import sys\n{run}", "agent", "run", "--config", str(site_yaml)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    try:
        proc = psutil.Process(agent.pid)
        time.sleep(warmup_s)
        if agent.poll() is not None:
            raise RuntimeError(f"agent exited: {log_path.read_text()[-2000:]}")
        rss: list[int] = []
        cpu0 = sum(proc.cpu_times()[:2])
        started = time.monotonic()
        while time.monotonic() - started < duration_s:
            time.sleep(1.0)
            if agent.poll() is not None:
                raise RuntimeError(f"agent exited: {log_path.read_text()[-2000:]}")
            rss.append(proc.memory_info().rss)
        cpu_s = sum(proc.cpu_times()[:2]) - cpu0
        wall = time.monotonic() - started
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
        "rss_peak_mb": max(rss) / 2**20,
        "rss_mean_mb": statistics.fmean(rss) / 2**20,
        "window_s": wall,
        "exit_code": agent.returncode,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Poll cost of many SNMP devices, and the agent's footprint polling them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--switches", type=int, default=20, help="simulated 24-port switches")
    parser.add_argument("--ports", type=int, default=24, help="Ethernet ports per switch")
    parser.add_argument("--ups", type=int, default=0, help="simulated UPS-MIB UPSes on top")
    parser.add_argument("--rounds", type=int, default=5, help="polls of each device alone")
    parser.add_argument("--cycles", type=int, default=5, help="poll_once cycles timed")
    parser.add_argument("--warmup", type=float, default=12.0, help="s of agent run before sampling")
    parser.add_argument("--duration", type=float, default=60.0, help="s of agent sampling")
    parser.add_argument(
        "--with-test-deps", action="store_true", help="run the agent with pysmi importable"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="kienco-bench-poll-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        devices = make_data_dir(workdir / "data", args.switches, args.ups, args.ports)
        log(f"snmpsim: {len(devices)} simulated devices")
        snmpsim = SnmpSim(workdir, workdir / "data", devices[0][0])
        stack.callback(snmpsim.stop)
        listeners = Listeners(3)
        stack.callback(listeners.stop)
        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        stack.callback(broker.stop)
        site_yaml = write_site(workdir, broker.url, snmpsim.port, devices, listeners.ports)

        log(f"polling each device alone, {args.rounds} rounds")
        costs = asyncio.run(device_costs(snmpsim.port, devices, args.rounds))
        log(f"timing {args.cycles} poll cycles")
        cycles, interfaces, errors = asyncio.run(cycle_times(site_yaml, args.cycles))
        if errors:
            log(f"WARNING: the cycle is not clean: {errors[:5]}")

        counter = ReportCounter(broker.port)
        stack.callback(counter.stop)
        log(f"agent: warm-up {args.warmup:g} s, then sampling {args.duration:g} s")
        prelude = "" if args.with_test_deps else EDGE_BOX
        agent = measure_agent(site_yaml, workdir, args.warmup, args.duration, prelude)
        published = list(counter.reports)

    last = json.loads(published[-1]) if published else {}
    last_errors = [i["error"] for i in last.get("interfaces", []) if "error" in i]
    if last_errors:
        log(f"WARNING: errors in the agent's last report, e.g. {last_errors[0]}")
    later = cycles[1:] or cycles
    rows: list[tuple[str, Any]] = [
        ("devices (switches x ports / UPSes)", f"{args.switches} x {args.ports} / {args.ups}"),
        ("link paths (loopback TCP)", 3),
    ]
    for name, samples in costs.items():
        walls = [w for w, _ in samples]
        rows += [
            (f"poll one device [{name}] wall ms p50", percentile(walls, 50)),
            (f"poll one device [{name}] wall ms p99", percentile(walls, 99)),
            (f"poll one device [{name}] CPU ms mean", statistics.fmean(c for _, c in samples)),
        ]
    rows += [
        ("interfaces per report", interfaces),
        ("poll cycle s, first (engine built)", cycles[0]),
        ("poll cycle s, later (median)", statistics.median(later)),
        ("poll cycle s, later (max)", max(later)),
        (
            "agent run as",
            "it comes (pysmi importable)" if args.with_test_deps else "on an edge box",
        ),
        ("RSS MB after the agent's imports, edge box", import_rss_mb(EDGE_BOX)),
        ("RSS MB after the agent's imports, with pysmi", import_rss_mb("")),
        ("agent CPU % of one core", agent["cpu_pct"]),
        ("agent RSS MB peak", agent["rss_peak_mb"]),
        ("agent RSS MB mean", agent["rss_mean_mb"]),
        ("agent sampling window s", agent["window_s"]),
        ("reports the agent published", len(published)),
        ("interfaces in its last report", len(last.get("interfaces", []))),
        ("errors in its last report", len(last_errors) or "none"),
        ("agent exit code after SIGTERM", agent["exit_code"]),
        (f"goal cycle <= {GOAL_CYCLE_S:g} s", verdict_of(max(later) <= GOAL_CYCLE_S)),
        (f"goal CPU <= {GOAL_CPU_PCT:g} %", verdict_of(agent["cpu_pct"] <= GOAL_CPU_PCT)),
        (f"goal RSS <= {GOAL_RSS_MB:g} MB", verdict_of(agent["rss_peak_mb"] <= GOAL_RSS_MB)),
        ("cores on this machine (shared)", os.cpu_count()),
        ("benchmark wall s", time.monotonic() - started),
    ]
    if any(math.isnan(v) for _, v in rows if isinstance(v, float)):
        log("WARNING: some figures are missing")
    print_summary("kienco SNMP poll cost", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
