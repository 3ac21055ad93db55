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
Exit status: 0 done / all good, 3 something needs attention (named), 2 a bad inventory.
"""

from __future__ import annotations

import argparse
import grp
import os
import re
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kienco.mosquitto_passwd import hash_password, read_password_file, verify, write_password_file

EXIT_ATTENTION = 3
SECRET_BYTES = 24  # 192 bits, 32 URL-safe characters
AGENT_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")  # <province>/<site>
CENTRE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # collector-a1, bridge-hp
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
    },
}


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    rehashed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # hashed, but the secret is gone
    stale: list[str] = field(default_factory=list)  # sites no longer listed, kept


def secret_path(secrets_dir: Path, user: str) -> Path:
    """``hp/hp-bts-001`` -> ``<dir>/hp/hp-bts-001.password``; ``collector-a1`` -> ``<dir>/…``."""
    return secrets_dir / f"{user}.password"


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def site_accounts(inventory: Path, provinces: Iterable[str]) -> list[str]:
    """``<province>/<site>`` of every inventory site (of these provinces, when given)."""
    from collector.inventory import load_inventory

    wanted = set(provinces)
    return [
        f"{site.province}/{site.site}"
        for site in load_inventory(inventory)
        if not wanted or site.province in wanted
    ]


def create(
    accounts: list[str],
    password_file: Path,
    secrets_dir: Path,
    *,
    rotate: Iterable[str] = (),
    prune: bool = False,
    provinces: Iterable[str] = (),
) -> Outcome:
    """Give every account a password (kept when it has one), write both kinds of files."""
    entries = read_password_file(password_file)
    rotating = set(rotate)
    outcome = Outcome()
    for user in accounts:
        path = secret_path(secrets_dir, user)
        secret = None if user in rotating else _read_secret(path)
        hashed = entries.get(user)
        if secret is None and hashed is not None and user not in rotating:
            outcome.lost.append(user)  # a password someone holds: never replaced unasked
            continue
        if secret is None:
            secret = secrets.token_urlsafe(SECRET_BYTES)
            _write_secret(path, secret)
            (outcome.rotated if hashed is not None else outcome.created).append(user)
        elif hashed is None or not verify(secret, hashed):
            outcome.rehashed.append(user)  # a secrets file without its hash, or another one
        else:
            outcome.unchanged.append(user)
            continue
        entries[user] = hash_password(secret)
    listed = set(accounts)
    scope = set(provinces)
    for user in list(entries):
        if user in listed or not AGENT_ACCOUNT.match(user):
            continue  # accounts of the centre are never pruned with the sites
        if scope and user.split("/", 1)[0] not in scope:
            continue
        if prune:
            del entries[user]
            outcome.pruned.append(user)
        else:
            outcome.stale.append(user)
    if outcome.created or outcome.rotated or outcome.rehashed or outcome.pruned:
        password_file.parent.mkdir(parents=True, exist_ok=True)
        write_password_file(password_file, entries, group=_mosquitto_group())
    return outcome


def check(accounts: list[str], password_file: Path, secrets_dir: Path) -> list[tuple[str, str]]:
    """Problems as (text key, user): no account, no secrets file, a secret that does not match."""
    entries = read_password_file(password_file)
    problems = []
    for user in accounts:
        secret = _read_secret(secret_path(secrets_dir, user))
        if user not in entries:
            problems.append(("missing", user))
        elif secret is None:
            problems.append(("no_secret", user))
        elif not verify(secret, entries[user]):
            problems.append(("mismatch", user))
    return problems


def _mosquitto_group() -> int | None:
    try:
        return grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


def _account_name(text: str) -> str:
    """An account named on the command line: a slug, or <province>/<site> (never a path)."""
    if not (CENTRE_ACCOUNT.match(text) or AGENT_ACCOUNT.match(text)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use a lowercase name (collector-a1, bridge-hp) or <province>/<site>"
        )
    return text


def _accounts(args: argparse.Namespace) -> list[str]:
    if not args.inventory and not args.user:
        raise SystemExit(f"kienco credentials {args.credentials_cmd}: give --inventory or --user")
    sites = site_accounts(args.inventory, args.province) if args.inventory else []
    return sites + list(args.user)


def cmd_create(args: argparse.Namespace) -> int:
    texts = TEXTS[args.lang]
    outcome = create(
        _accounts(args),
        args.password_file,
        args.secrets_dir,
        rotate=args.rotate,
        prune=args.prune,
        provinces=args.province,
    )
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


def add_parser(sub: Any) -> None:
    credentials = sub.add_parser(
        "credentials",
        help="MQTT accounts per site from the inventory: Mosquitto's password file and "
        "one secrets file per site",
        description="Each inventory site logs in as <province>/<site>. create: a random "
        "password for each site without one (its hash into the password file, the password "
        "into <secrets-dir>/<province>/<site>.password, 0600); check: every site has an "
        "account matching its secrets file. Secrets are never printed. Exit status: 0 done, "
        "3 something needs attention, 2 a bad inventory.",
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
        "--prune", action="store_true", help="remove site accounts no longer in the inventory"
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
