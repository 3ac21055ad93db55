"""``kienco schema``: the JSON Schema of every wire message, for agents in other languages."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    from contract.wire import MESSAGE_MODELS, json_schemas

    if args.kind:
        schema = MESSAGE_MODELS[args.kind].model_json_schema()
        print(json.dumps(schema, indent=2, ensure_ascii=False))
    else:
        print(json.dumps(json_schemas(), indent=2, ensure_ascii=False))
    return 0


def add_parser(sub: Subcommands) -> None:
    schema = sub.add_parser("schema", help="print the JSON Schema of every wire message")
    schema.add_argument("--kind", choices=["report", "event", "meta", "state", "status", "command"])
    schema.set_defaults(func=run)
