"""Mosquitto's password file, read and written without ``mosquitto_passwd``.

One ``username:hash`` per line. The hash is what Mosquitto 2.0's ``mosquitto_passwd``
writes by default: ``$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512, base64>``, a
12-byte salt and a 64-byte digest. Mosquitto checks a password against any iteration
count the line names.

Iterations: 101, Mosquitto 2.0's own count. The passwords kienco makes are random
(192 bits): nobody can guess them, so stretching adds no protection, while a broker
restarted under 100 000 agents checks every one of their passwords on one thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from plumbing.atomic_file import replace_file

ITERATIONS = 101
SALT_BYTES = 12
PREFIX = "$7$"


class PasswordFileError(ValueError):
    """A password file line that is not ``username:hash``; the message names the line."""


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"{PREFIX}{iterations}${_b64(salt)}${_b64(digest)}"


def verify(password: str, hashed: str) -> bool:
    """Does ``password`` match a ``$7$`` hash? (Other formats: False.)"""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, digest = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    computed = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(computed, digest)


def read_password_file(path: Path) -> dict[str, str]:
    """username -> hash, in the file's order; an absent file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise PasswordFileError(f"{path}:{number}: not 'username:hash'")
        entries[user] = hashed
    return entries


def write_password_file(path: Path, entries: Mapping[str, str], *, group: int | None) -> None:
    """Replace the file at once (written beside it, synced, renamed): a broker reloading
    meanwhile reads the old file or the new, never half of one. An existing file keeps
    its owner, group and mode; a new one is 0640, in ``group`` (Mosquitto's) when given."""
    for user in entries:
        if ":" in user or "\n" in user or not user:
            raise PasswordFileError(f"{user!r}: a username cannot be empty or hold ':' or newlines")
    text = "".join(f"{user}:{hashed}\n" for user, hashed in entries.items())

    def keep_owner_and_mode(temporary: Path) -> None:
        if path.exists():
            stat = path.stat()
            os.chmod(temporary, stat.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(temporary, stat.st_uid, stat.st_gid)
        else:
            os.chmod(temporary, 0o640)
            if group is not None and os.geteuid() == 0:
                os.chown(temporary, -1, group)

    replace_file(path, text.encode("utf-8"), before_rename=keep_owner_and_mode)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
