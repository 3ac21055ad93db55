"""``kienco token new|hash``: role tokens for the collector's ``http.tokens``, kept hashed.

``new`` makes a random token, prints it once (give it to its holder) and the
config entry that keeps only its hash; ``hash`` does the same for a token read
from standard input (one a person chose: slow pbkdf2, not a fast hash).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands

TEXTS = {
    "vi": {
        "token": "Mã (chỉ hiện lần này; trao cho người giữ, không lưu ở đây):",
        "entry": "Thêm vào http.tokens trong cấu hình collector, rồi khởi động lại collector:",
    },
    "en": {
        "token": "Token (shown this once; give it to its holder, keep it nowhere else):",
        "entry": "Add to http.tokens in the collector's config, then restart the collector:",
    },
}


def _role(text: str) -> str:
    from collector.web.roles import parse_role

    try:
        return str(parse_role(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: letters, digits and . _ @ - (at most 64), e.g. hp-it or ops"
        )
    return text


def _entry(name: str, role: str, key: str, value: str) -> str:
    # The YAML flow form is JSON: it pastes into a YAML list as it is.
    return "- " + json.dumps({"name": name, "role": role, key: value}, ensure_ascii=False)


def cmd_new(args: argparse.Namespace) -> int:
    from collector.web.tokens import new_token, sha256_hex

    token = new_token()
    texts = TEXTS[args.lang]
    entry = _entry(args.name, args.role, "sha256", sha256_hex(token))
    if args.json:
        print(json.dumps({"token": token, "entry": json.loads(entry[2:])}))
        return 0
    print(texts["token"])
    print(f"  {token}")
    print(texts["entry"])
    print(f"  {entry}")
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    from collector.web.tokens import MIN_TOKEN_CHARS, pbkdf2_hash, sha256_hex

    lines = sys.stdin.read().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS:
        print(
            f"kienco token hash: give the token on standard input, at least {MIN_TOKEN_CHARS} "
            "characters (e.g. `kienco token new` makes one) / cần mã dài ít nhất "
            f"{MIN_TOKEN_CHARS} ký tự",
            file=sys.stderr,
        )
        return 2
    if args.scheme == "sha256":
        entry = _entry(args.name, args.role, "sha256", sha256_hex(token))
    else:
        entry = _entry(args.name, args.role, "pbkdf2", pbkdf2_hash(token))
    print(json.dumps(json.loads(entry[2:])) if args.json else entry)
    return 0


def add_parser(sub: Subcommands) -> None:
    token = sub.add_parser(
        "token",
        help="role tokens for the collector (http.tokens), kept hashed",
        description="Roles: noc (reads all), ministry (reads all; compliance), admin "
        "(everything: risk levels, meetings, rehearsals, dead letters), province:<code> "
        "(its own province only: reads, plans and rehearses its meetings).",
    ).add_subparsers(dest="token_cmd", required=True)
    new = token.add_parser("new", help="make a random token and the config entry for it")
    new.set_defaults(func=cmd_new)
    hashed = token.add_parser(
        "hash",
        help="the config entry for a token read from standard input",
        description="Reads the token from standard input (never the command line, where ps "
        "and the shell history would keep it), e.g. `kienco token hash --name hp-it "
        "--role province:hp < token.txt`.",
    )
    hashed.add_argument(
        "--scheme",
        choices=["pbkdf2", "sha256"],
        default="pbkdf2",
        help="pbkdf2 (default: slow, for a token a person chose) or sha256 (a random one)",
    )
    hashed.set_defaults(func=cmd_hash)
    for command in (new, hashed):
        command.add_argument(
            "--name", required=True, type=_name, help="who holds it, e.g. hp-it or ops"
        )
        command.add_argument(
            "--role", required=True, type=_role, help="noc, ministry, admin or province:<code>"
        )
        command.add_argument("--json", action="store_true", help="print JSON")
        command.add_argument("--lang", choices=["vi", "en"], default="vi")
