"""``kienco readiness``: which points of a province are ready, and why not.

Asks a running collector (``/api/v1/readiness``). Exit status: 0 all ready,
3 some not ready, 4 nothing selected, 1 collector unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from kienco import admin_token
from kienco.commands import add_url_option

if TYPE_CHECKING:
    from kienco.commands import Subcommands

EXIT_NOT_READY = 3
EXIT_NOTHING_SELECTED = 4  # no site matched (a mistyped province, a wrong --kind)
ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}  # not-ready points first


def run(args: argparse.Namespace) -> int:
    import httpx

    from contract.wire import Status
    from kienco.readiness_view import nothing_selected, print_readiness, verdict_line
    from plumbing.untrusted import json_text, terminal

    url = f"{args.url.rstrip('/')}/api/v1/readiness"
    kind = None if args.kind == "all" else args.kind
    params = {"province": args.province, **({"kind": kind} if kind else {})}
    token = admin_token.headers(args)
    try:
        response = httpx.get(url, params=params, timeout=10, headers=token)
        if response.status_code in (401, 403):
            text = terminal(f"kienco readiness: {response.status_code} {response.text}")
            print(text, file=sys.stderr)
            hint = admin_token.explain_refusal(response.status_code, args)
            print(f"kienco readiness: {hint}", file=sys.stderr)
            return 1
        response.raise_for_status()
        statuses = [Status.model_validate_json(json.dumps(s)) for s in response.json()["sites"]]
        known: list[str] = []  # each known site's province, to say why nothing matched
        if not statuses:  # only on this path: ask for every site
            everything = httpx.get(url, timeout=30, headers=token)
            everything.raise_for_status()
            known = [site["province"] for site in everything.json()["sites"]]
    except httpx.HTTPError as exc:
        print(f"kienco readiness: cannot ask the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    if not statuses:
        why = nothing_selected(province=args.province, kind=kind, known=known, lang=args.lang)
        print(terminal(f"kienco readiness: {why}"), file=sys.stderr)
        return EXIT_NOTHING_SELECTED
    statuses.sort(key=lambda s: (ORDER.get(s.verdict, 9), s.site))
    if args.json:
        for status in statuses:
            print(json_text(verdict_line(status, args.lang)))
    else:
        print_readiness(statuses, province=args.province, lang=args.lang)
    return 0 if all(s.verdict == "ready" for s in statuses) else EXIT_NOT_READY


def add_parser(sub: Subcommands) -> None:
    ready = sub.add_parser(
        "readiness",
        help="which points of a province are ready, and why not (asks a running collector)",
        description="Exit status: 0 all ready, 3 some not ready, 4 nothing selected (no site "
        "of that kind in that province: a mistyped province?), 1 collector unreachable.",
    )
    ready.add_argument("--province", required=True, help="province code, e.g. hp")
    ready.add_argument(
        "--kind", choices=["meeting_point", "station", "power_room", "all"], default="meeting_point"
    )
    ready.add_argument("--lang", choices=["vi", "en"], default="vi")
    ready.add_argument("--json", action="store_true", help="one JSON line per site")
    add_url_option(ready)
    ready.set_defaults(func=run)
