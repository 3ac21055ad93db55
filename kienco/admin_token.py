"""The token the CLI sends to the collector: for every change, and for reads where they need one.

A role token (``kienco token new``; the collector's ``http.tokens``), or the older
admin token (``http.admin_token``). Read from an environment variable —
``KIENCO_TOKEN``, else ``KIENCO_ADMIN_TOKEN`` —, another one (``--token-env``),
or a file (``--token-file``, e.g. a systemd credential): never from the command
line, where ``ps`` and the shell history would show it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_ENV = "KIENCO_ADMIN_TOKEN"
TOKEN_ENV = "KIENCO_TOKEN"
DEFAULT_ENVS = (TOKEN_ENV, DEFAULT_ENV)


def add_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--token-env",
        metavar="VAR",
        help=f"environment variable holding the token (default {TOKEN_ENV}, else {DEFAULT_ENV})",
    )
    command.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="read the token from this file instead (first line)",
    )


def token_of(args: argparse.Namespace) -> str | None:
    """The token to send, or None. SystemExit when ``--token-file`` cannot be read."""
    path: Path | None = getattr(args, "token_file", None)
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SystemExit(f"kienco: cannot read --token-file {path}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise SystemExit(f"kienco: --token-file {path} is empty")
        return token
    env: str | None = getattr(args, "token_env", None)
    for name in (env,) if env else DEFAULT_ENVS:
        found = os.environ.get(name)
        if found:
            return found
    return None


def headers(args: argparse.Namespace) -> dict[str, str]:
    token = token_of(args)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _envs(args: argparse.Namespace) -> str:
    env = getattr(args, "token_env", None)
    return f"${env}" if env else f"${TOKEN_ENV} (or ${DEFAULT_ENV})"


def explain_refusal(status_code: int, args: argparse.Namespace) -> str | None:
    """What to do when the collector refused a request for want of the right token."""
    if status_code not in (401, 403):
        return None
    envs = _envs(args)
    sent = token_of(args) is not None
    if status_code == 401 or not sent:
        return (
            f"this needs a token of the collector: set {envs} to one (an admin token for "
            f"changes, e.g. its http.admin_token), or give --token-file / cần mã truy cập của "
            f"collector: đặt {envs} (mã quản trị để thay đổi), hoặc dùng --token-file"
        )
    return (
        f"the collector refused the admin token (or role token) from {envs} or --token-file: "
        "check it, and that its role may do this / collector từ chối mã: kiểm tra mã và vai trò"
    )
