"""Every ``kienco`` command: one module each under ``kienco/commands/``, listed in COMMANDS.

A command module defines ``add_parser(sub)``: it adds its own sub-parser named as its
entry here, its options and ``set_defaults(func=run)``, where ``run(args) -> int`` is the
exit status. At module level it imports only the standard library and light kienco
modules (the contract, plumbing, ``kienco.labels``): building the parser imports every
command, and an edge box (``pip install .``, no ``collector`` extra) must still run
``kienco agent …``. Anything heavier — the collector, rich, reportlab, the Grafana SDK,
snmpsim — is imported inside ``run``. ``tests/test_cli_registry.py`` checks all of this.

Adding a command is a new module here and one line in COMMANDS (docs/extending.md).
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    # argparse exposes the type of ``add_subparsers()`` only under a private name.
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

# name -> module, in the order ``kienco --help`` lists them. Importing this module
# imports none of them: build_parser() does, one by one.
COMMANDS: Final[dict[str, str]] = {
    "schema": "kienco.commands.schema",
    "agent": "kienco.commands.agent",
    "collector": "kienco.commands.collector",
    "demo": "kienco.commands.demo",
    "readiness": "kienco.commands.readiness",
    "risk": "kienco.commands.risk",
    "compliance": "kienco.commands.compliance",
    "meeting": "kienco.commands.meeting",
    "whatif": "kienco.commands.whatif",
    "devices": "kienco.commands.devices",
    "dashboards": "kienco.commands.dashboards",
    "deadletter": "kienco.commands.deadletter",
    "credentials": "kienco.commands.credentials",
    "broker": "kienco.commands.broker",
    "simulate": "kienco.commands.simulate",
    "token": "kienco.commands.token",
    "policy": "kienco.commands.policy",
}

COLLECTOR_URL: Final = "http://127.0.0.1:9108"


class Command(Protocol):
    """What a module listed in COMMANDS provides."""

    def add_parser(self, sub: Subcommands) -> None: ...


def add_commands(sub: Subcommands) -> None:
    """Give ``sub`` every command of COMMANDS, in order."""
    for module in COMMANDS.values():
        command: Command = importlib.import_module(module)
        command.add_parser(sub)


def add_url_option(command: argparse.ArgumentParser) -> None:
    """``--url``: the collector's HTTP API, for the commands that ask a running collector;
    with the token options, since every route of it is by role (kienco/admin_token.py)."""
    from kienco import admin_token

    command.add_argument("--url", default=COLLECTOR_URL, help="the collector's HTTP API")
    admin_token.add_options(command)
