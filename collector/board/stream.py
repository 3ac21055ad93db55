"""The live stream of one open page: server-sent events naming the sites that changed.

A page opens ``GET /live?province=hp`` (or ``site=``, ``meeting=``, or nothing: all
it may see) with the browser's own ``EventSource``. The stream says

    event: changed
    data: {"sites": ["hp-bts-1", ...]}

for the changes its viewer may see *and* its page shows (a ``province:hp`` viewer is
never told of a ``qn`` site, not even its id), and the page fetches its live part
again. Each event carries the generation as its id: a browser that reconnects
sends it back (``Last-Event-ID``) and is told at once what it missed.

A stream lasts :data:`LIFETIME_S`, then ends; the browser reconnects by itself
(``retry``), and the reconnect is checked again (a session logged out, a token
removed from the config: the stream is refused, 401). A stream whose session ends
while it is open (``still_reads``: a logout in another tab, unused past its lifetime)
ends at its next event or keep-alive, having told nothing more; the page's script
then fetches its live part, is refused too, and says the page is signed out
(collector/board/static/board.js). A comment every
:data:`KEEPALIVE_S` keeps proxies from closing an idle stream and finds a closed
tab. When the collector's health changes (collector/board/trust.py) every stream says
``{"all": true}``, as to a laggard. Changes arriving together (a province losing mains)
are one event, and a page is told at most once per :data:`MIN_GAP_S`: in a storm each
open page fetches its part at most that often, so 200 wall screens cannot take the
collector's time from the reports.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from collector.board.live import EVERYTHING, Changes

__all__ = ["COALESCE_S", "KEEPALIVE_S", "LIFETIME_S", "MIN_GAP_S", "RETRY_MS", "Wanted", "events"]

LIFETIME_S = 300.0
KEEPALIVE_S = 15.0
COALESCE_S = 0.05
MIN_GAP_S = 1.0
RETRY_MS = 1000

Wanted = Callable[[str, str], bool]
"""(site, province) -> does this stream's page show it to its viewer?"""


def _always() -> bool:
    return True


def _event(generation: int, sites: list[str]) -> bytes:
    data = json.dumps({"sites": sites}, separators=(",", ":"))
    return f"id: {generation}\nevent: changed\ndata: {data}\n\n".encode()


def _everything(generation: int) -> bytes:
    return f'id: {generation}\nevent: changed\ndata: {{"all":true}}\n\n'.encode()


async def events(
    changes: Changes,
    wanted: Wanted,
    *,
    last_seen: int | None,
    lifetime_s: float = LIFETIME_S,
    still_reads: Callable[[], bool] = _always,
) -> AsyncIterator[bytes]:
    """The stream's bytes, until its lifetime ends, its viewer no longer reads (its
    session ended) or the collector stops."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + lifetime_s
    seen = changes.generation
    told_at = -MIN_GAP_S  # loop time of the last event
    yield f"retry: {RETRY_MS}\n: kienco board\n\n".encode()
    if last_seen is not None and 0 <= last_seen < seen:
        seen, last_seen = last_seen, None  # what it missed while reconnecting: below
    while not changes.closed:
        left = ends - loop.time()
        if left <= 0:
            return
        now = await changes.wait(seen, min(KEEPALIVE_S, left))
        if not still_reads():
            return
        if now == seen:
            if not changes.closed and loop.time() < ends:
                yield b": keep-alive\n\n"
            continue
        # The rest of a burst comes in the same event; and never two within MIN_GAP_S.
        await asyncio.sleep(max(COALESCE_S, told_at + MIN_GAP_S - loop.time()))
        if not still_reads():
            return
        now, changed = changes.since(seen)
        if changed is None or EVERYTHING in changed:
            told_at = loop.time()
            yield _everything(now)
        else:
            sites = sorted({site for site, province in changed if wanted(site, province)})
            if sites:
                told_at = loop.time()
                yield _event(now, sites)
        seen = now
