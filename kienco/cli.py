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
from contract.wire import Status
from kienco import admin_token
from plumbing.config_errors import ConfigError

EXIT_CONFIG = 2
EXIT_NOT_READY = 3
EXIT_NOTHING_SELECTED = 4  # readiness: no site matched (a mistyped province, a wrong --kind)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


def _cmd_schema(args: argparse.Namespace) -> int:
    from contract.wire import MESSAGE_MODELS, json_schemas

    schemas = json_schemas()
    if args.kind:
        print(
            json.dumps(MESSAGE_MODELS[args.kind].model_json_schema(), indent=2, ensure_ascii=False)
        )
    else:
        print(json.dumps(schemas, indent=2, ensure_ascii=False))
    return 0


def _cmd_agent_probe(args: argparse.Namespace) -> int:
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


def _cmd_agent_run(args: argparse.Namespace) -> int:
    from agent.config import load_site_config
    from agent.runner import Agent

    config = load_site_config(args.config)
    config.broker.ssl_context()  # a TLS file it cannot use stops it now, not at each reconnect

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
        " ".join(config.topic_filters),
        f"{config.influx.url}/{config.influx.database}" if config.influx else "no history",
        collector.api.url if collector.api else "-",
    )
    stop.wait()
    collector.stop()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
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
        from plumbing.untrusted import json_text

        for status in finals:
            if status is not None:
                print(json_text(verdict_line(status, args.lang)))
    return 0


def verdict_line(status: Status, lang: str) -> dict[str, object]:
    """One site's verdict as a JSON line: what scripts read from demo and readiness."""
    return {
        "site": status.site,
        "name": status.name,
        "kind": status.site_kind,
        "province": status.province,
        "state": status.verdict,
        "station_state": status.station_state,
        "backup_hours": status.backup_hours,
        "dark_in_s": status.dark_in_s,
        "independent_paths_up": status.independent_paths_up,
        "risk_level": status.risk_level,
        "evaluated_at": status.evaluated_at.isoformat(),
        "reasons": [
            {
                "code": r.code,
                "rule": r.rule,
                "severity": r.severity,
                "text": r.text_vi if lang == "vi" else r.text_en,
            }
            for r in status.reasons
        ],
    }


def _cmd_readiness(args: argparse.Namespace) -> int:
    import httpx

    from kienco.readiness_view import nothing_selected, print_readiness
    from plumbing.untrusted import json_text, terminal

    url = f"{args.url.rstrip('/')}/api/v1/readiness"
    kind = None if args.kind == "all" else args.kind
    params = {"province": args.province, **({"kind": kind} if kind else {})}
    try:
        response = httpx.get(url, params=params, timeout=10)
        response.raise_for_status()
        statuses = [Status.model_validate_json(json.dumps(s)) for s in response.json()["sites"]]
        known: list[str] = []  # each known site's province, to say why nothing matched
        if not statuses:  # only on this path: ask for every site
            everything = httpx.get(url, timeout=30)
            everything.raise_for_status()
            known = [site["province"] for site in everything.json()["sites"]]
    except httpx.HTTPError as exc:
        print(f"kienco readiness: cannot ask the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    if not statuses:
        why = nothing_selected(province=args.province, kind=kind, known=known, lang=args.lang)
        print(terminal(f"kienco readiness: {why}"), file=sys.stderr)
        return EXIT_NOTHING_SELECTED
    statuses.sort(key=lambda s: (_ORDER.get(s.verdict, 9), s.site))
    if args.json:
        for status in statuses:
            print(json_text(verdict_line(status, args.lang)))
    else:
        print_readiness(statuses, province=args.province, lang=args.lang)
    return 0 if all(s.verdict == "ready" for s in statuses) else EXIT_NOT_READY


_ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}


def _cmd_risk(args: argparse.Namespace) -> int:
    import os

    import httpx

    url = f"{args.url.rstrip('/')}/api/v1/risk"
    try:
        if args.risk_cmd == "set":
            body = {
                "province": args.province,
                "level": args.level,
                "reason": args.reason,
                "set_by": args.by or os.environ.get("USER") or "kienco",
            }
            response = httpx.post(url, json=body, headers=admin_token.headers(args), timeout=10)
        else:
            params = {"province": args.province} if args.province else {}
            response = httpx.get(url, params=params, timeout=10)
    except httpx.HTTPError as exc:
        print(f"kienco risk: cannot reach the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    from plumbing.untrusted import json_text, terminal

    if response.status_code != 200:
        print(terminal(f"kienco risk: {response.status_code} {response.text}"), file=sys.stderr)
        hint = admin_token.explain_refusal(response.status_code, args)
        if hint:
            print(f"kienco risk: {hint}", file=sys.stderr)
        return 1
    print(json_text(response.json(), indent=2))
    return 0


def _cmd_compliance(args: argparse.Namespace) -> int:
    import httpx
    from pydantic import TypeAdapter

    from kienco import compliance_report
    from rules.compliance import ComplianceReport

    params = {"province": args.province}
    if args.area_level:
        params["area_level"] = args.area_level
    try:
        response = httpx.get(f"{args.url.rstrip('/')}/api/v1/compliance", params=params, timeout=60)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"kienco compliance: cannot ask the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    report = TypeAdapter(ComplianceReport).validate_json(response.content)
    if args.format == "table":
        compliance_report.render_table(report, sys.stdout, lang=args.lang)
    else:
        out = args.out or Path(f"compliance-{args.province}.{args.format}")
        with out.open("wb") as stream:
            render = getattr(compliance_report, f"render_{args.format}")
            render(report, stream, lang=args.lang)
        print(out)
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
    schema.add_argument("--kind", choices=["report", "event", "meta", "state", "status", "command"])
    schema.set_defaults(func=_cmd_schema)

    agent = sub.add_parser("agent", help="the edge agent").add_subparsers(
        dest="agent_cmd", required=True
    )
    run = agent.add_parser("run", help="poll the site every interval and report over MQTT")
    run.add_argument("--config", type=Path, required=True, help="site config (YAML)")
    run.set_defaults(func=_cmd_agent_run)
    probe = agent.add_parser(
        "probe", help="run one poll cycle and print the report; publish nothing"
    )
    probe.add_argument("--config", type=Path, required=True, help="site config (YAML)")
    probe.add_argument("--nulls", action="store_true", help="show unknown readings as null")
    probe.set_defaults(func=_cmd_agent_probe)

    collector = sub.add_parser("collector", help="the centre's collector").add_subparsers(
        dest="collector_cmd", required=True
    )
    crun = collector.add_parser("run", help="receive, validate and store every report")
    crun.add_argument("--config", type=Path, required=True, help="collector config (YAML)")
    crun.set_defaults(func=_cmd_collector_run)

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
    demo.set_defaults(func=_cmd_demo)

    ready = sub.add_parser(
        "readiness",
        help="which points of a province are ready, and why not (asks a running collector)",
        description="Exit status: 0 all ready, 3 some not ready, 4 nothing selected (no site "
        "of that kind in that province: a mistyped province?), 1 collector unreachable.",
    )
    ready.add_argument("--province", required=True, help="province code, e.g. hp")
    ready.add_argument(
        "--kind", choices=["meeting_point", "station", "power_room", "all"], default="meeting_point"
    )
    ready.add_argument("--lang", choices=["vi", "en"], default="vi")
    ready.add_argument("--json", action="store_true", help="one JSON line per site")
    ready.add_argument("--url", default="http://127.0.0.1:9108", help="the collector's HTTP API")
    ready.set_defaults(func=_cmd_readiness)

    risk = sub.add_parser(
        "risk", help="a province's disaster risk level (Decision 18/2021/QĐ-TTg, 1–5)"
    ).add_subparsers(dest="risk_cmd", required=True)
    risk_set = risk.add_parser(
        "set",
        help="record a level; the province's sites are judged again (needs the admin token)",
        description="Sends the collector's admin token from $KIENCO_ADMIN_TOKEN "
        "(or --token-env VAR, --token-file PATH); without it the collector refuses.",
    )
    risk_set.add_argument("--province", required=True)
    risk_set.add_argument("--level", type=int, required=True, choices=range(6), help="0 clears")
    risk_set.add_argument("--reason", required=True, help='e.g. "Bão số 3 (Yagi) đổ bộ"')
    risk_set.add_argument("--by", help="who sets it (default: $USER)")
    risk_show = risk.add_parser("show", help="current levels and their history")
    risk_show.add_argument("--province")
    for command in (risk_set, risk_show):
        command.add_argument("--url", default="http://127.0.0.1:9108", help="the collector's API")
        command.set_defaults(func=_cmd_risk)
    admin_token.add_options(risk_set)

    compliance = sub.add_parser(
        "compliance",
        help="hardened stations per area: compliant, not (and why), missing — for the ministry",
    )
    compliance.add_argument("--province", required=True)
    compliance.add_argument("--format", choices=["table", "csv", "pdf"], default="table")
    compliance.add_argument(
        "--out", type=Path, help="file for csv/pdf (default: compliance-<p>.<fmt>)"
    )
    compliance.add_argument("--lang", choices=["vi", "en"], default="vi")
    compliance.add_argument(
        "--area-level", choices=["area", "province"], help="default: the policy's"
    )
    compliance.add_argument("--url", default="http://127.0.0.1:9108", help="the collector's API")
    compliance.set_defaults(func=_cmd_compliance)

    from kienco import (
        credentials_cli,
        dashboards_cli,
        deadletter_cli,
        devices_serve,
        meeting_cli,
        whatif_cli,
    )

    meeting_cli.add_parser(sub)
    whatif_cli.add_parser(sub)
    devices_serve.add_parser(sub)
    dashboards_cli.add_parser(sub)
    deadletter_cli.add_parser(sub)
    credentials_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"kienco: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:
        from rules import PolicyError

        if not isinstance(exc, PolicyError):
            raise
        print(f"kienco: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
