"""Waiting in tests for what real components do in their own time: one helper, one message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_until(check: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    """``check()``'s first truthy value, tried every 50 ms; past ``timeout_s`` an
    AssertionError naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s} s; last: {found!r}")
        time.sleep(0.05)


async def async_wait(
    check: Callable[[], Any], timeout_s: float = 20, what: str = "condition"
) -> Any:
    """:func:`wait_until` on an event loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s} s; last: {found!r}")
        await asyncio.sleep(0.05)
