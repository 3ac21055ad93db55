"""What Grafana does to a raw InfluxQL query before InfluxDB sees it. Pure; no Grafana SDK.

Grafana cannot run on these machines, so the tests and the benchmark send each
panel's query to InfluxDB exactly as Grafana 11 would:

- **template variables** first, in the browser (``templateSrv.replace`` with the
  InfluxDB data source's ``interpolateQueryExpr``): a variable that is multi-value or
  has "All" is regex-escaped, several values become ``(a|b)``; "All" with a custom
  all-value (``.*``) is left raw; a lone single-value variable is left as it is;
  the global ``${__from}`` and ``${__to}`` become the range's ends in epoch ms;
- then the **macros**, in Grafana's Go back end (``pkg/tsdb/influxdb/influxql/models/
  query.go`` ``Build``): ``$timeFilter`` → ``time >= <from>ms and time <= <to>ms``,
  ``$interval`` and ``$__interval`` → the interval as ``gtime.FormatInterval`` writes
  it, ``$__interval_ms`` → milliseconds.

The interval is the browser's: the range over the panel's max data points, rounded
as ``rangeutil.roundInterval`` rounds, never below the panel's (or the data
source's) minimum interval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "ALL",
    "TimeRange",
    "Variable",
    "format_interval",
    "interpolate",
    "interval_for",
    "parse_interval",
    "regex_escape",
    "render",
    "selection",
]

ALL = "$__all"  # Grafana's value for the "All" option

# rangeutil.roundInterval: (below this many ms, use this interval in ms)
_ROUNDING: tuple[tuple[int, int], ...] = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]")


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, span: timedelta, *, now: datetime | None = None) -> TimeRange:
        end = now or datetime.now(UTC)
        return cls(end - span, end)


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard variable as Grafana holds it when a query is run."""

    name: str
    values: tuple[str, ...]  # the selection; (ALL,) for "All"
    options: tuple[str, ...] = ()  # every value it offers (what "All" stands for)
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None


def regex_escape(value: str) -> str:
    """Grafana's ``escapeRegex``: what is special in a regex, or closes ``/…/``."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def _value_of(variable: Variable) -> str:
    selected = variable.values
    if selected == (ALL,):
        if variable.all_value is not None:
            return variable.all_value  # a custom all-value is never escaped
        selected = variable.options
    if not (variable.multi or variable.include_all):
        return selected[0] if selected else ""
    escaped = [v if _is_number(v) else regex_escape(v) for v in selected]
    if len(escaped) == 1:
        return escaped[0]
    return "(" + "|".join(escaped) + ")"


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def interpolate(query: str, variables: Mapping[str, Variable]) -> str:
    """Template variables replaced as the InfluxDB data source's browser side does."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        variable = variables.get(name)
        return match.group(0) if variable is None else _value_of(variable)

    return _VARIABLE.sub(replace, query)


def parse_interval(text: str) -> int:
    """``30s``, ``1m``, ``500ms`` … as milliseconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text.strip())
    if match is None:
        raise ValueError(f"not an interval: {text!r}")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def format_interval(ms: int) -> str:
    """``gtime.FormatInterval``: the largest whole unit, truncated."""
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    if ms >= 60_000:
        return f"{ms // 60_000}m"
    if ms >= 1_000:
        return f"{ms // 1_000}s"
    return f"{max(ms, 1)}ms"


def interval_for(span: TimeRange, max_data_points: int, min_interval: str | None) -> int:
    """The panel's interval in ms, as the browser computes it (``calculateInterval``)."""
    raw = (span.end - span.start) / timedelta(milliseconds=1) / max_data_points
    rounded = next((to for below, to in _ROUNDING if raw < below), 31_536_000_000)
    floor = parse_interval(min_interval) if min_interval else 0
    return max(rounded, floor)


def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def render(
    query: str,
    variables: Mapping[str, Variable],
    span: TimeRange,
    *,
    max_data_points: int = 1000,
    min_interval: str | None = None,
) -> str:
    """The InfluxQL that reaches InfluxDB: variables in the browser, then the back end's macros."""
    text = interpolate(query, variables)
    for name, at in (("__from", span.start), ("__to", span.end)):
        text = text.replace(f"${{{name}}}", str(_epoch_ms(at))).replace(
            f"${name}", str(_epoch_ms(at))
        )
    interval_ms = interval_for(span, max_data_points, min_interval)
    interval = format_interval(interval_ms)
    time_filter = f"time >= {_epoch_ms(span.start)}ms and time <= {_epoch_ms(span.end)}ms"
    text = text.replace("$timeFilter", time_filter)
    text = text.replace("$interval", interval)
    text = text.replace("$__interval_ms", str(interval_ms))
    return text.replace("$__interval", interval)


def selection(variable: Variable, values: Sequence[str]) -> Variable:
    """The same variable with another selection."""
    return Variable(
        variable.name,
        tuple(values),
        variable.options,
        variable.multi,
        variable.include_all,
        variable.all_value,
    )
