"""``kienco policy check``: a rules policy file checked as the collector would load it.

Before a collector is restarted with an edited policy: every wrong key, value or
contradiction is named with its fix (exit 2), as ``kienco collector run`` would refuse it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands

VALID = {
    "vi": "{source}: hợp lệ (phiên bản {version}, {kinds} loại điểm, {steps} bậc rủi ro)",
    "en": "{source}: valid (version {version}, {kinds} site kinds, {steps} risk steps)",
}


def run(args: argparse.Namespace) -> int:
    from rules.policy import load_policy

    policy = load_policy(args.file)  # a PolicyError: kienco.cli prints it, exit 2
    source = str(args.file) if args.file else "rules/default-policy.yaml"
    kinds = len(type(policy.kinds).model_fields)
    print(
        VALID[args.lang].format(
            source=source, version=policy.version, kinds=kinds, steps=len(policy.risk)
        )
    )
    return 0


def add_parser(sub: Subcommands) -> None:
    policy = sub.add_parser(
        "policy", help="the rules policy: check a file before the collector loads it"
    ).add_subparsers(dest="policy_cmd", required=True)
    check = policy.add_parser(
        "check",
        help="load a policy file as the collector would; name every problem with its fix",
        description="Exit status: 0 valid, 2 invalid (each problem: key, value, fix).",
    )
    check.add_argument("file", type=Path, nargs="?", help="default: the shipped policy")
    check.add_argument("--lang", choices=["vi", "en"], default="vi")
    check.set_defaults(func=run)
