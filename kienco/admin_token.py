"""The admin token the CLI sends with every change it asks of the collector.

Read from an environment variable (``KIENCO_ADMIN_TOKEN`` by default) or a file
(``--token-file``, e.g. a systemd credential): never from the command line, where
``ps`` and the shell history would show it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_ENV = "KIENCO_ADMIN_TOKEN"


def add_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--token-env",
        default=DEFAULT_ENV,
        metavar="VAR",
        help=f"environment variable holding the admin token (default {DEFAULT_ENV})",
    )
    command.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="read the admin token from this file instead (first line)",
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
    return (os.environ.get(env) or None) if env else None


def headers(args: argparse.Namespace) -> dict[str, str]:
    token = token_of(args)
    return {"Authorization": f"Bearer {token}"} if token else {}


def explain_refusal(status_code: int, args: argparse.Namespace) -> str | None:
    """What to do when the collector refused a change for want of the token."""
    if status_code not in (401, 403):
        return None
    env = getattr(args, "token_env", None) or DEFAULT_ENV
    sent = token_of(args) is not None
    if status_code == 401 or not sent:
        return (
            f"changes need the collector's admin token: set ${env} to its http.admin_token "
            f"(or give --token-file) / thay đổi cần mã quản trị của collector: đặt ${env} "
            "bằng http.admin_token (hoặc dùng --token-file)"
        )
    return (
        f"the collector refused the admin token from ${env} or --token-file: check it / "
        "collector từ chối mã quản trị: kiểm tra lại"
    )
