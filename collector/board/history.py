"""A site's last hours from InfluxDB, for its page: backup power, and each path's RTT and loss.

What the collector wrote (collector/points.py, collector/readiness.py): every
evaluation's ``readiness`` point carries ``backup_hours``; every report's ``link``
points carry ``rtt_ms`` and ``loss_pct`` per ``path``. Read as one-minute-ish means
(about 120 per chart), with the board's own short timeout: a slow InfluxDB costs
a page its charts, never the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from collector.board.charts import Chart, Sample, chart
from contract.wire import SLUG_PATTERN

__all__ = ["MAX_HOURS", "History", "SiteCharts", "site_charts"]

MAX_HOURS = 72
POINTS_PER_CHART = 120
_SLUG = re.compile(SLUG_PATTERN)


class History(Protocol):
    """InfluxQL in, rows out (collector/influx.py ``InfluxV1Client.query``)."""

    def query(self, influxql: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class SiteCharts:
    hours: int
    autonomy: Chart
    rtt: Chart
    loss: Chart


def _step_s(hours: int) -> int:
    return max(10, hours * 3600 // POINTS_PER_CHART)


def site_charts(history: History, site: str, hours: int, now: datetime) -> SiteCharts:
    """The three charts of ``site`` over the last ``hours``; raises what the query raises."""
    if not _SLUG.fullmatch(site):  # ids are slugs: nothing to quote in InfluxQL
        raise ValueError(f"not a site id: {site!r}")
    hours = max(1, min(MAX_HOURS, hours))
    step = _step_s(hours)
    end = now
    start = end - timedelta(hours=hours)
    start_ns, end_ns = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
    where = f"\"site\" = '{site}' AND time >= {start_ns} AND time <= {end_ns}"
    autonomy_rows = history.query(
        f'SELECT mean("backup_hours") AS "v" FROM "readiness" WHERE {where} '
        f"GROUP BY time({step}s) fill(none)"
    )
    link_rows = history.query(
        f'SELECT mean("rtt_ms") AS "rtt", mean("loss_pct") AS "loss" FROM "link" '
        f'WHERE {where} GROUP BY time({step}s), "path" fill(none)'
    )

    start_s, end_s = start.timestamp(), end.timestamp()

    def drawn(series: dict[str, list[Sample]], y_floor: float) -> Chart:
        return chart(series, start_s=start_s, end_s=end_s, step_s=float(step), y_floor=y_floor)

    return SiteCharts(
        hours,
        drawn(_series(autonomy_rows, "v", None), 1.0),
        drawn(_series(link_rows, "rtt", "path"), 10.0),
        drawn(_series(link_rows, "loss", "path"), 1.0),
    )


def _series(rows: list[dict[str, Any]], value: str, by: str | None) -> dict[str, list[Sample]]:
    """Rows as one series per value of the tag ``by`` (one series when None)."""
    out: dict[str, list[Sample]] = {}
    for row in rows:
        v = row.get(value)
        label = "" if by is None else str(row.get(by, "?"))
        out.setdefault(label, []).append(
            (row["time"] / 1e9, float(v) if isinstance(v, int | float) else None)
        )
    return out
