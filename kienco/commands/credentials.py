"""``kienco credentials create|check``: one MQTT account per site, from the inventory.

Each site of the inventory logs in as ``<province>/<site>`` (the shipped ACL binds that
name to the site's topics in its province). ``create`` gives each site that has none a
random password: its hash goes into Mosquitto's password file (kienco.mosquitto_passwd),
the password itself into a secrets file of its own, ``<dir>/<province>/<site>.password``
(0600), to install on the site's box as the agent's ``broker.password: {file: …}``.
Accounts of the centre (collector shards, provincial bridges) are named with ``--user``
and get ``<dir>/<name>.password``. Running it again changes nothing but what is new or
asked for (``--rotate``); ``--prune`` removes sites that left the inventory.

Secrets are never printed: the output says counts, names and where the files are.
``check`` says whether every site has an account whose password is its secrets file.
Exit status: 0 done / all good, 3 something needs attention (named), 2 a bad inventory or
options that cannot be done as given (``--rotate`` of an account not named, ``--prune``
without ``--inventory``): then nothing is changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kienco.commands import Subcommands

EXIT_ATTENTION = 3
EXIT_USAGE = 2  # as argparse: what was asked cannot be done as given
TEXTS = {
    "vi": {
        "summary": "{created} tài khoản mới, {rotated} đổi mật khẩu, {rehashed} băm lại, "
        "{unchanged} giữ nguyên, {pruned} đã xóa",
        "files": "tệp mật khẩu: {passwd}; tệp bí mật: {dir}",
        "reload": "nạp lại broker để áp dụng: systemctl reload mosquitto-kienco@<tên>",
        "lost": "{user}: có trong tệp mật khẩu nhưng không có tệp bí mật; "
        "đổi mật khẩu bằng --rotate {user}",
        "stale": "{n} tài khoản trạm không còn trong danh mục (xóa bằng --prune): {users}",
        "ok": "{n} tài khoản đều đúng",
        "missing": "{user}: chưa có tài khoản",
        "no_secret": "{user}: không có tệp bí mật {path}",
        "mismatch": "{user}: mật khẩu trong {path} không khớp tệp mật khẩu",
        "not_named": "--rotate {users}: không có trong các tài khoản đã nêu (thêm --inventory "
        "đúng tỉnh, hoặc --user cho tài khoản trung tâm); không thay đổi gì",
        "prune_alone": "--prune cần --inventory: không có danh mục thì mọi tài khoản trạm "
        "đều như đã rời danh mục; không thay đổi gì",
    },
    "en": {
        "summary": "{created} created, {rotated} rotated, {rehashed} re-hashed, "
        "{unchanged} unchanged, {pruned} pruned",
        "files": "password file: {passwd}; secrets: {dir}",
        "reload": "reload the broker to apply: systemctl reload mosquitto-kienco@<name>",
        "lost": "{user}: in the password file but no secrets file; "
        "give it a new password with --rotate {user}",
        "stale": "{n} site accounts no longer in the inventory (remove with --prune): {users}",
        "ok": "{n} accounts all good",
        "missing": "{user}: no account",
        "no_secret": "{user}: no secrets file {path}",
        "mismatch": "{user}: the password in {path} does not match the password file",
        "not_named": "--rotate {users}: not among the accounts named (give --inventory with "
        "its province, or --user for an account of the centre); nothing changed",
        "prune_alone": "--prune needs --inventory: without it every site account would look "
        "gone from the inventory; nothing changed",
    },
}


def _account_name(text: str) -> str:
    """An account named on the command line: a slug, or <province>/<site> (never a path)."""
    from kienco.credentials import AGENT_ACCOUNT, CENTRE_ACCOUNT

    if not (CENTRE_ACCOUNT.match(text) or AGENT_ACCOUNT.match(text)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use a lowercase name (collector-a1, bridge-hp) or <province>/<site>"
        )
    return text


def _accounts(args: argparse.Namespace) -> list[str]:
    from kienco.credentials import site_accounts

    if not args.inventory and not args.user:
        raise SystemExit(f"kienco credentials {args.credentials_cmd}: give --inventory or --user")
    sites = site_accounts(args.inventory, args.province) if args.inventory else []
    return sites + list(args.user)


def cmd_create(args: argparse.Namespace) -> int:
    from kienco.credentials import NotNamed, create

    texts = TEXTS[args.lang]
    if args.prune and not args.inventory:
        print(texts["prune_alone"], file=sys.stderr)
        return EXIT_USAGE
    try:
        outcome = create(
            _accounts(args),
            args.password_file,
            args.secrets_dir,
            rotate=args.rotate,
            prune=args.prune,
            provinces=args.province,
            sites_listed=bool(args.inventory),
        )
    except NotNamed as exc:
        print(texts["not_named"].format(users=exc), file=sys.stderr)
        return EXIT_USAGE
    print(
        texts["summary"].format(
            created=len(outcome.created),
            rotated=len(outcome.rotated),
            rehashed=len(outcome.rehashed),
            unchanged=len(outcome.unchanged),
            pruned=len(outcome.pruned),
        )
    )
    print(texts["files"].format(passwd=args.password_file, dir=args.secrets_dir))
    for user in outcome.lost:
        print(texts["lost"].format(user=user), file=sys.stderr)
    if outcome.stale:
        shown = ", ".join(outcome.stale[:10]) + (" …" if len(outcome.stale) > 10 else "")
        print(texts["stale"].format(n=len(outcome.stale), users=shown), file=sys.stderr)
    if outcome.created or outcome.rotated or outcome.rehashed or outcome.pruned:
        print(texts["reload"])
    return EXIT_ATTENTION if outcome.lost else 0


def cmd_check(args: argparse.Namespace) -> int:
    from kienco.credentials import check, secret_path

    texts = TEXTS[args.lang]
    accounts = _accounts(args)
    problems = check(accounts, args.password_file, args.secrets_dir)
    for key, user in problems:
        path = secret_path(args.secrets_dir, user)
        print(texts[key].format(user=user, path=path), file=sys.stderr)
    if problems:
        return EXIT_ATTENTION
    print(texts["ok"].format(n=len(accounts)))
    return 0


def add_parser(sub: Subcommands) -> None:
    credentials = sub.add_parser(
        "credentials",
        help="MQTT accounts per site from the inventory: Mosquitto's password file and "
        "one secrets file per site",
        description="Each inventory site logs in as <province>/<site>. create: a random "
        "password for each site without one (its hash into the password file, the password "
        "into <secrets-dir>/<province>/<site>.password, 0600); check: every site has an "
        "account matching its secrets file. Secrets are never printed. Exit status: 0 done, "
        "3 something needs attention, 2 a bad inventory or options that cannot be done as "
        "given (nothing changed).",
    ).add_subparsers(dest="credentials_cmd", required=True)
    create_cmd = credentials.add_parser("create", help="accounts for new sites; --rotate some")
    create_cmd.add_argument(
        "--rotate",
        action="append",
        default=[],
        metavar="USER",
        type=_account_name,
        help="a new password for this account (hp/hp-bts-001, bridge-hp); repeatable",
    )
    create_cmd.add_argument(
        "--prune",
        action="store_true",
        help="remove site accounts no longer in the inventory (needs --inventory)",
    )
    create_cmd.set_defaults(func=cmd_create)
    check_cmd = credentials.add_parser("check", help="every account matches its secrets file")
    check_cmd.set_defaults(func=cmd_check)
    for command in (create_cmd, check_cmd):
        command.add_argument("--inventory", type=Path, help="the fleet (CSV or YAML)")
        command.add_argument(
            "--province", action="append", default=[], help="only this province; repeatable"
        )
        command.add_argument(
            "--user",
            action="append",
            default=[],
            type=_account_name,
            help="an account of the centre too: a collector shard (collector-a1) or a "
            "provincial bridge (bridge-hp); repeatable",
        )
        command.add_argument(
            "--password-file",
            type=Path,
            required=True,
            help="Mosquitto's password_file, e.g. /etc/mosquitto/kienco.passwd",
        )
        command.add_argument(
            "--secrets-dir",
            type=Path,
            required=True,
            help="where each account's password is kept, e.g. /etc/kienco/credentials",
        )
        command.add_argument("--lang", choices=["vi", "en"], default="vi")
