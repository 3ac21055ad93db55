"""``kienco simulate``: a fleet of simulated sites over real MQTT connections, for capacity.

    kienco simulate --sites 100000 --connections 10000 --interval 30 --duration 120 \\
        --broker mqtt://127.0.0.1:1883
    kienco simulate --sites 60 --connections 60 --interval 1 --duration 30 \\
        --broker hp=mqtts://prov-hp:8883 --broker qn=mqtts://prov-qn:8883 \\
        --ca-file ca.crt --secrets-dir /etc/kienco/credentials

Each site sends what its agent would (state, meta, a report every interval with its own
sequence number) in a storm by default (kienco/fleet/fleet.py). One site per connection
logs in as ``<province>/<site>`` with the password ``kienco credentials`` gave it
(``--secrets-dir``); several per connection log in as ``--username``. It prints progress
on stderr and a summary at the end (``--json``: one JSON object). Exit status 0 when every
report made was acknowledged, 3 when some were not, 1 when it could not connect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kienco.commands import Subcommands

EXIT_UNACKED = 3


def _broker_arg(text: str) -> tuple[str, str]:
    """``URL`` (every province) or ``PROVINCE=URL``."""
    province, sep, url = text.partition("=")
    if not sep:
        province, url = "*", text
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: use mqtt://host:port or hp=mqtts://host:port")
    return province, url


def run(args: argparse.Namespace) -> int:
    from kienco.fleet.fleet import PROVINCES, Storm, make_sites
    from kienco.fleet.simulate import Broker, Fleet, Options
    from plumbing.mqtt_endpoint import MqttEndpoint

    provinces = tuple(args.province) or PROVINCES[: args.provinces]
    sites = make_sites(args.sites, provinces)
    brokers: dict[str, Broker] = {}
    for province, url in args.broker or [("*", "mqtt://127.0.0.1:1883")]:
        endpoint = MqttEndpoint(url=url, ca_file=args.ca_file)
        brokers[province] = Broker(endpoint.host, endpoint.port, endpoint.ssl_context("--ca-file"))
    password = args.password_file.read_text().strip() if args.password_file else None
    secrets_dir: Path | None = args.secrets_dir

    def site_password(site: Any) -> str | None:
        assert secrets_dir is not None
        return (secrets_dir / f"{site.username}.password").read_text().strip()

    options = Options(
        sites=sites,
        connections=args.connections or len(sites),
        interval_s=args.interval,
        duration_s=args.duration,
        brokers=brokers,
        storm=Storm.over(provinces) if args.scenario == "storm" else Storm.calm(),
        username=args.username,
        password=password,
        site_password=site_password if secrets_dir else None,
        ramp_per_s=args.ramp,
        drain_s=args.drain,
        subscribe_commands=not args.no_subscribe,
        hold_s=args.hold,
        seq_start=args.seq_start,
        progress=lambda line: print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr),
        progress_every_s=args.progress_every,
    )
    try:
        summary = asyncio.run(Fleet(options).run())
    except (ConnectionRefusedError, RuntimeError) as exc:
        print(f"kienco simulate: {exc}", file=sys.stderr)
        return 1
    data = summary.as_dict()
    if not args.seqs:
        data.pop("last_seq")
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        width = max(len(key) for key in data)
        for key, value in data.items():
            print(f"{key.ljust(width)} : {value}")
    return 0 if summary.unacked_at_end == 0 else EXIT_UNACKED


def add_parser(sub: Subcommands) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="simulated sites over real MQTT connections (capacity tests, a storm by default)",
        description="N sites over C MQTT connections from one process, each reporting every "
        "interval with its own sequence number; a storm (a province loses mains, fibre "
        "routes cut) so the rules do real work. Exit status: 0 every report acknowledged, "
        "3 some not, 1 could not connect.",
    )
    simulate.add_argument("--sites", type=int, default=1000, help="simulated sites (1000)")
    simulate.add_argument(
        "--connections", type=int, default=0, help="MQTT connections (default: one per site)"
    )
    simulate.add_argument("--interval", type=float, default=30.0, help="report interval, s (30)")
    simulate.add_argument("--duration", type=float, default=60.0, help="reporting window, s (60)")
    simulate.add_argument(
        "--broker",
        type=_broker_arg,
        action="append",
        help="mqtt[s]://host:port for every province, or PROVINCE=URL; repeatable",
    )
    simulate.add_argument("--ca-file", type=Path, help="the CA of the brokers' certificates")
    simulate.add_argument(
        "--provinces", type=int, default=34, help="spread the sites over this many (34)"
    )
    simulate.add_argument(
        "--province", action="append", default=[], help="these provinces instead; repeatable"
    )
    simulate.add_argument("--scenario", choices=["storm", "calm"], default="storm")
    simulate.add_argument(
        "--secrets-dir",
        type=Path,
        help="one site per connection: <dir>/<province>/<site>.password (kienco credentials)",
    )
    simulate.add_argument("--username", help="several sites per connection: this account")
    simulate.add_argument("--password-file", type=Path, help="its password")
    simulate.add_argument("--ramp", type=float, default=2000.0, help="new connections per s")
    simulate.add_argument(
        "--drain", type=float, default=60.0, help="at the end, wait this long for acks (60)"
    )
    simulate.add_argument(
        "--no-subscribe", action="store_true", help="do not subscribe to the command topics"
    )
    simulate.add_argument(
        "--hold", type=float, default=0.0, help="connected and idle this long first, s (0)"
    )
    simulate.add_argument("--seq-start", type=int, default=1, help="first sequence number")
    simulate.add_argument("--progress-every", type=float, default=10.0, help="s between lines")
    simulate.add_argument("--seqs", action="store_true", help="the last seq of each site too")
    simulate.add_argument("--json", action="store_true", help="one JSON object")
    simulate.set_defaults(func=run)
