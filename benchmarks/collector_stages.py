"""Where a report's time goes in the collector: µs per report, stage by stage, in-process.

No broker, no network: N realistic reports (the same generator as
benchmarks/ingest.py: 1 000 sites, a UPS, a generator, 3 paths and a host, 36
readings, ~1.1 kB) are made first, then pushed through the collector's own
code, one report at a time, each stage timed on its own (``perf_counter_ns``
around each call; the timer's own cost, measured empty, is taken off):

- MQTT (paho): the PUBLISH packets as Mosquitto sends them, read by a paho
  client from a socket pair (its real ``loop_read``: packet parse, MQTTMessage,
  the on_message dispatch) plus the manual PUBACK (``Client.ack``, written to
  the socket), for MQTT 5 and 3.1.1 (``--protocol``; both by default);
- decode + validation (collector/decode.py: topic, pydantic, duplicate keys);
- admission (collector/admission.py: province binding, site caps);
- state fold (``SiteStates.apply_report``);
- rules + status (``Verdicts.evaluate``: rules, hysteresis, Status, its JSON,
  the verdict points), only when the fold says the verdict's inputs changed;
- the report's line protocol (collector/points.py ``report_lines``; before
  9e9e07d's successor: ``report_points`` then ``encode_many``), and the verdict's
  points encoded (``encode_many``);
- the whole ``Collector.handle`` (the sum of the above but paho, plus metrics,
  the delivery queue), on a second, fresh collector;
- with ``--influx``: the writer, batches of 5 000 reports' lines through
  ``InfluxWriter.write_durably`` into a real influxd (this process's CPU per
  report, and wall time per report, which includes influxd's work).

Reports are fresh by default (``--age fresh``): each pass's reports are stamped
over the 45 s before it starts, so every site is judged within its stale window
and every rule runs, as in a fleet reporting on time; ``--age stale`` stamps them
minutes old, where every verdict stops at freshness (the cheap path). The summary
gives the share judged fresh.

CPU of one core on a shared machine: run it under the heavy lock. The figures
are best-of ``--repeat`` passes (each pass over fresh state).

    .venv/bin/python benchmarks/collector_stages.py
    .venv/bin/python benchmarks/collector_stages.py --reports 20000 --influx --json
    .venv/bin/python benchmarks/collector_stages.py --rss-sites 10000   # RSS per site
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from _common import passes_parser
from ingest import FRESH_SPAN_S, STALE_INTERVALS, generate
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import BatchConfig, CollectorConfig, InfluxConfig, StateConfig
from collector.decode import Decoded, decode_within
from collector.line_protocol import encode_many
from collector.points import report_lines, site_tags
from collector.service import Collector
from contract.wire import Report, utc_now
from kienco.fleet.mqtt_lite import varint
from rules.snapshot import HISTORY_LEN

PROVINCES = ("p0",)


def publish_packet(topic: str, payload: bytes, mid: int, *, protocol: int) -> bytes:
    """One QoS 1 PUBLISH as the broker sends it (MQTT 5: an empty property list)."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + mid.to_bytes(2, "big")
    if protocol == 5:
        body += b"\x00"
    body += payload
    return b"\x32" + varint(len(body)) + body


def time_paho(messages: Sequence[tuple[str, bytes]], protocol: int) -> tuple[float, float]:
    """(µs per message read and dispatched, µs per manual ack) through a real paho client."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="stages",
        protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311,
        manual_ack=True,
    )
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    for side in (ours, broker):
        side.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    client._sock = ours  # paho has no public way to adopt a socket
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED  # type: ignore[attr-defined]
    received: list[int] = []
    client.on_message = lambda _c, _u, msg: received.append(msg.mid)
    packets = [
        publish_packet(t, p, (i % 65_000) + 1, protocol=protocol)
        for i, (t, p) in enumerate(messages)
    ]
    read_ns = ack_ns = 0
    chunk = 50
    for start in range(0, len(packets), chunk):
        broker.sendall(b"".join(packets[start : start + chunk]))
        want = min(len(packets), start + chunk)
        t0 = time.perf_counter_ns()
        while len(received) < want:
            client.loop_read(chunk)
        t1 = time.perf_counter_ns()
        for mid in received[start:want]:
            client.ack(mid, 1)
        t2 = time.perf_counter_ns()
        read_ns += t1 - t0
        ack_ns += t2 - t1
        with contextlib.suppress(BlockingIOError):
            while broker.recv(1 << 20, socket.MSG_DONTWAIT):
                pass
    ours.close()
    broker.close()
    n = len(packets)
    return read_ns / n / 1e3, ack_ns / n / 1e3


def make_collector(
    root: Path,
    influx_url: str | None,
    state: StateConfig | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Collector:
    config = CollectorConfig(
        data_dir=root,
        influx=None if influx_url is None else InfluxConfig(url=influx_url, database="stages"),
        provinces=PROVINCES,
        batch=BatchConfig(max_messages=5000, max_delay_s=0.2),
        state=state or StateConfig(),
    )
    return Collector(config, clock=clock)


STAGES = (
    "decode + validation",
    "admission",
    "state fold",
    "rules + status (when judged)",
    "report -> line protocol (report_lines)",
    "verdict points -> line protocol",
)


def time_stages(
    root: Path,
    metas: Sequence[tuple[str, bytes]],
    reports: Sequence[tuple[str, bytes]],
    stale_window_s: float,
) -> tuple[dict[str, float], float, float, list[str]]:
    """µs per report of each stage, the shares of reports judged and judged fresh
    (newest report within ``stale_window_s``), and the batches' lines."""
    collector = make_collector(root, None)
    try:
        now = datetime.now(UTC)
        for topic, payload in metas:
            collector.process(topic, payload, now)
        totals = dict.fromkeys(STAGES, 0)
        judged = fresh = 0
        clock = time.perf_counter_ns
        limits = collector.config.limits
        states, verdicts, admission = collector.states, collector.verdicts, collector.admission
        batches: list[str] = []
        lines: list[str] = []
        for topic, payload in reports:
            t0 = clock()
            result = decode_within(limits, topic, payload, now)
            t1 = clock()
            assert isinstance(result, Decoded)
            refused = admission.check(result)
            t2 = clock()
            assert refused is None
            report = result.message
            assert isinstance(report, Report)
            changed = states.apply_report(report, received_at=now)
            t3 = clock()
            verdict: list[Any] = []
            if changed:
                judged += 1
                outcome = verdicts.evaluate(report.site, now)
                verdict = outcome[2] if outcome else []
                last = outcome[0].last_report_at if outcome else None
                if last is not None and (now - last).total_seconds() <= stale_window_s:
                    fresh += 1
            t4 = clock()
            kind, operator = site_tags(states.get(report.site))  # as Collector._apply
            text = report_lines(report, site_kind=kind, operator=operator)
            t5 = clock()
            if verdict:
                text += "\n" + encode_many(verdict)
            t6 = clock()
            lines.append(text)
            if len(lines) == 5000:
                batches.append("\n".join(lines))
                lines = []
            for stage, ns in zip(
                STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True
            ):
                totals[stage] += ns
        if lines:
            batches.append("\n".join(lines))
    finally:
        collector.stop()
    overhead = _timer_overhead_ns()
    n = len(reports)
    per = {stage: max(0.0, (ns / n - overhead) / 1e3) for stage, ns in totals.items()}
    return per, judged / n, fresh / n, batches


def _timer_overhead_ns() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(5):
        t0 = clock()
        for _ in range(10_000):
            clock()
        samples.append((clock() - t0) / 10_000)
    return min(samples)


def time_handle(
    root: Path, metas: Sequence[tuple[str, bytes]], reports: Sequence[tuple[str, bytes]]
) -> float:
    """µs per report of ``Collector.handle`` as paho's callback calls it (no broker)."""
    collector = make_collector(root, None)
    try:
        for topic, payload in metas:
            collector.handle(topic, payload, 0, 0)
        t0 = time.perf_counter_ns()
        for mid, (topic, payload) in enumerate(reports):
            collector.handle(topic, payload, (mid % 65_000) + 1, 1)
        elapsed = time.perf_counter_ns() - t0
    finally:
        collector.stop()
    return elapsed / len(reports) / 1e3


def time_writer(root: Path, batches: Sequence[str], n_reports: int) -> tuple[float, float]:
    """(this process's CPU µs per report, wall µs per report) writing into a real influxd."""
    from kienco.local_services import Influxd

    influxd = Influxd.start(root / "influx")
    try:
        collector = make_collector(root / "data", influxd.url)
        try:
            assert collector.influx is not None
            collector.influx.create_database()
            writer = collector.writer
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            for batch in batches:
                outcome = writer.write_durably(batch)
                assert outcome.status == "written", outcome
            cpu = time.thread_time() - cpu0
            wall = time.perf_counter() - wall0
        finally:
            collector.stop()
    finally:
        influxd.stop()
    return cpu / n_reports * 1e6, wall / n_reports * 1e6


def measure_rss(root: Path, n_sites: int, per_site: int, seed: int) -> dict[str, float]:
    """What a collector holds per site: RSS and the objects the garbage collector tracks,
    before and after N sites (a meta and ``per_site`` reports each, through
    ``Collector.handle``), queued lines written and the state saved as a run does.

    No broker here: the statuses are not handed to paho (which would queue them all
    until it connects); with a broker they leave at once. The writer's batches and the
    state saver's passes (its log of folded messages, its encoded histories) run every
    2 000 reports, in this thread, a snapshot of each site changed at every pass: what a
    running collector holds between its passes.
    """
    reports, metas, _ = generate(n_sites * per_site, n_sites, 30.0, seed, PROVINCES)
    # Snapshots as often as the saver passes: a site's snapshot (and the encoded history
    # the saver keeps of it) then covers its newest reports, as in a long run.
    collector = make_collector(root, None, StateConfig(save_every_s=1, snapshot_every_s=1))
    collector.client.publish = lambda *_a, **_k: None  # type: ignore[method-assign,assignment]
    saver = collector.saved_state
    assert saver is not None, "the collector saves its state by default"

    def drain() -> None:  # no InfluxDB here: the batches are dropped, only state stays
        collector.delivery.flush_now.set()
        collector.delivery.step()
        saver.save_changed()

    try:
        process = psutil.Process()
        gc.collect()
        before = process.memory_info().rss
        tracked_before = len(gc.get_objects())
        for topic, payload in metas:
            collector.handle(topic, payload, 0, 0)
        for mid, (topic, payload) in enumerate(reports):
            collector.handle(topic, payload, (mid % 65_000) + 1, 1)
            if mid % 2000 == 0:
                drain()
        drain()
        gc.collect()  # the payloads are still held, as before: only the collector's growth
        after = process.memory_info().rss
        tracked = len(gc.get_objects()) - tracked_before
        sites = len(collector.states)
    finally:
        collector.stop()
    return {
        "sites held": sites,
        "RSS before MB": before / 2**20,
        "RSS after MB": after / 2**20,
        "RSS MB per 10 000 sites": (after - before) / 2**20 / sites * 10_000,
        "objects the garbage collector tracks, per site": tracked / sites,
    }


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: min(run[key] for run in runs) for key in runs[0]}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = passes_parser(__doc__)
    parser.add_argument("--interval", type=float, default=30.0, help="report interval_s")
    parser.add_argument(
        "--age",
        choices=("fresh", "stale"),
        default="fresh",
        help="fresh: each pass's reports stamped just before it, every rule runs; "
        "stale: older than the stale window, the rules stop at freshness",
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best is shown")
    parser.add_argument("--protocol", type=int, choices=(4, 5), action="append", help="paho")
    parser.add_argument("--influx", action="store_true", help="time the writer into influxd")
    parser.add_argument(
        "--rss-sites", type=int, default=0, help="only measure RSS per site over N sites"
    )
    parser.add_argument(
        "--rss-reports",
        type=int,
        default=HISTORY_LEN + 1,
        help="reports per site for --rss-sites (the default fills the battery history)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    protocols = args.protocol or [5, 4]
    if args.rss_sites:
        with tempfile.TemporaryDirectory(prefix="kienco-stages-rss-") as tmp:
            figures = measure_rss(Path(tmp), args.rss_sites, args.rss_reports, args.seed)
        for key, value in figures.items():
            print(f"{key}: {value:,.1f}")
        return 0
    span = FRESH_SPAN_S if args.age == "fresh" else None

    def workload() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], int]:
        return generate(
            args.reports, args.sites, args.interval, args.seed, PROVINCES, fresh_span_s=span
        )

    reports, metas, readings = workload()
    size = statistics.fmean(len(p) for _, p in reports)
    runs: list[dict[str, float]] = []
    judged_share = fresh_share = 0.0
    batches: list[str] = []
    stale_window_s = STALE_INTERVALS * args.interval
    for index in range(args.repeat):
        if index and span is not None:  # stamped again: fresh while this pass judges them
            reports, metas, _ = workload()
        gc.collect()
        run: dict[str, float] = {}
        for protocol in protocols:
            read_us, ack_us = time_paho(reports, protocol)
            run[f"MQTT {protocol}: paho read + parse + dispatch"] = read_us
            run[f"MQTT {protocol}: manual PUBACK (Client.ack)"] = ack_us
        with tempfile.TemporaryDirectory(prefix="kienco-stages-") as tmp:
            per, judged_share, fresh_share, batches = time_stages(
                Path(tmp) / "a", metas, reports, stale_window_s
            )
            run.update(per)
            run["stages above but paho, summed"] = sum(per.values())
            run["Collector.handle (whole, no paho)"] = time_handle(Path(tmp) / "b", metas, reports)
        runs.append(run)
    table = best(runs)
    if args.influx:
        with tempfile.TemporaryDirectory(prefix="kienco-stages-influx-") as tmp:
            cpu_us, wall_us = time_writer(Path(tmp), batches, len(reports))
        table["writer into influxd: this process CPU"] = cpu_us
        table["writer into influxd: wall (incl. influxd)"] = wall_us
    protocol = min(protocols)
    paho_us = (
        table[f"MQTT {protocol}: paho read + parse + dispatch"]
        + table[f"MQTT {protocol}: manual PUBACK (Client.ack)"]
    )
    total = paho_us + table["Collector.handle (whole, no paho)"]
    if args.influx:
        total += table["writer into influxd: this process CPU"]
    table[f"total CPU per report (MQTT {protocol}, handle, writer if timed)"] = total
    info = {
        "reports per pass": len(reports),
        "sites": args.sites,
        "readings per report": readings,
        "mean payload bytes": round(size),
        "reports judged (verdict inputs changed) %": round(100 * judged_share, 1),
        f"reports judged fresh ({args.age}; newest report within {stale_window_s:.0f} s) %": (
            round(100 * fresh_share, 1)
        ),
        "passes (best shown)": args.repeat,
        "reports/s one core could carry at this cost": round(1e6 / total),
    }
    if args.json:
        print(json.dumps({"us_per_report": table, **info}, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in table)
    print(f"\n{'stage'.ljust(width)}  µs/report")
    print("-" * (width + 11))
    for key, value in table.items():
        print(f"{key.ljust(width)}  {value:9.1f}")
    print()
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
