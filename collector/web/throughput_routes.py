"""The agents' throughput test on the collector's server (collector/throughput.py decides it).

    GET  /api/v1/throughput?bytes=N    N random bytes, streamed
    POST /api/v1/throughput[?max_s=S]  reads and drops the body for at most S seconds

No token: an agent is not a user, and the test reads nothing and changes
nothing. Each direction is capped in bytes and time, and at most
``max_concurrent`` tests run at once (503 at once beyond), so thousands of
points testing on the hour cannot take the collector from its reports. The
request timeout of other routes does not apply: these bound their own time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from collector.throughput import (
    MAX_BYTES,
    MAX_CONCURRENT,
    MAX_S,
    PATH,
    ThroughputRequestError,
    download,
    query_number,
    requested_bytes,
    upload_stream,
)

__all__ = ["PATH", "Slots", "throughput_router"]

Clock = Callable[[], float]


class Slots:
    """Tests running now; touched only on the event loop, so no lock."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.free = n

    def take(self) -> bool:
        if self.free <= 0:
            return False
        self.free -= 1
        return True

    def give(self) -> None:
        self.free = min(self.n, self.free + 1)


class _Slotted(StreamingResponse):
    """A download that gives its slot back however it ends, and lasts at most MAX_S."""

    def __init__(self, content: AsyncIterator[bytes], *, slots: Slots, **kw: Any) -> None:
        super().__init__(content, **kw)
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # A reader slower than any test may last is cut off: it holds a slot.
            async with asyncio.timeout(MAX_S + 1.0):
                await super().__call__(scope, receive, send)
        except TimeoutError:
            pass  # the answer is short of its length: uvicorn closes the connection
        finally:
            self._slots.give()


def _error(status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=int(status), headers=headers)


def _busy(slots: Slots) -> Response:
    message = f"busy: {slots.n} throughput tests are running; try later"
    return _error(HTTPStatus.SERVICE_UNAVAILABLE, message, {"Retry-After": "60"})


def throughput_router(
    *, cap: int = MAX_BYTES, max_concurrent: int = MAX_CONCURRENT, clock: Clock = time.perf_counter
) -> APIRouter:
    router = APIRouter(tags=["throughput"])
    slots = Slots(max_concurrent)

    octets: dict[int | str, dict[str, Any]] = {200: {"content": {"application/octet-stream": {}}}}

    @router.get(PATH, response_class=Response, responses=octets)
    async def throughput_download(request: Request) -> Response:
        """N incompressible bytes, for an agent's download test (no token needed)."""
        try:
            n_bytes = requested_bytes(request.url.query, cap=cap)
        except ThroughputRequestError as exc:
            return _error(exc.status, str(exc))
        if not slots.take():
            return _busy(slots)

        async def chunks() -> AsyncIterator[bytes]:
            for chunk in download(n_bytes, cap=cap):
                yield chunk

        return _Slotted(
            chunks(),
            slots=slots,
            media_type="application/octet-stream",
            headers={"Content-Length": str(n_bytes), "Cache-Control": "no-store"},
        )

    @router.post(PATH)
    async def throughput_upload(request: Request) -> Response:
        """Read and drop the body for at most max_s; answers {"bytes", "seconds"} that arrived."""
        if not slots.take():
            return _busy(slots)  # the unread body is drained, then the connection closed
        try:
            max_s = query_number(request.url.query, "max_s", 0.01, MAX_S, f"0 < max_s ≤ {MAX_S:g}")
            raw_length = request.headers.get("content-length", "").strip()
            chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()

            async def body() -> AsyncIterator[bytes]:
                try:
                    async for chunk in request.stream():
                        if chunk:
                            yield chunk
                except ClientDisconnect:
                    return  # the sender went away: count what came

            result = await upload_stream(
                body(),
                length=int(raw_length) if raw_length.isdigit() else None,
                chunked=chunked,
                max_s=max_s,
                cap=cap,
                clock=clock,
            )
        except ThroughputRequestError as exc:
            return _error(exc.status, str(exc))
        finally:
            slots.give()
        return Response(result.to_json(), media_type="application/json")

    return router
