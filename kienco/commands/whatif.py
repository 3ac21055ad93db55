"""``kienco whatif --province hp --grid-off``: which sites go dark by when if mains fail.

Asks the collector (``GET /api/v1/whatif/grid-off``) and prints its forecast
(kienco/whatif_view.py), or with ``--json`` the collector's answer. Exit status: 0 every
site's forecast is known, none goes dark and every meeting point holds, 3 otherwise (a site
that cannot be forecast included), 4 the collector knows no site in the province, 1 it
cannot be asked.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from kienco import admin_token
from kienco.commands import add_url_option
from kienco.commands.meeting import parse_duration, parse_start

if TYPE_CHECKING:
    from kienco.commands import Subcommands

EXIT_SOME_DARK = 3
EXIT_NOTHING_SELECTED = 4


def run(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console

    from kienco.labels import LOCAL_TZ
    from kienco.whatif_view import exit_status, render
    from plumbing.untrusted import json_text, terminal

    params: dict[str, str | float] = {"province": args.province, "hours": args.hours}
    if args.at:
        params["at"] = parse_start(args.at, args.date, datetime.now(LOCAL_TZ)).isoformat()
    if args.meeting:
        params["meeting_s"] = args.meeting
    url = f"{args.url.rstrip('/')}/api/v1/whatif/grid-off"
    try:
        response = httpx.get(url, params=params, timeout=60, headers=admin_token.headers(args))
    except httpx.HTTPError as exc:
        print(f"kienco whatif: cannot ask the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code == 404:
        print(terminal(f"kienco whatif: {response.json()['error']}"), file=sys.stderr)
        return EXIT_NOTHING_SELECTED
    if response.status_code != 200:
        print(terminal(f"kienco whatif: {response.status_code} {response.text}"), file=sys.stderr)
        hint = admin_token.explain_refusal(response.status_code, args)
        if hint:
            print(f"kienco whatif: {hint}", file=sys.stderr)
        return 1
    payload = response.json()
    if args.json:
        print(json_text(payload))
    else:
        render(payload, args.lang, Console())
    return exit_status(payload)


def add_parser(sub: Subcommands) -> None:
    whatif = sub.add_parser(
        "whatif",
        help="if mains fail in a province: which sites go dark by when, which meeting points "
        "hold, which areas lose their hardened stations",
        description="Forecast from every site's current state (asks a running collector). "
        "Exit status: 0 every site's forecast is known, none goes dark and every meeting "
        "point holds, 3 otherwise (a site that cannot be forecast, or of the inventory and "
        "never reported, included), 4 no site in "
        "the province, 1 collector unreachable.",
    )
    whatif.add_argument("--province", required=True, help="province code, e.g. hp")
    whatif.add_argument(
        "--grid-off",
        action="store_true",
        required=True,
        help="the scenario: mains off across the province (the only one so far)",
    )
    whatif.add_argument("--at", help="when mains fail, HH:MM Vietnam time or ISO (default: now)")
    whatif.add_argument("--date", help="YYYY-MM-DD for --at (default: today, or tomorrow)")
    whatif.add_argument("--hours", type=float, default=12.0, help="horizon (default 12)")
    whatif.add_argument(
        "--meeting",
        type=parse_duration,
        help="a meeting from --at the points must hold, e.g. 3h (default: the policy's)",
    )
    whatif.add_argument("--json", action="store_true", help="the collector's answer as JSON")
    whatif.add_argument("--lang", choices=["vi", "en"], default="vi")
    add_url_option(whatif)
    whatif.set_defaults(func=run)
