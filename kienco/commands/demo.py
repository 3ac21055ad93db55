"""``kienco demo``: the whole system on this machine through Typhoon Yagi, nothing to set up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    from kienco.demo.run import DemoOptions, check_services_or_explain, run_demo

    options = DemoOptions(
        duration_s=args.duration,
        json=args.json,
        lang=args.lang,
        scenario=args.scenario,
        interval_s=args.interval,
        broker=args.broker,
        influx=args.influx,
        http_port=args.port,
    )
    problem = check_services_or_explain(options)
    if problem:
        print(f"kienco demo: {problem}", file=sys.stderr)
        return 1
    if args.json:
        logging.getLogger().setLevel(logging.WARNING)
    else:
        logging.getLogger().setLevel(logging.ERROR)
    finals = asyncio.run(run_demo(options))
    if args.json:
        from kienco.readiness_view import verdict_line
        from plumbing.untrusted import json_text

        for status in finals:
            if status is not None:
                print(json_text(verdict_line(status, args.lang)))
    return 0


def add_parser(sub: Subcommands) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole system on this machine through Typhoon Yagi (no set-up needed)",
        description="An embedded broker (Mosquitto if installed, else amqtt), the collector "
        "and one agent per simulated site, through a storm scenario. Uses InfluxDB for "
        "history when influxd is installed.",
    )
    demo.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    demo.add_argument(
        "--json", action="store_true", help="print each site's final verdict as a JSON line"
    )
    demo.add_argument("--lang", choices=["vi", "en"], default="vi", help="language of the texts")
    demo.add_argument("--scenario", type=Path, help="scenario file (default: the Yagi scenario)")
    demo.add_argument("--interval", type=float, default=1.0, help="agents' report interval in s")
    demo.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="auto")
    demo.add_argument("--influx", choices=["auto", "on", "off"], default="auto")
    demo.add_argument("--port", type=int, default=0, help="readiness API port (default: any free)")
    demo.set_defaults(func=run)
