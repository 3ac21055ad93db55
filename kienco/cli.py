"""The ``kienco`` command line: the top parser and its exit codes.

Every command is a module of ``kienco/commands/``, listed in ``kienco.commands.COMMANDS``;
they import their dependencies when they run: an edge box has no collector dependencies.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from agent import __version__
from kienco.commands import add_commands
from plumbing.config_errors import ConfigError

EXIT_CONFIG = 2


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kienco",
        description="kienco: which places will hold in a disaster — power and links of "
        "stations and meeting points, measured.",
    )
    parser.add_argument("--version", action="version", version=f"kienco {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_commands(parser.add_subparsers(dest="command", required=True))
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
