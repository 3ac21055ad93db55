"""The what-if forecast against the Yagi simulation: sites predicted dark vs seen dark.

The demo's simulator (kienco/demo/simulator.py) runs kienco/demo/yagi.yaml; the fleet's
reports are folded into snapshots the collector's way up to ``--taken`` (minute 300,
11:00 on 7 Sep: an hour before Quảng Ninh loses mains, two before Hải Phòng); then
``rules.whatif.forecast`` is asked "mains off in the province at the minute they do
fail", over ``--hours``; the simulation runs on and records when each site really goes
dark (kienco/demo/whatif_check.py). Printed per province: each site predicted or seen
dark, both times (Vietnam time) and the error; then the totals.

    /work/main/.venv/bin/python benchmarks/whatif_yagi.py
    /work/main/.venv/bin/python benchmarks/whatif_yagi.py --hours 12 --json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _common import print_summary

from kienco.demo.scenario import load_scenario
from kienco.demo.whatif_check import compare
from kienco.labels import local_time

# When mains fail in each province in the scenario (minutes since 06:00, 7 Sep).
MAINS_FAIL = {"qn": 360, "hp": 420}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--taken", type=float, default=300.0, help="minute the forecast is made")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, Any]] = []
    predicted = seen = both = within = 0
    errors: list[float] = []
    # What the scenario does to a site after the forecast is taken: no forecast knows it.
    later: dict[str, list[str]] = {}
    for event in load_scenario().timeline:
        if event.at_min > args.taken and event.action in ("generator_fail", "site_damage"):
            later.setdefault(event.target, []).append(f"{event.action} at minute {event.at_min:g}")
    for province, minute in MAINS_FAIL.items():
        found = compare(province, minute, hours=args.hours, taken_minute=args.taken)
        if not args.json:
            print(f"\n{province}: mains off at {local_time(found.at)}, {args.hours:g} h ahead")
            for row in found.rows:
                p = local_time(row.predicted) if row.predicted else "—"
                s = local_time(row.seen) if row.seen else "—"
                err = "" if row.error_s is None else f"{row.error_s / 60:+.1f} min"
                mark = "ok" if row.within else "MISS"
                why = f"  ({', '.join(later[row.site])})" if row.site in later else ""
                print(f"  {row.site:<20} predicted {p:<12} seen {s:<12} {err:>12}  {mark}{why}")
        predicted += len(found.predicted)
        seen += len(found.seen)
        both += len(found.predicted & found.seen)
        within += sum(1 for r in found.rows if r.within)
        errors += [abs(r.error_s) for r in found.rows if r.within and r.error_s is not None]
        rows += [
            (f"{province}: predicted dark", len(found.predicted)),
            (f"{province}: seen dark", len(found.seen)),
            (f"{province}: time within tolerance", sum(1 for r in found.rows if r.within)),
        ]
    rows += [
        ("sites predicted dark", predicted),
        ("sites seen dark", seen),
        ("predicted and seen", both),
        ("time within tolerance (15 min or 5 %)", within),
        ("max |time error| of those (min)", max(errors, default=0.0) / 60),
        ("mean |time error| of those (min)", sum(errors) / len(errors) / 60 if errors else 0.0),
    ]
    print_summary("what-if vs the Yagi simulation", rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
