"""``kienco deadletter list|show|replay``: what the collector rejected; replay it after a fix.

Everything goes through the collector's API (``/api/v1/deadletter``): the store is
the running collector's own file, and a replay must pass through its decode path
and writer (collector/replay.py says why not through the broker). Topics, details
and payloads come from whoever published: they reach the terminal only through
``plumbing.untrusted``.

Exit status: 0 done (a replay with nothing refused again), 3 a replay left some
entries refused, 1 the collector could not be reached or refused the request.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kienco import admin_token
from kienco.commands import add_url_option
from kienco.labels import Lang, local_time
from plumbing.untrusted import json_text, one_line, terminal

if TYPE_CHECKING:
    from kienco.commands import Subcommands

DETAIL_CHARS = 90
HEAD = {
    "vi": ("Số", "Nhận lúc", "Lý do", "Chủ đề", "Chi tiết", "Phát lại"),
    "en": ("ID", "Received", "Reason", "Topic", "Detail", "Replays"),
}
KEPT = {"vi": "{n} mục đang giữ", "en": "{n} kept"}
NONE_KEPT = {"vi": "không có mục nào đang giữ", "en": "nothing kept"}
REPLAYED = {
    "vi": "đã phát lại và lưu {n} mục; {m} mục vẫn bị từ chối",
    "en": "replayed and stored {n}; {m} still refused",
}


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    url = f"{args.url.rstrip('/')}/api/v1/deadletter{path}"
    try:
        response = httpx.request(
            method, url, timeout=120, headers=admin_token.headers(args), **kwargs
        )
    except httpx.HTTPError as exc:
        problem = f"kienco deadletter: cannot reach the collector at {args.url}: {exc}"
        raise SystemExit(problem) from None
    if response.status_code != 200:
        hint = admin_token.explain_refusal(response.status_code, args)
        text = one_line(response.text)[:500]
        raise SystemExit(f"kienco deadletter: {response.status_code} {hint or text}")
    return response.json()


def _when(at: str) -> str:
    return local_time(datetime.fromisoformat(at), "%d/%m %H:%M:%S")


def cmd_list(args: argparse.Namespace) -> int:
    params: dict[str, str] = {"limit": str(args.limit)}
    if args.reason:
        params["reason"] = args.reason
    if args.all:
        params["all"] = "1"
    body = _call(args, "GET", "", params=params)
    entries: list[dict[str, Any]] = body["entries"]
    if args.json:
        for entry in entries:
            print(json_text(entry))
        return 0
    from rich.console import Console
    from rich.table import Table

    lang: Lang = args.lang
    table = Table(*HEAD[lang], box=None, pad_edge=False)
    for e in entries:
        detail = one_line(str(e["detail"]))
        if len(detail) > DETAIL_CHARS:
            detail = detail[: DETAIL_CHARS - 1] + "…"
        replays = str(e["replays"]) + (" ✓" if e["replayed_at"] else "")
        table.add_row(
            str(e["id"]),
            _when(e["received_at"]),
            terminal(e["reason"]),
            terminal(e["topic"]),
            terminal(detail),
            replays,
        )
    # Piped (a file, a pager): no terminal width to fit, so do not cut the details short.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    counts: dict[str, int] = body["counts"]
    total = sum(counts.values())
    if total:
        by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
        console.print(terminal(f"{KEPT[lang].format(n=total)}: {by_reason}"))
    else:
        console.print(NONE_KEPT[lang])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(json_text(_call(args, "GET", f"/{args.id}"), indent=2))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "id": args.id}
    result = _call(args, "POST", "/replay", json=body)
    refused: list[dict[str, Any]] = result["still_refused"]
    if args.json:
        print(json_text(result))
    else:
        lang: Lang = args.lang
        print(REPLAYED[lang].format(n=result["replayed"], m=len(refused)))
        for entry in refused:
            print(one_line(f"  {entry['id']}: {entry['reason']}: {entry['detail']}"))
    return 3 if refused else 0


def add_parser(sub: Subcommands) -> None:
    dead = sub.add_parser(
        "deadletter",
        help="what the collector rejected, with why; replay it after a fix",
        description="The collector's dead-letter store: every message it did not store "
        "(refused by decode, raising after it, or refused by InfluxDB), with the reason. "
        "Exit status: 0 done, 3 a replay left entries refused, 1 collector unreachable.",
    ).add_subparsers(dest="deadletter_cmd", required=True)
    listing = dead.add_parser("list", help="kept entries, newest first")
    listing.add_argument("--reason", help="only this reason (e.g. schema, influx_refused)")
    listing.add_argument("--all", action="store_true", help="replayed entries too")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.set_defaults(func=cmd_list)
    show = dead.add_parser("show", help="one entry with its payload, as JSON")
    show.add_argument("id", type=int)
    show.set_defaults(func=cmd_show)
    replay = dead.add_parser(
        "replay",
        help="drive kept entries through the collector again (needs the admin token)",
        description="Each kept entry (all of them, or those of --reason / --id) goes through "
        "the collector's decode path and writer again, oldest first; stored ones are marked "
        "replayed, the others stay with this time's reason.",
    )
    replay.add_argument("--reason", help="only entries kept for this reason")
    replay.add_argument("--id", type=int, help="only this entry")
    replay.set_defaults(func=cmd_replay)
    for command in (listing, replay):
        command.add_argument("--json", action="store_true", help="JSON instead of text")
        command.add_argument("--lang", choices=["vi", "en"], default="vi")
    for command in (listing, show, replay):
        add_url_option(command)
