"""``kienco risk set|show``: a province's disaster risk level (Decision 18/2021/QĐ-TTg, 1–5)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from kienco import admin_token
from kienco.commands import add_url_option

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    import httpx

    from plumbing.untrusted import json_text, terminal

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
            response = httpx.get(url, params=params, timeout=10, headers=admin_token.headers(args))
    except httpx.HTTPError as exc:
        print(f"kienco risk: cannot reach the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(terminal(f"kienco risk: {response.status_code} {response.text}"), file=sys.stderr)
        hint = admin_token.explain_refusal(response.status_code, args)
        if hint:
            print(f"kienco risk: {hint}", file=sys.stderr)
        return 1
    print(json_text(response.json(), indent=2))
    return 0


def add_parser(sub: Subcommands) -> None:
    risk = sub.add_parser(
        "risk", help="a province's disaster risk level (Decision 18/2021/QĐ-TTg, 1–5)"
    ).add_subparsers(dest="risk_cmd", required=True)
    risk_set = risk.add_parser(
        "set",
        help="record a level; the province's sites are judged again (needs an admin token)",
        description="Sends a token of role admin from $KIENCO_TOKEN or $KIENCO_ADMIN_TOKEN "
        "(or --token-env VAR, --token-file PATH); without it the collector refuses.",
    )
    risk_set.add_argument("--province", required=True)
    risk_set.add_argument("--level", type=int, required=True, choices=range(6), help="0 clears")
    risk_set.add_argument("--reason", required=True, help='e.g. "Bão số 3 (Yagi) đổ bộ"')
    risk_set.add_argument("--by", help="who sets it (default: $USER)")
    risk_show = risk.add_parser("show", help="current levels and their history")
    risk_show.add_argument("--province")
    for command in (risk_set, risk_show):
        add_url_option(command)
        command.set_defaults(func=run)
