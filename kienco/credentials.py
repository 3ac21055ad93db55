"""MQTT accounts per site: Mosquitto's password file and one secrets file per account.

Each site of the inventory logs in as ``<province>/<site>`` (the shipped ACL binds that
name to the site's topics in its province). ``create`` gives each account that has none a
random password: its hash goes into Mosquitto's password file (kienco.mosquitto_passwd),
the password itself into a secrets file of its own, ``<dir>/<province>/<site>.password``
(0600), to install on the site's box as the agent's ``broker.password: {file: …}``.
Accounts of the centre (collector shards, provincial bridges) are ``<dir>/<name>.password``.
Running it again changes nothing but what is new or asked for (``rotate``); ``prune``
removes sites that left the inventory. ``check`` lists what does not match.
``kienco credentials`` (kienco/commands/credentials.py) is the command.
"""

from __future__ import annotations

import grp
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kienco.mosquitto_passwd import hash_password, read_password_file, verify, write_password_file
from plumbing.atomic_file import replace_file

SECRET_BYTES = 24  # 192 bits, 32 URL-safe characters
# \Z, not $: "$" also matches before a final newline, which would name a stray file and
# write a broken line into the password file.
AGENT_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*\Z")  # <province>/<site>
CENTRE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")  # collector-a1, bridge-hp


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
    replace_file(path, (secret + "\n").encode("utf-8"), mode=0o600)


def site_accounts(inventory: Path, provinces: Iterable[str]) -> list[str]:
    """``<province>/<site>`` of every inventory site (of these provinces, when given)."""
    from collector.inventory import load_inventory

    wanted = set(provinces)
    return [
        f"{site.province}/{site.site}"
        for site in load_inventory(inventory)
        if not wanted or site.province in wanted
    ]


class NotNamed(ValueError):
    """``rotate`` names accounts that are not among those given: nothing was changed."""

    def __init__(self, users: list[str]) -> None:
        self.users = users
        super().__init__(", ".join(users))


def create(
    accounts: list[str],
    password_file: Path,
    secrets_dir: Path,
    *,
    rotate: Iterable[str] = (),
    prune: bool = False,
    provinces: Iterable[str] = (),
    sites_listed: bool = True,
) -> Outcome:
    """Give every account a password (kept when it has one), write both kinds of files.

    ``sites_listed``: ``accounts`` hold the inventory's sites (of ``provinces``), so a site
    account not among them left it (``stale``, or removed with ``prune``). Without an
    inventory (accounts of the centre only) the site accounts of the file are left alone.
    A ``rotate`` not among ``accounts`` raises NotNamed before anything changes: a password
    believed changed must be."""
    entries = read_password_file(password_file)
    rotating = set(rotate)
    if not_named := sorted(rotating - set(accounts)):
        raise NotNamed(not_named)
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
    for user in list(entries) if sites_listed else ():
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
