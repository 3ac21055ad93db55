"""Which sites changed, for the board's open pages: the collector's threads tell, pages listen.

The collector calls :meth:`Changes.site` when a site's shown verdict changes (and when
a rehearsal result comes in): under a lock, a generation number is bumped and the
site logged. Each open page holds one server-sent-event stream (collector/board/stream.py)
that waits on the server's event loop for the generation to move, reads what changed
since the last one it saw, keeps what its viewer may see and its page shows, and says
so; the page then fetches its live part again.

Telling costs the judging thread a lock and an append: no page, no cost, and never a
wait on a slow browser. Waking the waiting streams is one ``call_soon_threadsafe`` per
event loop, whatever the number of streams or changes (a province losing mains is one
wake, not 300 × 200). The log keeps the last :data:`KEEP` changes; a stream that fell
further behind is told "everything" and its page fetches all it shows. So is every
stream after :meth:`Changes.everything`: what changed is the collector itself (its
broker lost or back: the banner of collector/board/trust.py), on every page.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["EVERYTHING", "KEEP", "Changed", "Changes"]

KEEP = 20_000
EVERYTHING = ("", "")
"""The log's entry for "every page": no site or province is named ""."""

Changed = list[tuple[str, str]] | None
"""(site, province) changed after a generation, or None: more than the log keeps."""


class Changes:
    """Thread-safe. ``site()`` from any thread; ``wait()`` and ``since()`` from a stream."""

    def __init__(self, *, keep: int = KEEP) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._log: list[tuple[str, str]] = []
        self._first = 1  # the generation of _log[0]
        self._generation = 0
        self._waiting: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        self._closed = False

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def site(self, site: str, province: str) -> None:
        """``site`` of ``province`` changed: what its pages show of it is out of date."""
        with self._lock:
            self._generation += 1
            self._log.append((site, province))
            if len(self._log) > 2 * self.keep:
                drop = len(self._log) - self.keep
                del self._log[:drop]
                self._first += drop
            waiting, self._waiting = self._waiting, {}
        for loop, event in waiting.items():
            _wake(loop, event)

    def everything(self) -> None:
        """What every page shows is out of date (the collector's own health changed)."""
        self.site(*EVERYTHING)

    def since(self, after: int) -> tuple[int, Changed]:
        """(the generation now, what changed after ``after``: None when the log no longer
        has it all)."""
        with self._lock:
            if after + 1 < self._first:
                return self._generation, None
            return self._generation, self._log[after + 1 - self._first :]

    async def wait(self, after: int, timeout_s: float) -> int:
        """Return the generation once it is past ``after``, or after ``timeout_s``, or at close."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._generation > after or self._closed:
                return self._generation
            event = self._waiting.get(loop)
            if event is None:
                event = self._waiting[loop] = asyncio.Event()
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
        except TimeoutError:
            pass
        return self._generation

    def close(self) -> None:
        """The collector stops: every stream ends now (rather than hold the server's stop)."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, {}
        for loop, event in waiting.items():
            _wake(loop, event)


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    with contextlib.suppress(RuntimeError):  # a loop that closed: nobody waits there
        loop.call_soon_threadsafe(event.set)
