"""The collector's end of the bounded throughput test an agent runs per path.

    GET  /api/v1/throughput?bytes=N    N random bytes (application/octet-stream)
    POST /api/v1/throughput[?max_s=S]  reads and drops the body (Content-Length or
                                       chunked) for at most S seconds; answers
                                       {"bytes": n, "seconds": s}: what arrived here

Both are capped (:data:`MAX_BYTES`) and at most :data:`MAX_CONCURRENT` tests run
at once; a test over the limit gets 503 at once, so thousands of points testing
on the hour cannot take the collector's threads from the reports.
What is decided here (:func:`requested_bytes`, :func:`download`, :func:`upload`,
:func:`upload_stream`) is served by the collector's own server through
collector/web/throughput_routes.py; :class:`ThroughputHandler` writes the same
answers on any ``BaseHTTPRequestHandler``, and :class:`ThroughputServer` serves
them alone, for tests and for a centre that runs no collector API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qs

PATH = "/api/v1/throughput"
MAX_BYTES = 100_000_000
"""The most one request moves either way (the agent's own cap is ThroughputConfig.max_bytes)."""
MAX_CONCURRENT = 8
CHUNK = 64 * 1024
MAX_S = 60.0
"""The longest one direction of a test lasts here (ThroughputConfig.max_s is at most 60)."""
LINGER_S = 2.0
SOCKET_TIMEOUT_S = 30.0
"""A client that stops reading or sending frees its thread after this long, not TCP's ~15 min."""

Clock = Callable[[], float]


class ThroughputRequestError(ValueError):
    """A request the test refuses; ``status`` is the HTTP answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadResult:
    n_bytes: int
    seconds: float
    complete: bool = True  # False: stopped at the time or byte cap, or the sender went away

    def to_json(self) -> bytes:
        return json.dumps({"bytes": self.n_bytes, "seconds": round(self.seconds, 6)}).encode()


def query_number(query: str, key: str, low: float, high: float, example: str) -> float | None:
    values = parse_qs(query).get(key)
    if not values:
        return None
    try:
        number = float(values[-1])
    except ValueError:
        number = math.nan
    if not low <= number <= high:
        raise ThroughputRequestError(
            HTTPStatus.BAD_REQUEST, f"{key}={values[-1]} is out of range: use {example}"
        )
    return number


def requested_bytes(query: str, *, cap: int = MAX_BYTES) -> int:
    """The ``bytes`` of a download query, checked: 1 ≤ N ≤ cap."""
    use = f"?bytes=N with 1 ≤ N ≤ {cap}, e.g. ?bytes=2000000"
    n_bytes = query_number(query, "bytes", 1, cap, use)
    if n_bytes is None or not n_bytes.is_integer():
        raise ThroughputRequestError(HTTPStatus.BAD_REQUEST, f"give {use}")
    return int(n_bytes)


def download(n_bytes: int, *, cap: int = MAX_BYTES) -> Iterator[bytes]:
    """Exactly ``min(n_bytes, cap)`` random bytes, in chunks of up to 64 KiB.

    One fresh random block per download, repeated: cheap to make, and a block
    longer than deflate's 32 KiB window leaves a compressing link nothing to
    shrink, so the test measures the path and not a compressor.
    """
    left = max(0, min(n_bytes, cap))
    block = os.urandom(CHUNK)
    while left > 0:
        chunk = block if left >= CHUNK else block[:left]
        left -= len(chunk)
        yield chunk


def upload(
    body: BufferedIOBase,
    *,
    length: int | None,
    chunked: bool = False,
    max_s: float | None = None,
    cap: int = MAX_BYTES,
    clock: Clock = time.perf_counter,
) -> UploadResult:
    """Read and discard a body (Content-Length or chunked), up to ``cap`` bytes and ``max_s``.

    The time runs from the end of the request's headers to the last byte read,
    so the rate is what arrived here, not what the sender's buffers took.
    """
    if not chunked and length is None:
        raise ThroughputRequestError(
            HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length or chunked"
        )
    if length is not None and length > cap:
        raise ThroughputRequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Content-Length {length} is over {cap} bytes"
        )
    started = clock()
    deadline = started + (MAX_S if max_s is None else min(max_s, MAX_S))
    got = 0

    def take(n_bytes: int) -> bool:
        nonlocal got
        while n_bytes > 0:
            if got >= cap or clock() >= deadline:
                return False
            try:
                chunk = body.read1(min(CHUNK, n_bytes, cap - got))
            except (OSError, TimeoutError):
                return False  # the sender went away: count what came
            if not chunk:
                return False
            got += len(chunk)
            n_bytes -= len(chunk)
        return True

    if not chunked:
        complete = take(length or 0)
    else:
        complete = False
        while True:
            line = body.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                break  # cut short, or not chunked at all: count what came
            if size == 0:
                complete = True
                while body.readline(1024).strip():
                    pass  # trailers
                break
            if not take(size):
                break
            body.readline(3)  # the CRLF after each chunk
    return UploadResult(n_bytes=got, seconds=clock() - started, complete=complete)


async def upload_stream(
    chunks: AsyncIterator[bytes],
    *,
    length: int | None,
    chunked: bool = False,
    max_s: float | None = None,
    cap: int = MAX_BYTES,
    clock: Clock = time.perf_counter,
) -> UploadResult:
    """:func:`upload` for a body the server has already unframed (collector/web/)."""
    if not chunked and length is None:
        raise ThroughputRequestError(
            HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length or chunked"
        )
    if length is not None and length > cap:
        raise ThroughputRequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Content-Length {length} is over {cap} bytes"
        )
    started = clock()
    deadline = started + (MAX_S if max_s is None else min(max_s, MAX_S))
    got = 0
    complete = False
    iterator = aiter(chunks)
    while got < cap:
        left = deadline - clock()
        if left <= 0:
            break
        try:
            # A sender that stalls is waited for only until the window closes.
            chunk = await asyncio.wait_for(anext(iterator), left)
        except StopAsyncIteration:
            complete = True
            break
        except (TimeoutError, OSError):
            break
        got += len(chunk)
    if got > cap:
        got, complete = cap, False
    return UploadResult(n_bytes=got, seconds=clock() - started, complete=complete)


class ThroughputHandler:
    """Answers the two throughput routes on a ``BaseHTTPRequestHandler``; thread-safe."""

    def __init__(
        self,
        *,
        cap: int = MAX_BYTES,
        max_concurrent: int = MAX_CONCURRENT,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.cap = cap
        self.clock = clock
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._max_concurrent = max_concurrent

    def get(self, http: BaseHTTPRequestHandler, query: str) -> None:
        """GET /api/v1/throughput?bytes=N."""
        try:
            n_bytes = requested_bytes(query, cap=self.cap)
        except ThroughputRequestError as exc:
            _json(http, exc.status, {"error": str(exc)})
            return
        if not self._slots.acquire(blocking=False):
            self._busy(http)
            return
        try:
            http.connection.settimeout(SOCKET_TIMEOUT_S)
            http.send_response(HTTPStatus.OK)
            http.send_header("Content-Type", "application/octet-stream")
            http.send_header("Content-Length", str(n_bytes))
            http.send_header("Cache-Control", "no-store")
            http.end_headers()
            # A reader slower than any test may last gets cut off: it holds a slot.
            until = self.clock() + MAX_S
            for chunk in download(n_bytes, cap=self.cap):
                if self.clock() > until:
                    http.close_connection = True
                    break
                http.wfile.write(chunk)
        except (OSError, TimeoutError):
            http.close_connection = True  # the agent stopped reading at its time cap
        finally:
            self._slots.release()

    def post(self, http: BaseHTTPRequestHandler, query: str = "") -> None:
        """POST /api/v1/throughput[?max_s=S]; answers {"bytes": n, "seconds": s}."""
        raw_length = http.headers.get("Content-Length", "").strip()
        chunked = "chunked" in http.headers.get("Transfer-Encoding", "").lower()
        if not self._slots.acquire(blocking=False):
            http.close_connection = True  # the unread body must not be taken for a request
            self._busy(http)
            return
        try:
            max_s = query_number(query, "max_s", 0.01, MAX_S, f"0 < max_s ≤ {MAX_S:g}")
            http.connection.settimeout(SOCKET_TIMEOUT_S)
            result = upload(
                http.rfile,
                length=int(raw_length) if raw_length.isdigit() else None,
                chunked=chunked,
                max_s=max_s,
                cap=self.cap,
                clock=self.clock,
            )
        except ThroughputRequestError as exc:
            http.close_connection = True
            _json(http, exc.status, {"error": str(exc)})
            return
        finally:
            self._slots.release()
        extra = {} if result.complete else {"Connection": "close"}
        with contextlib.suppress(OSError):  # the sender may have given up before the answer
            _send(http, HTTPStatus.OK, result.to_json(), "application/json", extra)
        if not result.complete:
            _linger(http.connection)

    def _busy(self, http: BaseHTTPRequestHandler) -> None:
        message = f"busy: {self._max_concurrent} throughput tests are running; try later"
        _json(http, HTTPStatus.SERVICE_UNAVAILABLE, {"error": message}, {"Retry-After": "60"})


def _linger(connection: socket.socket) -> None:
    # Closing with the rest of the body unread would send a reset, and a reset can
    # destroy the answer before the sender reads it: read and drop the rest a while.
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(0.2)
        until = time.monotonic() + LINGER_S
        while time.monotonic() < until and connection.recv(CHUNK):
            pass


def _json(
    http: BaseHTTPRequestHandler,
    status: HTTPStatus,
    payload: object,
    extra: dict[str, str] | None = None,
) -> None:
    _send(http, status, json.dumps(payload, ensure_ascii=False).encode(), "application/json", extra)


def _send(
    http: BaseHTTPRequestHandler,
    status: HTTPStatus,
    body: bytes,
    content_type: str,
    extra: dict[str, str] | None = None,
) -> None:
    http.send_response(status)
    http.send_header("Content-Type", content_type)
    http.send_header("Content-Length", str(len(body)))
    for key, value in (extra or {}).items():
        http.send_header(key, value)
    http.end_headers()
    http.wfile.write(body)


class ThroughputServer:
    """Only the throughput routes, in a daemon thread; ``port`` 0 picks a free one."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, handler: ThroughputHandler | None = None
    ) -> None:
        routes = handler or ThroughputHandler()

        class Handler(BaseHTTPRequestHandler):
            server_version = "kienco"
            protocol_version = "HTTP/1.1"  # keep-alive: the agent's requests share one connection

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == PATH:
                    routes.get(self, query)
                else:
                    _json(self, HTTPStatus.NOT_FOUND, {"error": f"no such path: {path}"})

            def do_POST(self) -> None:
                path, _, query = self.path.partition("?")
                if path == PATH:
                    routes.post(self, query)
                else:
                    self.close_connection = True
                    _json(self, HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), name="throughput", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ThroughputServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
