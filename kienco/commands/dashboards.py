"""``kienco dashboards build [--check]``: the Grafana dashboards, regenerated from code.

The dashboards are Python (kienco/dashboards/, the Grafana Foundation SDK) and their
JSON is committed under ``dashboards/``. The SDK is a development dependency (the
``dashboards`` extra): it is imported only when this command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands

OUT = Path(__file__).resolve().parents[2] / "dashboards"
INSTALL = "pip install -e '.[dashboards]'"


def cmd_build(args: argparse.Namespace) -> int:
    try:
        from kienco.dashboards import build
    except ImportError as exc:
        print(
            f"kienco dashboards: the Grafana Foundation SDK is missing ({exc.name}): {INSTALL}",
            file=sys.stderr,
        )
        return 1
    out: Path = args.out
    if args.check:
        stale = build.stale(out)
        for name in stale:
            print(f"stale: {out / name} (run: kienco dashboards build)", file=sys.stderr)
        if not stale:
            print(f"dashboards up to date in {out}")
        return 1 if stale else 0
    for path in build.write(out):
        print(f"wrote {path}")
    return 0


def add_parser(sub: Subcommands) -> None:
    dashboards = sub.add_parser(
        "dashboards", help="the Grafana dashboards (JSON under dashboards/), from code"
    ).add_subparsers(dest="dashboards_cmd", required=True)
    build = dashboards.add_parser(
        "build",
        help="regenerate dashboards/*.json from kienco/dashboards/*.py",
        description=f"Needs the Grafana Foundation SDK: {INSTALL}.",
    )
    build.add_argument("--out", type=Path, default=OUT, help=f"folder (default: {OUT})")
    build.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale or missing"
    )
    build.set_defaults(func=cmd_build)
