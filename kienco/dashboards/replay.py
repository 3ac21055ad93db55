"""Play Grafana against an InfluxDB: resolve a dashboard's variables, then run every query.

As Grafana does on opening a dashboard: each variable's ``SHOW TAG VALUES`` query
runs in order (each may use the ones before it), its selection is applied, then
every panel's targets are rendered (``kienco.dashboards.macros``) and sent to
``/query`` as the data source sends them (POST, ``epoch=ms``). Used by the tests
(every query, real InfluxDB) and by ``benchmarks/dashboards.py`` (how long each takes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from kienco.dashboards.common import Built, Check
from kienco.dashboards.influxql import DATASOURCE_MIN_INTERVAL
from kienco.dashboards.macros import ALL, TimeRange, Variable, render

__all__ = ["Influx", "Outcome", "Series", "opened", "replay", "resolve_variables"]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.values]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One query as sent, what came back, and how long InfluxDB took to answer."""

    check: Check
    sent: str
    series: list[Series] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Influx:
    """InfluxDB's ``/query`` as Grafana's InfluxDB data source calls it (POST, InfluxQL)."""

    url: str
    database: str
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.url, timeout=self.timeout_s)

    def close(self) -> None:
        self._client.close()

    def query(self, influxql: str) -> tuple[list[Series], str | None, float]:
        """(series, error, seconds): an InfluxQL error is returned, not raised."""
        started = time.perf_counter()
        response = self._client.post(
            "/query", data={"db": self.database, "q": influxql, "epoch": "ms"}
        )
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            return [], f"HTTP {response.status_code}: {response.text[:500]}", seconds
        series: list[Series] = []
        for result in response.json().get("results", []):
            if "error" in result:
                return [], str(result["error"]), seconds
            for item in result.get("series", []):
                series.append(
                    Series(
                        item.get("name", ""),
                        item.get("tags", {}),
                        item["columns"],
                        item.get("values", []),
                    )
                )
        return series, None, seconds


def resolve_variables(
    templating: Iterable[Mapping[str, Any]],
    influx: Influx,
    *,
    choose: Mapping[str, Sequence[str]] | None = None,
    span: TimeRange | None = None,
) -> dict[str, Variable]:
    """Each variable's options from InfluxDB, in order, and its selection (default: as saved).

    A chosen value the variable does not offer is an error, as it would be in Grafana.
    """
    resolved: dict[str, Variable] = {}
    for spec in templating:
        name = spec["name"]
        if spec["type"] == "custom":  # "text : value, …", as Grafana reads it
            options = tuple(part.split(" : ")[-1].strip() for part in spec["query"].split(","))
        else:
            query = render(spec["query"], resolved, span or TimeRange.last(timedelta(days=1)))
            series, error, _ = influx.query(query)
            if error is not None:
                raise ValueError(f"variable {name}: {error} in {query!r}")
            options = tuple(sorted({str(v) for s in series for v in s.column("value")}))
        current = spec.get("current", {}).get("value", ALL)
        default = [current] if isinstance(current, str) else list(current)
        wanted = tuple((choose or {}).get(name) or default)
        missing = [v for v in wanted if v != ALL and v not in options]
        if missing:
            raise ValueError(f"variable {name}: {missing} not among its values {options}")
        resolved[name] = Variable(
            name,
            wanted,
            options,
            multi=bool(spec.get("multi")),
            include_all=bool(spec.get("includeAll")),
            all_value=spec.get("allValue"),
        )
    return resolved


def replay(
    checks: Iterable[Check],
    variables: Mapping[str, Variable],
    span: TimeRange,
    influx: Influx,
    *,
    max_data_points: int | None = None,
) -> list[Outcome]:
    """Every target rendered as Grafana would, and run."""
    outcomes = []
    for check in checks:
        sent = render(
            check.query,
            variables,
            span,
            max_data_points=max_data_points or check.max_data_points,
            min_interval=check.min_interval or DATASOURCE_MIN_INTERVAL,
        )
        series, error, seconds = influx.query(sent)
        outcomes.append(Outcome(check, sent, series, error, seconds))
    return outcomes


def opened(
    built: Built,
    influx: Influx,
    span: TimeRange,
    *,
    choose: Mapping[str, Sequence[str]] | None = None,
    checks: Iterable[Check] | None = None,
) -> list[Outcome]:
    """``built`` opened over ``span`` as Grafana opens it: its variables resolved (those
    in ``choose`` set), then every panel's targets (or only ``checks``) run."""
    variables = resolve_variables(
        built.json["templating"]["list"], influx, choose=choose, span=span
    )
    return replay(built.checks if checks is None else checks, variables, span, influx)
