"""``kienco devices serve``: every recording served on loopback as a device.

The simulators are kienco/devices_serve.py; they need the ``devices`` extra (snmpsim,
pymodbus' simulator), imported when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from plumbing.data import firmware_configs

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    from kienco.devices_serve import SimulatorError, serve
    from plumbing.config_errors import ConfigError

    try:
        return asyncio.run(
            serve(
                args.recordings,
                snmp_port=args.snmp_port,
                modbus_port=args.modbus_port,
                duration_s=args.duration,
            )
        )
    except (SimulatorError, ConfigError, OSError) as exc:  # a port in use, a broken dump
        print(f"kienco devices serve: {exc}", file=sys.stderr)
        return 1


def serve_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``devices serve``, here and run alone (``main``)."""
    recordings = firmware_configs() / "recordings"
    parser.add_argument("--recordings", type=Path, default=recordings, help="folder to serve")
    parser.add_argument("--snmp-port", type=int, default=0, help="UDP port (default: a free one)")
    parser.add_argument(
        "--modbus-port",
        type=int,
        default=0,
        help="first TCP port, one per Modbus device (default: free ports)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.set_defaults(func=run)


def add_parser(sub: Subcommands) -> None:
    devices = sub.add_parser("devices", help="simulated power devices").add_subparsers(
        dest="devices_cmd", required=True
    )
    serve_options(
        devices.add_parser(
            "serve",
            help="serve every recording in firmware-configs/ as a device on 127.0.0.1",
            description="SNMP recordings (*.snmprec) through snmpsim, Modbus register dumps "
            "(*.modbus.yaml) through pymodbus, on 127.0.0.1. Prints a devices: snippet "
            "for a site config; runs until Ctrl-C or --duration.",
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``kienco devices serve`` alone, without the CLI's logging set-up (the tests read its
    output): ``python -m kienco.commands.devices [options]``."""
    parser = argparse.ArgumentParser(prog="kienco devices serve")
    serve_options(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
