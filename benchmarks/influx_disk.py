"""Bytes on disk per report in InfluxDB 1.6, after the collector wrote them and after
InfluxDB compacted them.

Give it the InfluxDB folder a run kept (``benchmarks/ingest.py --keep`` leaves it in
``<its temporary folder>/influx``). It measures the folder as the run left it (WAL and
TSM files), then starts ``influxd`` on it again with short cold durations (the cache is
snapshotted to TSM past 1 MB or after 2 s without writes, a full compaction after 5 s) and measures
again once the WAL is empty and the TSM files stop changing: bytes per report (reports
counted as ``count(seq)`` of ``report``), series and points written.

Run:

    .venv/bin/python benchmarks/ingest.py --keep      # prints its temporary folder
    .venv/bin/python benchmarks/influx_disk.py /tmp/kienco-bench-ingest-XXXX/influx
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import log, print_summary

from kienco.local_services import INFLUXD_CONF, find_binary, free_port

COLD = """  wal-dir = "{root}/wal"
  cache-snapshot-memory-size = "1m"
  cache-snapshot-write-cold-duration = "2s"
  compact-full-write-cold-duration = "5s"
"""


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def query(url: str, database: str, q: str) -> list[Any]:
    answer = httpx.get(f"{url}/query", params={"db": database, "q": q}, timeout=300).json()
    series = answer["results"][0].get("series", [])
    return [row for s in series for row in s["values"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the kept InfluxDB folder (data, wal, meta)")
    parser.add_argument("--database", default=None, help="default: the only one there")
    parser.add_argument("--settle", type=float, default=120.0, help="wait for compaction, s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root: Path = args.root.resolve()
    before = {name: du(root / name) for name in ("data", "wal")}
    binary = find_binary("influxd")
    if binary is None:
        print("influxd is not installed", file=sys.stderr)
        return 1
    http_port, rpc_port = free_port(), free_port()
    text = INFLUXD_CONF.format(root=root, http_port=http_port, rpc_port=rpc_port)
    text = text.replace(f'  wal-dir = "{root}/wal"\n', COLD.format(root=root))
    config = root / "influxdb-compact.conf"
    config.write_text(text)
    url = f"http://127.0.0.1:{http_port}"
    with (root / "influxd-compact.log").open("wb") as out:
        process = subprocess.Popen([binary, "-config", str(config)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 204:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("influxd did not answer")
            time.sleep(0.2)
        databases = [r[0] for r in query(url, "", "SHOW DATABASES") if r[0] != "_internal"]
        database = args.database or databases[0]
        reports = query(url, database, "SELECT count(seq) FROM report")[0][1]
        series = query(url, database, "SHOW SERIES EXACT CARDINALITY")
        series_count = sum(int(r[0]) for r in series)
        measurements = [r[0] for r in query(url, database, "SHOW MEASUREMENTS")]
        # Wait until the WAL is empty and the TSM files stop changing.
        deadline = time.monotonic() + args.settle
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(2)
            size = du(root / "data")
            wal = du(root / "wal")
            if size != last:
                last, stable_since = size, time.monotonic()
            elif wal < 2**20 and time.monotonic() - stable_since > 15:
                break
        log(f"data {du(root / 'data'):,} B, wal {du(root / 'wal'):,} B")
    finally:
        process.terminate()
        process.wait(30)
    after = {name: du(root / name) for name in ("data", "wal")}
    tsm = sum(f.stat().st_size for f in (root / "data").rglob("*.tsm"))
    total_before = before["data"] + before["wal"]
    total_after = after["data"] + after["wal"]
    rows: list[tuple[str, Any]] = [
        ("database", database),
        ("reports (count(seq) of report)", reports),
        ("series (exact cardinality)", series_count),
        ("measurements", len(measurements)),
        ("as written: data + wal (bytes)", f"{before['data']:,} + {before['wal']:,}"),
        ("as written: bytes per report", total_before / reports),
        ("compacted: data + wal (bytes)", f"{after['data']:,} + {after['wal']:,}"),
        ("compacted: bytes per report", total_after / reports),
        ("compacted: TSM files (bytes)", tsm),
        ("compacted: TSM bytes per report", tsm / reports),
        ("compacted: WAL left (bytes)", after["wal"]),
        ("series file and index (bytes)", after["data"] - tsm),
    ]
    print_summary("InfluxDB 1.6: bytes on disk per report", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
