"""Replace a small file at once: a reader, or a crash, sees the old file or the new, never
half of one. Written beside it, fsynced, renamed over it, and the folder fsynced so the
rename itself survives a power loss. For the files kienco rewrites whole: the broker's
password file, the agents' secrets, the collector's attention list."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    before_rename: Callable[[Path], None] | None = None,
) -> None:
    """``path`` holds ``data`` from now on. The new file is created ``mode`` (its owner
    only by default: some of these hold secrets); ``before_rename`` may change the
    temporary file (owner, group, mode) before it takes the name. Raises ``OSError``
    (disk full, no such folder) with the old file left as it was."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if before_rename is not None:
            before_rename(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
