"""The outermost layer of every HTTP answer: security headers, limits, and no unanswered error.

- Security headers on every response, errors included: a Content-Security-Policy
  with no inline script (``script-src 'self'``) and no framing
  (``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff``, and a
  ``Referrer-Policy`` that keeps our own Referer (the cross-site check reads it)
  and gives none to other sites.
- A request (headers, body, answer) must be done within ``timeout_s``, or it
  is cut: 503 when nothing was sent yet, else the connection is dropped. The
  throughput test's routes have their own caps and are left alone.
- A request body over :data:`MAX_BODY` is refused (413) before it is read whole.
- An exception that nothing answered is recorded as an error of the ``api``
  loop (collector/supervision.py: logged once per kind, counted) and answered
  500 with a JSON error, so a client never sees a dropped connection for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from collector.supervision import Loop

__all__ = ["CONTENT_SECURITY_POLICY", "MAX_BODY", "SECURITY_HEADERS", "Guard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1 << 20  # a JSON request is a few hundred bytes; a form a few KB
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_OURS = {name for name, _ in SECURITY_HEADERS}


class Guard:
    """Wraps the ASGI app uvicorn serves (collector/api.py)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        loop: Loop,
        timeout_s: float,
        own_limits: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.loop = loop
        self.timeout_s = timeout_s
        self.own_limits = own_limits  # paths that bound their own time and size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", []) if h[0].lower() not in _OURS]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        if self.own_limits(scope["path"]):
            await self._answer(scope, receive, send_secured, lambda: started)
            return
        length = _content_length(scope)
        if length is not None and length > MAX_BODY:
            await _send_json(send_secured, 413, {"error": f"body over {MAX_BODY} bytes"})
            return
        taken = 0

        async def receive_bounded() -> Message:
            nonlocal taken
            message = await receive()
            if message["type"] == "http.request":
                taken += len(message.get("body", b""))
                if taken > MAX_BODY:  # answered by the app's handler of HTTP errors
                    raise HTTPException(413, f"body over {MAX_BODY} bytes")
            return message

        try:
            async with asyncio.timeout(self.timeout_s):
                await self._answer(scope, receive_bounded, send_secured, lambda: started)
        except TimeoutError:
            if not started:
                message = f"the request took longer than {self.timeout_s:g} s; try again"
                await _send_json(send_secured, 503, {"error": message}, retry=True)
            else:
                raise  # half an answer: uvicorn drops the connection

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, started: Callable[[], bool]
    ) -> None:
        try:
            await self.app(scope, receive, send)
        except TimeoutError:
            raise
        except Exception as exc:
            # The app's own handler may have answered already (then uvicorn ends the
            # exchange); either way it is counted once, here, and goes no further.
            self.loop.supervisor.record(self.loop, exc)
            if not started():
                await _send_json(send, 500, {"error": f"{type(exc).__name__}: {exc}"[:500]})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, payload: object, *, retry: bool = False) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
