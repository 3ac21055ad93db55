"""The kernel's clock state: what adjtimex returns, judged as timedatectl judges it; the
real call on this machine; nothing raised when it cannot be read."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from agent.probes import kernel_clock
from agent.probes.kernel_clock import (
    STA_FLL,
    STA_NANO,
    STA_PLL,
    STA_UNSYNC,
    TIME_ERROR,
    UNKNOWN,
    KernelClock,
    Timex,
)

TIME_OK = 0
UNBOUNDED = 16_000_000  # µs: the kernel's maximum error at boot and after a step


def _case(case: str, timex: Timex, expected: KernelClock) -> Any:
    return pytest.param(timex, expected, id=case)


JUDGED = [
    _case(
        "timesyncd-or-ntpd-kernel-loop-offset-in-ns",
        Timex(state=TIME_OK, status=STA_PLL | STA_NANO, offset=-1_250_000, maxerror=42_000),
        KernelClock(synced=True, offset_ms=-1.25, max_error_ms=42.0),
    ),
    _case(
        "kernel-loop-offset-in-us",
        Timex(state=TIME_OK, status=STA_PLL, offset=800, maxerror=5_500),
        KernelClock(synced=True, offset_ms=0.8, max_error_ms=5.5),
    ),
    _case(
        "frequency-locked-loop-keeps-an-offset-too",
        Timex(state=TIME_OK, status=STA_FLL | STA_NANO, offset=3_000_000, maxerror=1_000),
        KernelClock(synced=True, offset_ms=3.0, max_error_ms=1.0),
    ),
    # chrony steers the clock itself and leaves 0 in offset: unknown, not "on time".
    _case(
        "chrony-no-offset",
        Timex(state=TIME_OK, status=0, offset=0, maxerror=12_000),
        KernelClock(synced=True, offset_ms=None, max_error_ms=12.0),
    ),
    # chrony without rtcsync keeps STA_UNSYNC (hence TIME_ERROR) so the kernel leaves the
    # RTC alone, while it disciplines the clock: timedatectl says synchronised, so do we.
    _case(
        "chrony-without-rtcsync",
        Timex(state=TIME_ERROR, status=STA_UNSYNC, offset=0, maxerror=12_000),
        KernelClock(synced=True, offset_ms=None, max_error_ms=12.0),
    ),
    # The kernel at boot and after a step: STA_UNSYNC, TIME_ERROR and 16 s together.
    _case(
        "unsynced-by-status-bit-time-error",
        Timex(state=TIME_ERROR, status=STA_UNSYNC, offset=0, maxerror=UNBOUNDED),
        KernelClock(synced=False),
    ),
    _case(
        "unsynced-with-the-loop-on-keeps-no-offset",
        Timex(
            state=TIME_ERROR,
            status=STA_UNSYNC | STA_PLL | STA_NANO,
            offset=900_000,
            maxerror=UNBOUNDED,
        ),
        KernelClock(synced=False),
    ),
    # The time source silent for ~9 h: the maximum error grew 0.5 ms a second to 16 s.
    _case(
        "max-error-reached-16-s",
        Timex(state=TIME_OK, status=STA_PLL | STA_NANO, offset=0, maxerror=UNBOUNDED),
        KernelClock(synced=False),
    ),
    _case(
        "one-us-under-16-s-still-synced",
        Timex(state=TIME_OK, status=0, offset=0, maxerror=UNBOUNDED - 1),
        KernelClock(synced=True, max_error_ms=15_999.999),
    ),
    # The kernel loop holds at most 0.5 s; older kernels garble a negative µs offset.
    _case(
        "offset-beyond-the-loop-is-no-reading",
        Timex(state=TIME_OK, status=STA_PLL, offset=4_294_000, maxerror=2_000),
        KernelClock(synced=True, offset_ms=None, max_error_ms=2.0),
    ),
    _case(
        "negative-max-error-is-no-bound",
        Timex(state=TIME_OK, status=0, offset=0, maxerror=-1),
        KernelClock(synced=False),
    ),
]


@pytest.mark.parametrize(("timex", "expected"), JUDGED)
def test_judge(timex: Timex, expected: KernelClock) -> None:
    assert kernel_clock.judge(timex) == expected


def _fails(exc: BaseException) -> kernel_clock.Timex:
    raise exc


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(PermissionError(1, "Operation not permitted"), id="refused-by-seccomp"),
        pytest.param(OSError(22, "Invalid argument"), id="call-failed"),
        pytest.param(AttributeError("adjtimex"), id="libc-without-adjtimex"),
    ],
)
def test_a_failing_call_is_unknown_not_an_exception(exc: BaseException) -> None:
    assert kernel_clock.read(call=lambda: _fails(exc), platform="linux") == UNKNOWN


def test_not_linux_is_unknown_and_never_calls() -> None:
    def call() -> Timex:
        raise AssertionError("adjtimex called on macOS")

    assert kernel_clock.read(call=call, platform="darwin") == UNKNOWN
    assert UNKNOWN.synced is None and UNKNOWN.offset_ms is None and UNKNOWN.max_error_ms is None


def test_read_judges_what_the_call_returned() -> None:
    timex = Timex(state=TIME_OK, status=STA_PLL | STA_NANO, offset=500_000, maxerror=8_000)
    assert kernel_clock.read(call=lambda: timex, platform="linux") == KernelClock(
        synced=True, offset_ms=0.5, max_error_ms=8.0
    )


def test_the_real_adjtimex_on_this_machine() -> None:
    """The kernel answers a read-only call without privilege, in the layout we declared
    (a wrong layout reads status and maxerror from the wrong bytes). Off Linux (no such
    call) the real read says unknown: run, not skipped."""
    if not sys.platform.startswith("linux"):
        assert kernel_clock.read() == UNKNOWN
        return
    timex = kernel_clock.adjtimex()
    assert 0 <= timex.state <= TIME_ERROR
    assert 0 <= timex.maxerror <= UNBOUNDED
    clock = kernel_clock.read()
    assert isinstance(clock.synced, bool)
    if clock.synced:
        assert clock.max_error_ms is not None and 0 <= clock.max_error_ms < 16_000
    else:
        assert clock.offset_ms is None and clock.max_error_ms is None
