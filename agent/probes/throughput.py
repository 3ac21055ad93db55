"""Bounded throughput test of a path against the collector: download, then upload.

Each direction moves at most ``max_bytes`` and lasts at most ``max_s``; when the
time cap comes first the rate is computed from what moved by then. The test is
never started during a call: it fills the path the call needs.

- Download: one ``GET /api/v1/throughput?bytes=N``, timed from the answer's
  headers to the last byte read, or to the time cap.
- Upload: one chunked ``POST /api/v1/throughput?max_s=W``. The agent sends
  until ``max_bytes`` or the window ``W`` (``max_s`` less a margin for the
  answer to come back); the collector reads until the body ends or its own
  ``W`` runs out, and answers how many bytes arrived in how long. Only the
  receiver knows what moved: bytes still in the sender's buffers have not.
  Should a stalling path keep the answer past ``max_s``, the upload rate is
  unknown (an error), never guessed from what the sender's socket took.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from agent.config import ThroughputConfig

PATH = "/api/v1/throughput"
SKIPPED_IN_CALL = "skipped: in a call"
CHUNK = 64 * 1024
SEND_CHUNK = 16 * 1024
NOTSENT_LOWAT = 16 * 1024
"""The kernel takes more body only when less than this is unsent (TCP_NOTSENT_LOWAT)."""
BUFFERED = 64 * 1024 + NOTSENT_LOWAT + SEND_CHUNK
"""What may sit unsent in the event loop's buffer and the kernel when the body ends."""

Clock = Callable[[], float]


class ThroughputError(Exception):
    """The collector's answer was not a throughput answer (status, shape)."""


@dataclass(frozen=True)
class Transfer:
    """What moved one way: bytes, over seconds; ``timed_out`` when the time cap ended it."""

    n_bytes: int
    seconds: float
    timed_out: bool = False
    wait_s: float | None = None  # from the request to the answer's headers

    @property
    def mbps(self) -> float | None:
        if self.n_bytes <= 0 or self.seconds <= 0:
            return None
        return self.n_bytes * 8 / self.seconds / 1e6


async def measure(
    config: ThroughputConfig,
    *,
    local_address: str | None = None,
    in_call: bool | None = None,
    client: httpx.AsyncClient | None = None,
    clock: Clock = time.perf_counter,
) -> tuple[float | None, float | None, str | None]:
    """(up_mbps, down_mbps, error) of one path; each direction within the config's caps.

    ``local_address`` binds the test to one path's source address (the box's
    source routing picks the path). A given ``client`` is used as it is.
    """
    if in_call:
        return None, None, SKIPPED_IN_CALL
    if client is not None and local_address is not None:
        raise ValueError("local_address binds the client measure() makes; bind your own client")
    url = config.url.rstrip("/") + PATH
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(make_client(local_address, config.max_s))
        max_bytes, max_s = config.max_bytes, config.max_s
        down, down_error = await _attempt(
            "download", download(client, url, max_bytes=max_bytes, max_s=max_s, clock=clock)
        )
        up, up_error = await _attempt(
            "upload",
            upload(client, url, max_bytes=max_bytes, max_s=max_s, after=down, clock=clock),
        )
    errors = "; ".join(e for e in (down_error, up_error) if e)
    return (up.mbps if up else None, down.mbps if down else None, errors[:500] or None)


def make_client(local_address: str | None, timeout_s: float) -> httpx.AsyncClient:
    """A client for one path: no retries, no redirects, no proxy from the environment
    (a proxy would put another path under the test)."""
    # Without a low-water mark the kernel queues megabytes, and the upload's end
    # (and the answer) would wait behind them on a thin path.
    lowat = getattr(socket, "TCP_NOTSENT_LOWAT", None)  # Linux and macOS have it
    options = [(socket.IPPROTO_TCP, lowat, NOTSENT_LOWAT)] if lowat is not None else []
    transport = httpx.AsyncHTTPTransport(
        local_address=local_address, retries=0, socket_options=options
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"Accept-Encoding": "identity"},
    )


async def download(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    max_s: float,
    clock: Clock = time.perf_counter,
) -> Transfer:
    """Read up to ``max_bytes`` for up to ``max_s`` seconds."""
    got = 0
    started = clock()
    first: float | None = None
    timed_out = False
    try:
        async with (
            asyncio.timeout(max_s),
            client.stream("GET", url, params={"bytes": max_bytes}) as response,
        ):
            await _check(response)
            first = clock()
            async for chunk in response.aiter_raw(CHUNK):
                got += len(chunk)
                if got >= max_bytes:
                    break  # a server sending more than asked does not move the cap
    except TimeoutError:
        if first is None:
            raise TimeoutError(f"no answer within {max_s:g} s") from None
        timed_out = True
    assert first is not None  # the stream answered, or _check raised
    return Transfer(min(got, max_bytes), clock() - first, timed_out, wait_s=first - started)


async def upload(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    max_s: float,
    after: Transfer | None = None,
    clock: Clock = time.perf_counter,
) -> Transfer:
    """Send up to ``max_bytes`` for up to ``max_s`` seconds; the collector counts what arrived.

    ``after``, the download just done on this path, sizes the margin kept for
    the answer to come back within ``max_s``.
    """
    window = max_s - _margin(max_s, after)
    stop_at = clock() + window
    pace = _Pace(clock)

    async def body() -> AsyncIterator[bytes]:
        # The answer is read only once the body has gone, so the body ends early
        # enough for what is still buffered to drain before the window closes.
        block = os.urandom(CHUNK)  # fresh per test: a compressing link has nothing to shrink
        while pace.sent < max_bytes and clock() < stop_at - 2 * pace.seconds_for(BUFFERED):
            chunk = block[pace.sent % CHUNK :][:SEND_CHUNK][: max_bytes - pace.sent]
            pace.note(len(chunk))
            yield chunk

    try:
        async with asyncio.timeout(max_s):
            response = await client.post(  # chunked: the body may end at any time
                url,
                params={"max_s": f"{window:.3f}"},
                content=body(),
                headers={"Content-Type": "application/octet-stream"},
            )
    except TimeoutError:
        # Bytes the socket took are not bytes that arrived: without the collector's
        # count the rate is unknown, never guessed high.
        raise TimeoutError(f"no answer within {max_s:g} s (a slow or stalling path)") from None
    got, took = await _upload_answer(response, pace.sent)
    return Transfer(got, took, timed_out=got < max_bytes)


def _margin(max_s: float, after: Transfer | None) -> float:
    """Time kept at the end of ``max_s`` for the sender's buffered bytes to drain
    (at the download's pace, a guess) and for the answer to come back."""
    guess = max_s / 3
    if after is not None and after.wait_s is not None and after.mbps:
        guess = 0.1 + 2 * after.wait_s + BUFFERED * 8 / (after.mbps * 1e6)
    return min(max(guess, max_s / 4), max_s / 2)


class _Pace:
    """How fast the socket took the body over the last half second.

    With a low-water mark the socket takes the body about as fast as the path
    carries it; it runs ahead while buffers fill, so the margin it sizes is doubled.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent = 0
        self.samples: deque[tuple[float, int]] = deque()

    def note(self, n_bytes: int) -> None:
        self.sent += n_bytes
        now = self.clock()
        self.samples.append((now, self.sent))
        while len(self.samples) > 2 and now - self.samples[1][0] >= 0.5:
            self.samples.popleft()

    def seconds_for(self, n_bytes: int) -> float:
        """How long ``n_bytes`` take at the recent pace (0 while too early to tell)."""
        if len(self.samples) < 2:
            return 0.0
        (start, sent_then), (end, sent_now) = self.samples[0], self.samples[-1]
        if end - start < 0.1 or sent_now <= sent_then:
            return 0.0
        return n_bytes * (end - start) / (sent_now - sent_then)


async def _upload_answer(response: httpx.Response, sent: int) -> tuple[int, float]:
    await _check(response)
    try:
        answer = response.json()
        got, took = answer["bytes"], answer["seconds"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ThroughputError(f"not a throughput answer: {response.text[:100]!r}") from exc
    if not isinstance(got, int) or not isinstance(took, int | float) or not 0 <= got <= sent:
        raise ThroughputError(f"not a throughput answer for {sent} bytes: {answer!r:.100}")
    return got, max(float(took), 1e-6)


async def _check(response: httpx.Response) -> None:
    if response.status_code != 200:
        body = (await response.aread())[:200].decode(errors="replace")
        raise ThroughputError(f"HTTP {response.status_code} from {response.url}: {body}")


async def _attempt(
    direction: str, transfer: Awaitable[Transfer]
) -> tuple[Transfer | None, str | None]:
    try:
        moved = await transfer
    except (httpx.HTTPError, OSError, TimeoutError, ThroughputError) as exc:
        return None, f"{direction}: {type(exc).__name__}: {exc}".rstrip(": ")
    if moved.mbps is None:
        return None, f"{direction}: nothing moved in {moved.seconds:.1f} s"
    return moved, None
