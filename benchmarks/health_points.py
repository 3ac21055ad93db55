"""What a collector's own health points cost it (collector/health_points.py).

Every ``influx.health_every_s`` (10 s) the sweeper reads the registry (what /metrics
prints), /healthz's body and the brokers' runs of drops, makes the ``kienco_collector``
points and encodes them. It is Python under the GIL: the paho thread that takes the
reports (the ingest path) waits while it runs. So its cost on the ingest path is the
time of one reading, once per period: this times it on a real ``Collector`` built as a
shard is (its loops, its alerts, its brokers' counts and bridges for ``--provinces``
provinces, a reject of every reason counted), not started: no service is needed.

Printed: the time of one reading (median, p99, max of ``--readings``), what it makes
(points, lines, bytes), and at the default period the share of one core and the longest
the ingest path can wait on it. Nothing in it grows with the sites a shard carries.

Run:

    /work/main/.venv/bin/python benchmarks/health_points.py
    /work/main/.venv/bin/python benchmarks/health_points.py --provinces 34 --readings 5000 --json
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import print_summary

from collector.config import CollectorConfig
from collector.decode import REJECT_REASONS
from collector.service import Collector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provinces", type=int, default=9, help="the shard's provinces")
    parser.add_argument("--readings", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    provinces = [f"p{i:02d}" for i in range(args.provinces)]
    logging.disable(logging.ERROR)  # the bridges down and drops made here, said: not timed
    with tempfile.TemporaryDirectory() as folder:
        config = CollectorConfig.model_validate(
            {
                "provinces": provinces,
                "broker": {"url": "mqtt://127.0.0.1:1", "client_id": "kienco-collector-a1"},
                "influx": {"url": "http://127.0.0.1:1"},  # never reached: nothing starts
                "data_dir": str(Path(folder) / "collector"),
                "alerts": {
                    "alertmanagers": ["http://127.0.0.1:1"],
                    "external_url": "https://noc.example.vn",
                },
            }
        )
        collector = Collector(config)
        try:
            watch = collector.broker_watch
            watch.observe("$SYS/broker/publish/messages/dropped", b"0")
            watch.observe("$SYS/broker/store/messages/count", b"1200")
            for number, province in enumerate(provinces):
                watch.observe(f"kienco/brokers/{province}/bridge", b"1" if number % 3 else b"0")
                watch.observe(f"kienco/brokers/{province}/publish/messages/dropped", b"3")
                watch.observe(f"kienco/brokers/{province}/store/messages/count", b"40")
            metrics = collector.metrics
            for reason in (*REJECT_REASONS, "unprocessable", "influx_refused"):
                metrics.rejected.labels(reason).inc()
            for kind in ("report", "event", "state", "meta"):
                metrics.accepted.labels(kind).inc(1000)
            readings = collector.health_points
            assert readings is not None
            start = datetime.now(UTC)
            seconds: list[float] = []
            text = ""
            for number in range(args.readings):
                metrics.received.inc(400)
                at = start + timedelta(seconds=readings.every_s * number)
                began = time.perf_counter()
                text = readings.lines(at)
                seconds.append(time.perf_counter() - began)
        finally:
            collector.gc_pauses.close()
    lines = text.count("\n") + 1
    median = statistics.median(seconds)
    every_s = config.influx.health_every_s if config.influx else 10.0
    ordered = sorted(seconds)
    print_summary(
        "A collector's own health points: the cost of one reading",
        [
            ("provinces (bridged brokers)", args.provinces),
            ("readings timed", args.readings),
            ("one reading, median (µs)", median * 1e6),
            ("one reading, p99 (µs)", ordered[int(len(ordered) * 0.99) - 1] * 1e6),
            ("one reading, max (µs)", ordered[-1] * 1e6),
            ("lines (points) per reading", lines),
            ("bytes of line protocol per reading", len(text.encode())),
            ("period, default (s)", every_s),
            ("CPU per second of ingest (µs/s)", median / every_s * 1e6),
            ("share of one core", f"{median / every_s * 100:.4f} %"),
            ("points per second into InfluxDB", lines / every_s),
        ],
        as_json=args.json,
    )


if __name__ == "__main__":
    main()
