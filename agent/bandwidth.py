"""Throughput per path: tested on a schedule and before a rehearsal, stamped onto reports.

A test moves up to ``max_bytes`` each way within ``max_s`` (agent/probes/throughput.py),
so it runs apart from the poll cycle, one path after another, only on paths that
are up, and never during a call. Each site starts at its own offset in the hour,
so 3 400 meeting points do not all test on the hour. A result older than twice
the schedule is dropped: stale is unknown. A test that fails (one direction or both) is a
result too: the figure it could not measure is unknown, and the report says what failed
(``bandwidth_error``); the last test's figures are never carried past a failed one as
if measured. A test skipped for a call is no test: the last result stands.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from agent.config import PathConfig, ThroughputConfig
from contract.wire import LinkReading

log = logging.getLogger("kienco.agent")

Measure = Callable[..., Awaitable[tuple[float | None, float | None, str | None]]]


@dataclass(frozen=True, slots=True)
class _Result:
    at: float
    up_mbps: float | None
    down_mbps: float | None
    error: str | None = None  # what failed, when a direction was not measured


class Bandwidth:
    def __init__(
        self,
        config: ThroughputConfig,
        paths: tuple[PathConfig, ...],
        site: str,
        *,
        measure: Measure | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.paths = paths
        self.site = site
        self._measure = measure
        self._clock = clock
        self._results: dict[str, _Result] = {}

    def first_delay_s(self) -> float:
        """This site's offset in the schedule (stable across restarts)."""
        return float(zlib.crc32(self.site.encode()) % int(self.config.every_s))

    async def test_paths(self, links: Mapping[str, LinkReading], in_call: bool | None) -> None:
        if self._measure is None:
            from agent.probes.throughput import measure  # httpx: only where tests run

            self._measure = measure
        for path in self.paths:
            latest = links.get(path.path)
            if latest is None or latest.up is not True:
                continue  # a path that is down has no throughput to measure
            up, down, error = await self._measure(
                self.config, local_address=path.source, in_call=in_call
            )
            if error:
                log.info("throughput on %s: %s", path.path, error)
            if in_call:
                continue  # measure tests nothing in a call: no result, the last one stands
            failed = error if up is None or down is None else None
            if up is None and down is None and not failed:
                failed = "no figure measured"
            self._results[path.path] = _Result(self._clock(), up, down, failed)

    def stamp(self, links: tuple[LinkReading, ...]) -> tuple[LinkReading, ...]:
        """The links with the latest fresh result of each path's test."""
        now = self._clock()
        fresh_for = 2 * self.config.every_s
        stamped = []
        for link in links:
            result = self._results.get(link.path)
            if result is not None and now - result.at <= fresh_for:
                link = link.model_copy(
                    update={
                        "bandwidth_up_mbps": result.up_mbps,
                        "bandwidth_down_mbps": result.down_mbps,
                        "bandwidth_error": result.error,
                    }
                )
            stamped.append(link)
        return tuple(stamped)
