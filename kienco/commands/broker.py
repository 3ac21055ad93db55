"""``kienco broker probe``: does a Mosquitto broker still answer its clients? (the watchdog)

Exit 0 when every listener of the broker's config answered an MQTT CONNECT (any
answer: kienco/broker_probe.py), or when one did not but the broker is writing its store
(a save of a large queue answers no one for seconds: killing it would lose what it
acknowledged since its previous save); 3 when one did not in any of its tries, the
broker not saving (the watchdog unit then kills the broker, and its own unit starts it
again); 2 when the config cannot be read or has no TCP listener. 3 and nothing else
kills: a probe that fails for another reason (exit 1) leaves the broker alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands

EXIT_NOT_ANSWERING = 3  # the watchdog unit kills the broker on this exit status only


def cmd_probe(args: argparse.Namespace) -> int:
    from kienco.broker_probe import listeners, probe, store

    try:
        text = args.config.read_text()
        found = listeners(text)
    except OSError as exc:
        print(
            f"kienco broker probe: cannot read {args.config}: {exc.strerror} / "
            f"không đọc được tệp cấu hình broker",
            file=sys.stderr,
        )
        return 2
    if not found:
        print(
            f"kienco broker probe: {args.config} has no TCP listener (a `listener <port>` "
            "line) / tệp cấu hình không có listener TCP nào",
            file=sys.stderr,
        )
        return 2
    probed = probe(found, tries=args.tries, timeout_s=args.timeout, database=store(text))
    if probed.busy is not None:
        print(
            f"kienco broker probe: broker bận ghi dữ liệu, không dừng / busy, not killed: "
            f"{probed.busy}; {'; '.join(probed.problems)}"
        )
        return 0
    problems = probed.problems
    for problem in problems:
        print(
            f"kienco broker probe: broker không trả lời / not answering: {problem}",
            file=sys.stderr,
        )
    if not problems:
        print(f"kienco broker probe: {', '.join(str(x) for x in found)}: answered")
    return EXIT_NOT_ANSWERING if problems else 0


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
        return value

    return parse


def add_parser(sub: Subcommands) -> None:
    broker = sub.add_parser(
        "broker",
        help="the kienco Mosquitto brokers: is one still answering (the watchdog's probe)",
    ).add_subparsers(dest="broker_cmd", required=True)
    probe = broker.add_parser(
        "probe",
        help="knock on every listener of a broker's config; exit 3 if one never answers",
        description="Opens a connection to each TCP listener of the Mosquitto config (TLS "
        "where it has a certfile, the certificate not checked) and sends an MQTT CONNECT "
        "without credentials: any answer (a CONNACK, 'not authorised' included, or the "
        "broker closing the connection) is alive. Exit 0 all answered (or the broker is "
        "writing its persistence store: <persistence_file>.new written to in the last 120 s), "
        "3 one did not in any of its tries, 2 the config is unreadable or has no listener. Run by "
        "mosquitto-kienco-watchdog@.timer (firmware-configs/systemd).",
    )
    probe.add_argument(
        "--config", type=Path, required=True, help="the broker's Mosquitto config file"
    )
    probe.add_argument(
        "--tries", type=_positive(int), default=3, help="tries a listener before it is down"
    )
    probe.add_argument("--timeout", type=_positive(float), default=10.0, help="seconds a try waits")
    probe.set_defaults(func=cmd_probe)
