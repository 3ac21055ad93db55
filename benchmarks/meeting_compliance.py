"""How long a national meeting's status and a compliance report take to compute.

    .venv/bin/python benchmarks/meeting_compliance.py [--points 3400] [--stations 10000]

The July 2025 national meeting joined 34 provinces and 3 321 communes: ~3 400 points.
Both are computed in-process from realistic site snapshots (meta, UPS + generator,
three paths, room), exactly as the collector's API computes them. Goal: < 1 s each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.inventory import Inventory, InventorySite
from collector.meetings import MeetingRequest, MeetingStore, meeting_status
from collector.state import SiteStates
from contract.wire import (
    LinkReading,
    Meta,
    PathDecl,
    PowerReading,
    Report,
    RoomReading,
    SiteKind,
)
from rules import load_policy
from rules.compliance import build_report
from rules.rehearsal import Rehearsal

NOW = datetime.now(UTC)
PATHS = (
    PathDecl(path="fibre-a", media="fibre", provider="vnpt", srlg=("duct-1",)),
    PathDecl(path="mw-b", media="microwave", provider="viettel", srlg=("tower-2",)),
    PathDecl(path="lte-c", media="cellular", provider="mobifone", srlg=("tower-3",)),
)


def feed(states: SiteStates, site: str, province: str, kind: SiteKind, i: int) -> None:
    states.apply_meta(
        Meta(
            site=site,
            province=province,
            site_kind=kind,
            name=f"Điểm {i}",
            area=f"a{i % 300}",
            hardened=kind == "station",
            site_class="hardened" if kind == "station" else "ordinary",
            paths=PATHS,
            interval_s=30,
            agent_version="bench",
            at=NOW,
        )
    )
    power = (
        PowerReading(
            device="ups1",
            mains_present=i % 7 != 0,
            on_battery=i % 7 == 0,
            battery_charge_pct=90.0,
            battery_runtime_s=3600.0 + i % 5000,
            load_pct=35.0,
        ),
        PowerReading(
            device="gen1",
            generator_running=i % 7 == 0,
            fuel_l=50.0 + i % 400,
            fuel_burn_l_per_h=5.0,
        ),
    )
    links = tuple(
        LinkReading(
            path=p.path,
            media=p.media,
            srlg=p.srlg,
            up=(i + k) % 11 != 0,
            rtt_ms=20.0 + k * 15,
            jitter_ms=3.0,
            loss_pct=0.0,
            probes_sent=5,
        )
        for k, p in enumerate(PATHS)
    )
    room = RoomReading(
        codec_reachable=True,
        codec_registered=i % 13 != 0,
        camera_ok=True,
        microphone_ok=True,
        speaker_ok=True,
        display_ok=True,
        in_call=False,
    )
    states.apply_report(
        Report(
            site=site,
            province=province,
            seq=1,
            taken_at=NOW - timedelta(seconds=10),
            interval_s=30,
            power=power,
            links=links,
            room=room if kind == "meeting_point" else None,
        )
    )


def timed(runs: int, work: object) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3400)
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    policy = load_policy()

    states = SiteStates()
    points = [f"p{i % 34}-dc-{i}" for i in range(args.points)]
    for i, site in enumerate(points):
        feed(states, site, f"p{i % 34}", "meeting_point", i)
    with tempfile.TemporaryDirectory() as tmp:
        store = MeetingStore(Path(tmp) / "m.sqlite")
        meeting = store.create(
            MeetingRequest(
                title="Họp trực tuyến toàn quốc",
                starts_at=NOW + timedelta(hours=2),
                duration_s=3 * 3600,
                points=tuple(points),
            ),
            points,
            NOW,
        )
        for i, site in enumerate(points[: args.points // 2]):
            store.record(meeting.id, Rehearsal(site, NOW - timedelta(minutes=30), i % 9 != 0))
        result = meeting_status(meeting, states, store, policy, NOW, risk_level=lambda _p: 4)
        meeting_s = timed(
            args.runs,
            lambda: meeting_status(meeting, states, store, policy, NOW, risk_level=lambda _p: 4),
        )
        json_s = timed(args.runs, result.to_json)
        store.close()

    stations = SiteStates()
    inventory_sites = []
    for i in range(args.stations):
        site, province = f"s-{i}", "p0"  # one report over all of them
        feed(stations, site, province, "station", i)
        inventory_sites.append(
            InventorySite(
                site=site,
                kind="station",
                province=province,
                area=f"a{i % 300}",
                hardened=True,
                operator=("vnpt", "viettel", "mobifone")[i % 3],
            )
        )
    inventory = Inventory(inventory_sites)
    snapshots = {s.site: s for s in stations.all()}
    compliance_s = timed(
        args.runs,
        lambda: [
            build_report(snapshots, inventory, policy, NOW, province=f"p{p}") for p in range(10)
        ],
    )

    def line(label: str, values: list[float]) -> str:
        return f"  {label:<52}: median {statistics.median(values):.3f} s, max {max(values):.3f} s"

    print("=" * 72)
    print("  kienco meeting status and compliance report")
    print("=" * 72)
    print(f"  {'meeting points / ready':<52}: {len(result.points)} / {result.ready}")
    print(line(f"meeting status for {args.points} points (judge all)", meeting_s))
    print(line("  its JSON for the API", json_s))
    print(line(f"compliance report of {args.stations} stations", compliance_s))
    print(
        f"  goal < 1 s each                                     : "
        f"{'MET' if max(meeting_s) < 1 and max(compliance_s) < 1 else 'NOT MET'}"
    )
    print("=" * 72)


if __name__ == "__main__":
    main()
