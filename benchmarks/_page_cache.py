"""One file's pages in the page cache: how many are resident, evicting them, and the rate
at which the disk gives the file back once they are gone.

For a "cold" start without rebooting and without touching the rest of the machine's
cache (a shared machine: no ``drop_caches``): ``fsync`` makes the file's pages clean, then
``posix_fadvise(POSIX_FADV_DONTNEED)`` drops them; ``mincore`` on a mapping of the file
says how many stayed (what util-linux's ``fincore`` prints).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_MAP_FAILED = ctypes.c_void_p(-1).value
PAGE = os.sysconf("SC_PAGE_SIZE")
CHUNK = 8 * 2**20


def resident_share(path: Path) -> float:
    """The share (0..1) of the file's pages in the page cache; mapping a file does not
    read it, so asking does not change the answer."""
    size = path.stat().st_size
    if size == 0:
        return float("nan")
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            pages = (size + PAGE - 1) // PAGE
            vector = (ctypes.c_ubyte * pages)()
            if _libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return sum(byte & 1 for byte in vector) / pages
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(fd)


def evict(path: Path) -> None:
    """Drop this one file's pages from the page cache (dirty pages cannot be dropped:
    ``fsync`` first)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_seconds(path: Path, *, direct: bool) -> float:
    """Seconds to read the whole file in 8 MiB sequential reads: through the page cache
    (evict it first for a disk read), or with ``O_DIRECT`` (past the page cache; the
    buffer is a page-aligned anonymous mapping, as O_DIRECT requires)."""
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    buffer = mmap.mmap(-1, CHUNK)
    try:
        began = time.monotonic()
        while os.readv(fd, [buffer]) > 0:
            pass
        return time.monotonic() - began
    finally:
        buffer.close()
        os.close(fd)
