"""A real full disk for the tests: a small tmpfs of their own (mounted as root, as CI
runs), and another program taking every byte left on it."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["fill", "small_tmpfs"]


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """``folder/disk``, a tmpfs of ``size`` (``2m``, ``256k``), unmounted after."""
    if os.geteuid() != 0:
        import pytest

        pytest.fail("the full-disk tests mount a small tmpfs: run them as root, as CI does")
    mount = folder / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Another program takes every byte left (logs, a core dump): ``disk/filler`` grows
    until the filesystem refuses a write of 64 KiB, then of 512 bytes, then of one."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 512, 1):
            try:
                while True:
                    os.write(fd, bytes(size))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
