"""``kienco agent run|probe``: the edge agent. Runs on an edge box: ``pip install .`` only."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    from agent.config import load_site_config
    from agent.runner import Agent
    from plumbing.config_errors import ConfigError
    from plumbing.secrets import unreadable_secrets

    config = load_site_config(args.config)
    config.broker.ssl_context()  # a TLS file it cannot use stops it now, not at each reconnect
    # So does its broker password (a secrets file left 0600 root: not at each reconnect).
    if problems := unreadable_secrets(config.broker, "broker"):
        raise ConfigError(str(args.config), problems)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Agent(config).run(stop)

    asyncio.run(main())
    return 0


def probe(args: argparse.Namespace) -> int:
    from agent.config import load_site_config
    from agent.cycle import Probes, poll_once
    from contract.wire import utc_now
    from plumbing.untrusted import json_text

    config = load_site_config(args.config)

    async def once() -> str:
        report = await poll_once(config, Probes(), seq=0, now=utc_now())
        # Devices' strings (errors, port names) are shown: no control sequence reaches the tty.
        return json_text(report.model_dump(mode="json", exclude_none=not args.nulls), indent=2)

    print(asyncio.run(once()))
    return 0


def add_parser(sub: Subcommands) -> None:
    agent = sub.add_parser("agent", help="the edge agent").add_subparsers(
        dest="agent_cmd", required=True
    )
    running = agent.add_parser("run", help="poll the site every interval and report over MQTT")
    running.add_argument("--config", type=Path, required=True, help="site config (YAML)")
    running.set_defaults(func=run)
    once = agent.add_parser(
        "probe", help="run one poll cycle and print the report; publish nothing"
    )
    once.add_argument("--config", type=Path, required=True, help="site config (YAML)")
    once.add_argument("--nulls", action="store_true", help="show unknown readings as null")
    once.set_defaults(func=probe)
