"""The kernel's own view of its clock: synchronised or not, read as timedatectl reads it.

``adjtimex(2)`` with ``modes = 0`` only reads (no privilege needed) the state the time
daemon (chrony, ntpd, systemd-timesyncd) leaves in the kernel. An edge box back from a
power cut with no RTC and no NTP in reach starts unsynchronised and stays so: the kernel
sets ``STA_UNSYNC`` and a maximum error of 16 s at boot and at every clock step, and a
daemon lowers the maximum error only while it disciplines the clock.

``judge`` is pure (the table tests feed it); ``read`` makes the call and never raises:
no Linux, no libc or a refused call is ``UNKNOWN``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["UNKNOWN", "KernelClock", "Timex", "adjtimex", "judge", "read"]

# <sys/timex.h>, the same on every Linux architecture.
TIME_ERROR = 5  # adjtimex's return while the clock is unsynchronised (or PPS is in error)
STA_PLL = 0x0001  # the kernel's phase-locked loop disciplines the clock (ntpd, timesyncd)
STA_FLL = 0x0008  # its frequency-locked loop does
STA_UNSYNC = 0x0040  # "clock unsynchronised", set by the kernel or by the daemon
STA_NANO = 0x2000  # offset is in nanoseconds, else microseconds

# The kernel's NTP_PHASE_LIMIT: the maximum error at boot and after a step, and where it
# stops counting up (0.5 ms a second without a daemon) and sets STA_UNSYNC itself.
UNBOUNDED_US = 16_000_000
# MAXPHASE: the kernel's loop never holds more offset than this; more is not a reading
# (older kernels garble a negative offset in microsecond mode into a large positive one).
MAX_OFFSET_NS = 500_000_000


@dataclass(frozen=True)
class Timex:
    """What ``adjtimex`` returned: its return value and the fields kienco reads."""

    state: int  # TIME_OK … TIME_ERROR
    status: int  # STA_* bits
    offset: int  # ns with STA_NANO, else µs
    maxerror: int  # µs


@dataclass(frozen=True)
class KernelClock:
    """The kernel's clock as reported: offset and error only while synchronised; all
    ``None`` where it could not be read."""

    synced: bool | None
    offset_ms: float | None = None
    max_error_ms: float | None = None


UNKNOWN = KernelClock(synced=None)


def judge(timex: Timex) -> KernelClock:
    """Synchronised as systemd's ``NTPSynchronized`` (timedatectl) says it: the kernel's
    maximum error below 16 s.

    Not the ``STA_UNSYNC`` bit (nor the TIME_ERROR it causes) alone, as systemd before
    v239 did: chrony on Linux leaves it set when ``rtcsync`` is off, so that the kernel
    does not write the RTC, while it disciplines the clock and lowers the maximum error.
    Where no daemon does, the kernel sets both together (boot, a step, 16 s reached).
    """
    if not 0 <= timex.maxerror < UNBOUNDED_US:
        return KernelClock(synced=False)
    offset_ms: float | None = None
    # Only the kernel's own loops keep an offset; chrony steers the frequency itself and
    # leaves 0 there, which is unknown, not "exactly on time".
    if timex.status & (STA_PLL | STA_FLL):
        offset_ns = timex.offset if timex.status & STA_NANO else timex.offset * 1_000
        if abs(offset_ns) <= MAX_OFFSET_NS:
            offset_ms = offset_ns / 1e6
    return KernelClock(synced=True, offset_ms=offset_ms, max_error_ms=timex.maxerror / 1e3)


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _CTimex(ctypes.Structure):
    """glibc's ``struct timex`` (and musl's) as laid out on Linux x86-64 and aarch64, the
    boxes kienco runs on: C longs and ints, naturally aligned, 208 bytes (checked
    against <sys/timex.h> with gcc on x86-64). On a 32-bit libc ``c_long`` follows, which
    is what its plain ``adjtimex`` symbol (32-bit time) takes; untested there. The 11
    trailing ints are reserved space the kernel copies out too: without them it would
    write past the buffer."""

    _fields_ = [
        ("modes", ctypes.c_int),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


@functools.cache
def _libc_adjtimex() -> Any:
    call = ctypes.CDLL(None, use_errno=True).adjtimex  # AttributeError: a libc without it
    call.argtypes = [ctypes.POINTER(_CTimex)]
    call.restype = ctypes.c_int
    return call


def adjtimex() -> Timex:
    """One read-only ``adjtimex`` call through libc; ``OSError`` if it fails.

    ctypes rather than a library: the standard library has no adjtimex, and PyPI has
    nothing kept up that reads the kernel's clock state (its NTP packages ask servers,
    as ``ntplib`` does; ``systemd-python`` has no clock call, and timedated's
    ``NTPSynchronized`` needs D-Bus and systemd, which an edge box may not run)."""
    buf = _CTimex()  # zeroed: modes = 0 reads and changes nothing
    state = _libc_adjtimex()(ctypes.byref(buf))
    if state == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex: {os.strerror(errno)}")
    return Timex(state=state, status=buf.status, offset=buf.offset, maxerror=buf.maxerror)


def read(*, call: Callable[[], Timex] = adjtimex, platform: str = sys.platform) -> KernelClock:
    """The kernel's clock, ``UNKNOWN`` where it cannot be read (not Linux, the call
    failed or was refused, e.g. by a container's seccomp filter)."""
    if not platform.startswith("linux"):
        return UNKNOWN
    try:
        return judge(call())
    except (OSError, AttributeError, TypeError, ValueError):
        # AttributeError: a libc without the symbol; the rest: a call that did not run.
        return UNKNOWN
