"""One way to add a command: a module of kienco/commands/, one line in COMMANDS.

And building the parser stays cheap and edge-safe: no command imports the collector or
an optional extra before it runs.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from kienco.cli import build_parser
from kienco.commands import COMMANDS

REPO = Path(__file__).resolve().parents[1]
COMMANDS_DIR = REPO / "kienco" / "commands"

# What an edge box (``pip install .``) lacks, or the agent never needs to start.
NOT_ON_THE_EDGE = {
    "collector",
    "rich",
    "prometheus_client",
    "amqtt",
    "reportlab",
    "grafana_foundation_sdk",
    "snmpsim",
    "pysmi",
}
# What a command module may import at module level; the rest inside its run().
MODULE_LEVEL = {"contract", "plumbing", "kienco.admin_token", "kienco.commands", "kienco.labels"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    children = _subcommands(parser)
    if not children:
        yield path, parser
    for name, child in children.items():
        yield from _leaves(child, f"{path} {name}".strip())


def test_the_commands_are_the_registry_in_order() -> None:
    assert list(_subcommands(build_parser())) == list(COMMANDS)


def test_every_module_of_kienco_commands_is_registered() -> None:
    modules = {f"kienco.commands.{p.stem}" for p in COMMANDS_DIR.glob("*.py")} - {
        "kienco.commands.__init__"
    }
    assert modules == set(COMMANDS.values())


def test_every_command_runs_something() -> None:
    leaves = dict(_leaves(build_parser(), ""))
    assert {"agent run", "agent probe", "meeting plan", "schema"} <= set(leaves)
    for path, parser in leaves.items():
        assert callable(parser.get_default("func")), f"kienco {path} sets no func"


def test_command_modules_import_only_light_things_at_module_level() -> None:
    wrong = []
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in COMMANDS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: imports inside run() are the point
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                allowed = name.split(".")[0] in stdlib or any(
                    name == ok or name.startswith(ok + ".") for ok in MODULE_LEVEL
                )
                if not allowed:
                    wrong.append(f"{path.name}: {name}")
    assert not wrong, wrong


def test_building_the_parser_imports_nothing_the_edge_box_lacks() -> None:
    code = (
        "import json, sys\n"
        "from kienco.cli import build_parser\n"
        "build_parser().parse_args(['agent', 'run', '--config', 'site.yaml'])\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "kienco" in loaded
    assert not loaded & NOT_ON_THE_EDGE, sorted(loaded & NOT_ON_THE_EDGE)
