"""Work for a request, off the event loop: a bounded pool, each call a step of the api loop.

At most ``threads`` requests are worked on at once; the others wait their turn
(and their request timeout, collector/web/guard.py). A call that raises is
recorded as an error of the ``api`` loop (logged once per kind, counted) and
answered 500 with its error in JSON, the connection kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar

import anyio
import anyio.to_thread

from collector.endpoints import Reply, json_reply
from collector.supervision import Loop

__all__ = ["Workers"]

T = TypeVar("T")


class Workers:
    def __init__(self, loop: Loop, *, threads: int) -> None:
        self.loop = loop
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._limiter_loop: asyncio.AbstractEventLoop | None = None

    def _limit(self) -> anyio.CapacityLimiter:
        # One per event loop: a server started again runs a new one.
        running = asyncio.get_running_loop()
        if self._limiter is None or self._limiter_loop is not running:
            self._limiter = anyio.CapacityLimiter(self.threads)
            self._limiter_loop = running
        return self._limiter

    async def run(self, fn: Callable[[T], Reply], arg: T) -> Reply:
        return await anyio.to_thread.run_sync(self._step, fn, arg, limiter=self._limit())

    def _step(self, fn: Callable[[T], Reply], arg: T) -> Reply:
        reply: Reply | None = None
        error = "internal error"
        with self.loop.step():
            try:
                reply = fn(arg)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                raise  # the step logs and counts it
        if reply is None:
            return json_reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": error})
        return reply
