"""An ``httpx.Client`` whose answers, once read, leave no reference cycle behind.

httpx's ``Response`` holds its body stream, and the stream (``BoundSyncStream``) holds
the response: every request leaves 43 objects, ~3.7 kB (the request, the response,
their headers, the connection pool's wait event and lock), that only the cyclic garbage
collector can free. ``collector run`` freezes what survives each collection
(collector/heap.py), so a write to InfluxDB or a call to Alertmanager in flight at a
collection was frozen there and never freed: a slow leak at a batch every fraction of a
second (``heap.audit`` at a clean stop counted 8 writes' worth in a 25 s run of
benchmarks/ingest.py). Once httpx has read and closed a response (every call that does
not ask to stream it), its stream is spent: it is swapped for an empty one, which breaks
the cycle, and reference counting frees it all when the caller drops the response.
tests/test_acyclic_http.py holds it on a real InfluxDB and Alertmanager (no cyclic
garbage from a call), and shows httpx's own client still leaving it: the day it does
not, this module can go.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["AcyclicClient"]


class AcyclicClient(httpx.Client):
    """``httpx.Client``, its answers read whole and freed by reference counting."""

    def send(
        self, request: httpx.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        response = super().send(request, stream=stream, **kwargs)
        if not stream:  # read and closed by httpx: the body is in ``response.content``
            response.stream = httpx.ByteStream(b"")
        return response
