"""The ``kienco`` command line. Imports lazily: an edge box has no collector dependencies."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.config_errors import ConfigError

EXIT_CONFIG = 2


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _cmd_schema(args: argparse.Namespace) -> int:
    from agent.wire import MESSAGE_MODELS, json_schemas

    schemas = json_schemas()
    if args.kind:
        print(json.dumps(MESSAGE_MODELS[args.kind].model_json_schema(), indent=2, ensure_ascii=False))
    else:
        print(json.dumps(schemas, indent=2, ensure_ascii=False))
    return 0


def _cmd_agent_probe(args: argparse.Namespace) -> int:
    from agent.config import load_site_config
    from agent.cycle import Probes, poll_once
    from agent.wire import utc_now

    config = load_site_config(args.config)

    async def once() -> str:
        report = await poll_once(config, Probes.default(), seq=0, now=utc_now())
        return report.model_dump_json(indent=2, exclude_none=not args.nulls)

    print(asyncio.run(once()))
    return 0


def _cmd_agent_run(args: argparse.Namespace) -> int:
    from agent.config import load_site_config
    from agent.runner import Agent

    config = load_site_config(args.config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Agent(config).run(stop)

    asyncio.run(main())
    return 0


def _cmd_collector_run(args: argparse.Namespace) -> int:
    import threading

    from collector.config import load_collector_config
    from collector.service import Collector

    config = load_collector_config(args.config)
    collector = Collector(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    logging.getLogger("kienco.collector").info(
        "collector: %s %s -> %s; API and /metrics on %s",
        config.broker.url,
        config.broker.topic_filter,
        f"{config.influx.url}/{config.influx.database}" if config.influx else "no history",
        collector.api.url if collector.api else "-",
    )
    stop.wait()
    collector.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kienco",
        description="kienco: which places will hold in a disaster — power and links of "
        "stations and meeting points, measured.",
    )
    parser.add_argument("--version", action="version", version=f"kienco {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    schema = sub.add_parser("schema", help="print the JSON Schema of every wire message")
    schema.add_argument("--kind", choices=["report", "event", "meta", "state", "status"])
    schema.set_defaults(func=_cmd_schema)

    agent = sub.add_parser("agent", help="the edge agent").add_subparsers(dest="agent_cmd", required=True)
    run = agent.add_parser("run", help="poll the site every interval and report over MQTT")
    run.add_argument("--config", type=Path, required=True, help="site config (YAML)")
    run.set_defaults(func=_cmd_agent_run)
    probe = agent.add_parser("probe", help="run one poll cycle and print the report; publish nothing")
    probe.add_argument("--config", type=Path, required=True, help="site config (YAML)")
    probe.add_argument("--nulls", action="store_true", help="show unknown readings as null")
    probe.set_defaults(func=_cmd_agent_probe)

    collector = sub.add_parser("collector", help="the centre's collector").add_subparsers(
        dest="collector_cmd", required=True
    )
    crun = collector.add_parser("run", help="receive, validate and store every report")
    crun.add_argument("--config", type=Path, required=True, help="collector config (YAML)")
    crun.set_defaults(func=_cmd_collector_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"kienco: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
