"""The bounded throughput test: the collector's handlers, and the agent's caps, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from agent.config import ThroughputConfig
from agent.probes import throughput
from collector.throughput import (
    CHUNK,
    ThroughputHandler,
    ThroughputRequestError,
    ThroughputServer,
    download,
    requested_bytes,
    upload,
)
from collector.throughput import PATH as THROUGHPUT_PATH

SLACK_S = 0.3


@pytest.fixture
def server() -> Iterator[ThroughputServer]:
    running = ThroughputServer().start()
    yield running
    running.stop()


def _config(url: str, max_bytes: int = 1_000_000, max_s: float = 2.0) -> ThroughputConfig:
    return ThroughputConfig(url=url, max_bytes=max_bytes, max_s=max_s)


def _ticking(step: float) -> Callable[[], float]:
    """A clock that moves ``step`` seconds each time it is read."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


# The collector's handlers, as functions.


@pytest.mark.parametrize(("asked", "given"), [(1, 1), (CHUNK + 5, CHUNK + 5), (10**9, 300_000)])
def test_download_gives_exactly_what_was_asked_up_to_the_cap(asked: int, given: int) -> None:
    chunks = list(download(asked, cap=300_000))
    assert sum(map(len, chunks)) == given
    assert all(len(chunk) <= CHUNK for chunk in chunks)


def test_download_is_incompressible() -> None:
    data = b"".join(download(1_000_000))
    assert len(zlib.compress(data, 9)) > 0.99 * len(data)


@pytest.mark.parametrize("query", ["", "bytes=0", "bytes=-1", "bytes=x", "bytes=1.5", "bytes=101"])
def test_a_download_query_out_of_range_is_refused(query: str) -> None:
    with pytest.raises(ThroughputRequestError) as refused:
        requested_bytes(query, cap=100)
    assert refused.value.status == 400 and "bytes=" in str(refused.value)


def test_upload_counts_a_sized_body_and_times_it() -> None:
    result = upload(io.BytesIO(b"x" * 200_000), length=200_000, clock=_ticking(0.001))
    assert (result.n_bytes, result.complete) == (200_000, True)
    assert result.seconds > 0
    assert json.loads(result.to_json()) == {"bytes": 200_000, "seconds": result.seconds}


def test_upload_decodes_a_chunked_body_with_extensions_and_trailers() -> None:
    body = b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT REQUEST"
    stream = io.BytesIO(body)
    result = upload(stream, length=None, chunked=True)
    assert (result.n_bytes, result.complete) == (7, True)
    assert stream.read() == b"NEXT REQUEST"  # left for the next request on the connection


def test_upload_counts_a_body_cut_short() -> None:
    assert upload(io.BytesIO(b"x" * 10), length=100).n_bytes == 10
    cut = upload(io.BytesIO(b"a\r\n" + b"x" * 4), length=None, chunked=True)
    assert (cut.n_bytes, cut.complete) == (4, False)


def test_upload_stops_at_its_time_and_byte_caps() -> None:
    timed = upload(
        io.BytesIO(b"x" * 10 * CHUNK), length=10 * CHUNK, max_s=0.25, clock=_ticking(0.1)
    )
    assert timed.complete is False and 0 < timed.n_bytes < 10 * CHUNK
    chunked = b"".join(b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    capped = upload(io.BytesIO(chunked), length=None, chunked=True, cap=CHUNK + 10)
    assert (capped.n_bytes, capped.complete) == (CHUNK + 10, False)


@pytest.mark.parametrize(
    ("length", "chunked", "status"), [(None, False, 411), (101, False, 413), (101, True, 413)]
)
def test_upload_refuses_bodies_it_cannot_bound(
    length: int | None, chunked: bool, status: int
) -> None:
    with pytest.raises(ThroughputRequestError) as refused:
        upload(io.BytesIO(b""), length=length, chunked=chunked, cap=100)
    assert refused.value.status == status


# The server on loopback.


def test_server_get_is_octet_stream_with_its_length(server: ThroughputServer) -> None:
    answer = httpx.get(f"{server.url}{throughput.PATH}?bytes=100000")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-length"] == "100000" and len(answer.content) == 100_000
    assert httpx.get(f"{server.url}{throughput.PATH}?bytes=0").status_code == 400
    assert httpx.get(f"{server.url}/api/v1/other").status_code == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_server_post_answers_what_arrived(server: ThroughputServer, chunked: bool) -> None:
    body = b"y" * 300_000
    content = iter([body[:100_000], body[100_000:]]) if chunked else body
    answer = httpx.post(f"{server.url}{throughput.PATH}", content=content)
    assert answer.status_code == 200
    assert answer.json()["bytes"] == 300_000 and answer.json()["seconds"] >= 0


async def test_server_post_stops_timing_at_its_window(server: ThroughputServer) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b"z" * 1000
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{server.url}{throughput.PATH}", params={"max_s": "0.2"}, content=trickle()
        )
    got = answer.json()
    assert 0 < got["bytes"] < 12_000
    assert 0.2 <= got["seconds"] < 0.2 + SLACK_S


async def test_a_busy_server_says_so_and_measure_reports_it() -> None:
    busy = ThroughputServer(handler=ThroughputHandler(max_concurrent=0)).start()
    try:
        up, down, error = await throughput.measure(_config(busy.url))
    finally:
        busy.stop()
    assert (up, down) == (None, None)
    assert error and "HTTP 503" in error and "busy" in error


async def test_routed_inside_an_http_1_0_api_as_the_collector_does() -> None:
    """The lines the collector's API adds (collector/api.py answers in HTTP/1.0)."""
    routes = ThroughputHandler()

    class Api(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == THROUGHPUT_PATH:
                routes.get(self, url.query)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path == THROUGHPUT_PATH:
                routes.post(self, url.query)

    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, args=(0.1,), daemon=True).start()
    try:
        up, down, error = await throughput.measure(_config(f"http://127.0.0.1:{api.server_port}"))
    finally:
        api.shutdown()
        api.server_close()
    assert error is None and up and up > 1.0 and down and down > 1.0


# The agent's measure(): caps, the in-call skip, errors.


async def test_measure_on_loopback_gives_both_rates(server: ThroughputServer) -> None:
    up, down, error = await throughput.measure(_config(server.url))
    assert error is None
    assert up is not None and up > 1.0 and down is not None and down > 1.0


async def test_measure_never_starts_during_a_call() -> None:
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"the test touched the network: {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(no_network)) as client:
        result = await throughput.measure(_config("http://collector"), in_call=True, client=client)
    assert result == (None, None, "skipped: in a call")


async def test_the_byte_cap_holds_however_much_the_server_sends(server: ThroughputServer) -> None:
    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                yield b"\0" * CHUNK

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Endless())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        down = await throughput.download(client, "http://c/x", max_bytes=200_000, max_s=2)
    assert down.n_bytes == 200_000 and not down.timed_out

    async with throughput.make_client(None, 2.0) as client:
        up = await throughput.upload(
            client, server.url + throughput.PATH, max_bytes=200_000, max_s=2.0
        )
    assert up.n_bytes == 200_000 and not up.timed_out


async def test_the_time_cap_ends_a_slow_download_and_the_rate_is_what_moved() -> None:
    class Slow(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                await asyncio.sleep(0.05)
                yield b"\0" * 10_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Slow())

    started = time.perf_counter()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        down = await throughput.download(client, "http://c/x", max_bytes=10_000_000, max_s=0.5)
    assert time.perf_counter() - started <= 0.5 + SLACK_S
    assert down.timed_out and 0 < down.n_bytes < 200_000
    assert down.mbps is not None and 0.8 < down.mbps < 2.0  # 10 kB per 50 ms = 1.6 Mbps


@contextlib.asynccontextmanager
async def _slow_sink(answer_after_s: float) -> AsyncIterator[str]:
    """A collector on loopback that takes a chunked body at 16 KiB per 50 ms (2.6 Mbps)."""
    handlers: list[asyncio.Task[None]] = []

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got, started = 0, time.perf_counter()
        while size := int((await reader.readline()).split(b";")[0], 16):
            got += len(await reader.readexactly(size))
            await reader.readline()
            await asyncio.sleep(0.05)
        took = time.perf_counter() - started
        await asyncio.sleep(answer_after_s)
        answer = json.dumps({"bytes": got, "seconds": took}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(answer)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + answer)
        await writer.drain()
        writer.close()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.create_task(take(reader, writer)))

    listener = socket.socket()
    # A small receive buffer: the sender is held to the sink's pace, as by a thin path.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    listener.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(start, sock=listener)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{throughput.PATH}"
    finally:
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        server.close()


async def test_the_time_cap_ends_a_slow_upload_and_the_rate_is_what_arrived() -> None:
    started = time.perf_counter()
    async with _slow_sink(answer_after_s=0) as url, throughput.make_client(None, 1.5) as client:
        up = await throughput.upload(client, url, max_bytes=10_000_000, max_s=1.5)
    assert time.perf_counter() - started <= 1.5 + SLACK_S
    assert up.timed_out and 0 < up.n_bytes < 1_000_000
    assert up.mbps is not None and 2.0 < up.mbps < 3.0, up  # the sink's own count: 2.6 Mbps


async def test_an_upload_answer_later_than_the_time_cap_is_unknown_not_guessed() -> None:
    started = time.perf_counter()
    async with _slow_sink(answer_after_s=10) as url, throughput.make_client(None, 1.0) as client:
        with pytest.raises(TimeoutError, match="no answer within 1 s"):
            await throughput.upload(client, url, max_bytes=10_000_000, max_s=1.0)
    assert time.perf_counter() - started <= 1.0 + SLACK_S


@pytest.mark.parametrize(
    ("payload", "problem"),
    [(b"nope", "not a throughput answer"), (b'{"bytes": 20000, "seconds": 1}', "for 10000 bytes")],
)
async def test_a_bad_upload_answer_is_an_error(payload: bytes, problem: str) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, stream=httpx.ByteStream(b"abc"))
        await request.aread()
        return httpx.Response(200, content=payload)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        up, down, error = await throughput.measure(
            _config("http://c", max_bytes=10_000), client=client
        )
    assert up is None and down is not None
    assert error and error.startswith("upload: ThroughputError") and problem in error


async def test_an_unreachable_collector_gives_both_errors_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        up, down, error = await throughput.measure(_config(url, max_s=1.0))
    assert (up, down) == (None, None)
    assert error and "download: ConnectError" in error and "upload: ConnectError" in error


async def test_a_path_address_and_a_client_of_ones_own_do_not_mix() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="local_address"):
            await throughput.measure(_config("http://c"), local_address="127.0.0.1", client=client)
