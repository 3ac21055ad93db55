"""``kienco meeting plan|status|rehearse|list``: planned meetings, through the collector's API."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from contract.wire import Status
from kienco import admin_token
from kienco.commands import add_url_option
from kienco.labels import LOCAL_TZ, Lang, local_time, risk_levels
from plumbing.untrusted import json_text, terminal

if TYPE_CHECKING:
    from kienco.commands import Subcommands

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+)m(?:in)?)?$")
STATUS_LINE = {
    "vi": "{title}: {ready}/{total} điểm sẵn sàng — họp lúc {start}, {hours} — {risk}"
    " — đánh giá lúc {at}",
    "en": "{title}: {ready}/{total} points ready — starts {start}, {hours} — {risk}"
    " — judged at {at}",
}


def parse_duration(text: str) -> float:
    """``3h``, ``90m``, ``1h30m``, ``2.5h`` or plain seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r}: use a duration like 3h, 90m or 1h30m")
    hours, minutes = match.groups()
    return float(hours or 0) * 3600 + float(minutes or 0) * 60


def parse_start(at: str, date: str | None, now: datetime) -> datetime:
    """A local (Asia/Ho_Chi_Minh) HH:MM, today or — if passed — tomorrow; or a full ISO time."""
    if "T" in at:
        parsed = datetime.fromisoformat(at)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)
    hour, minute = (int(part) for part in at.split(":"))
    local_now = now.astimezone(LOCAL_TZ)
    day = datetime.fromisoformat(date).date() if date else local_now.date()
    start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TZ)
    if date is None and start < local_now:
        start += timedelta(days=1)
    return start


def _client(args: argparse.Namespace) -> Any:
    import httpx

    return httpx.Client(
        base_url=f"{args.url.rstrip('/')}/api/v1", headers=admin_token.headers(args), timeout=15
    )


def _call(args: argparse.Namespace, method: str, path: str, body: object = None) -> Any:
    import httpx

    try:
        with _client(args) as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise SystemExit(
            f"kienco meeting: cannot reach the collector at {args.url}: {exc}"
        ) from None
    if response.status_code != 200:
        hint = admin_token.explain_refusal(response.status_code, args)
        raise SystemExit(
            str(terminal(f"kienco meeting: {response.status_code} {response.text}"))
            + (f"\nkienco meeting: {hint}" if hint else "")
        )
    return response.json()


def cmd_plan(args: argparse.Namespace) -> int:
    now = datetime.now(LOCAL_TZ)
    start = parse_start(args.at, args.date, now)
    body = {
        "title": args.title or f"Họp khẩn {args.province or ''} {local_time(start)}".strip(),
        "starts_at": start.isoformat(),
        "duration_s": args.duration,
        "province": args.province,
        "points": [p for p in (args.points or "").split(",") if p],
        "created_by": args.by or os.environ.get("USER") or "kienco",
    }
    meeting = _call(args, "POST", "/meetings", body)
    print(json_text(meeting, indent=2))
    return 0


def _show(args: argparse.Namespace, payload: dict[str, Any]) -> int:
    statuses = [Status.model_validate_json(json.dumps(p)) for p in payload["points"]]
    meeting = payload["meeting"]
    lang: Lang = args.lang
    if args.json:
        print(json_text(payload))
    else:
        from kienco.readiness_view import print_readiness

        start = datetime.fromisoformat(meeting["starts_at"])
        summary = STATUS_LINE[lang].format(
            title=meeting["title"],
            ready=payload["ready"],
            total=payload["total"],
            start=local_time(start, "%d/%m %H:%M"),
            hours=f"{meeting['duration_s'] / 3600:g} h",
            risk=risk_levels(statuses, lang),
            at=local_time(datetime.fromisoformat(payload["evaluated_at"]), "%H:%M:%S"),
        )
        print_readiness(
            statuses, province=meeting.get("province") or "", lang=lang, summary=summary
        )
    return 0 if payload["ready"] == payload["total"] else 3


def cmd_status(args: argparse.Namespace) -> int:
    while True:
        code = _show(args, _call(args, "GET", f"/meetings/{args.meeting}"))
        if not args.watch:
            return code
        time.sleep(args.watch)


def _not_answered(asked: list[str], asked_at: str, seen: dict[str, Any]) -> list[str]:
    """The points asked whose latest rehearsal is older than the request (an earlier
    rehearsal, passed or not, is no answer to this one)."""
    since = datetime.fromisoformat(asked_at)
    return [
        site
        for site in asked
        if site not in seen or datetime.fromisoformat(seen[site]["at"]) < since
    ]


def cmd_rehearse(args: argparse.Namespace) -> int:
    answer = _call(args, "POST", f"/meetings/{args.meeting}/rehearse")
    asked, asked_at = answer["requested"], answer["requested_at"]
    asked_line = f"rehearsal asked of {len(asked)} point(s): {', '.join(asked)}"
    print(terminal(asked_line), file=sys.stderr)
    deadline = time.monotonic() + args.wait
    while True:
        payload = _call(args, "GET", f"/meetings/{args.meeting}")
        waiting = _not_answered(asked, asked_at, payload["rehearsals"])
        if not waiting or time.monotonic() > deadline:
            if waiting:
                print(terminal(f"no answer yet from: {', '.join(waiting)}"), file=sys.stderr)
            return _show(args, payload)
        time.sleep(1)


def cmd_list(args: argparse.Namespace) -> int:
    print(json_text(_call(args, "GET", "/meetings"), indent=2))
    return 0


def add_parser(sub: Subcommands) -> None:
    meeting = sub.add_parser(
        "meeting", help="planned meetings: N of M points ready, and why not"
    ).add_subparsers(dest="meeting_cmd", required=True)
    token_note = (
        "Sends a token from $KIENCO_TOKEN or $KIENCO_ADMIN_TOKEN (or --token-env VAR, "
        "--token-file PATH): an admin's, or the province's for its own meetings; without "
        "it the collector refuses."
    )
    plan = meeting.add_parser(
        "plan",
        help="declare a meeting and its points (needs an admin or the province's token)",
        description=token_note,
    )
    plan.add_argument("--at", required=True, help="start, HH:MM Vietnam time (or ISO 8601)")
    plan.add_argument("--date", help="YYYY-MM-DD (default: today, or tomorrow if passed)")
    plan.add_argument("--duration", type=parse_duration, required=True, help="e.g. 3h, 90m")
    plan.add_argument("--province", help="its points: every meeting point of the province")
    plan.add_argument("--points", help="or name them: site,site,...")
    plan.add_argument("--title")
    plan.add_argument("--by", help="who plans it (default: $USER)")
    plan.set_defaults(func=cmd_plan)
    status = meeting.add_parser("status", help="N of M points ready, each not-ready with why")
    status.add_argument("meeting")
    status.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every N s")
    rehearse = meeting.add_parser(
        "rehearse",
        help="run the pre-meeting check on every point (needs an admin or the province's token)",
        description=token_note,
    )
    rehearse.add_argument("meeting")
    rehearse.add_argument("--wait", type=float, default=60, help="seconds to wait for answers")
    listing = meeting.add_parser("list", help="the planned meetings")
    listing.set_defaults(func=cmd_list)
    for command, func in ((status, cmd_status), (rehearse, cmd_rehearse)):
        command.add_argument("--json", action="store_true")
        command.add_argument("--lang", choices=["vi", "en"], default="vi")
        command.set_defaults(func=func)
    for command in (plan, status, rehearse, listing):  # with the token options
        add_url_option(command)
