"""What every kienco dashboard shares: variables, filters, colours for codes, the grid.

:class:`Board` places panels left to right on Grafana's 24-column grid, gives each a
unique id and the kienco data source, and keeps, per target, what its query must
return (:class:`Check`), for the tests that run every query on a real InfluxDB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    Dashboard,
    QueryVariable,
    ThresholdsConfig,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from collector.history import (
    FLEET_EVERY_S,
    STATE_CODES,
    STATION_STATUS_CODES,
    VERDICT_CODES,
)
from kienco.dashboards.influxql import DATASOURCE, Expect, InfluxQL
from kienco.dashboards.macros import ALL
from kienco.dashboards.retention import RAW, TREND
from kienco.labels import STATION_STATES, VERDICTS

__all__ = [
    "KIND",
    "OPERATOR",
    "PROVINCE",
    "RP",
    "SCHEMA_VERSION",
    "SITE",
    "SITE_FILTERS",
    "TIMELINE_POINTS",
    "TIMEZONE",
    "Board",
    "Built",
    "Check",
    "compliance_mapping",
    "latest",
    "rename",
    "rp_variable",
    "state_mapping",
    "steps",
    "sum_of",
    "summed",
    "tag_variable",
    "verdict_mapping",
    "where",
]

SCHEMA_VERSION = 41  # Grafana 11.6's dashboard schema (grafana-foundation-sdk 11.6)
TIMEZONE = "Asia/Ho_Chi_Minh"
GRID_COLUMNS = 24
DEFAULT_DATA_POINTS = 1000  # Grafana's max data points: about a wide panel's width in pixels
TIMELINE_POINTS = 200  # a state timeline of hundreds of sites: a band is ~4 px wide anyway

# The filters every query repeats. An "All" is ``.*``, which also matches a point
# without that tag. Every per-site measurement carries the site's province, kind and
# operator as tags (collector/points.py ``site_tags``), so a query filters on its own
# series: "All" sites is ``.*``, not the list of sites found (a regex of 100 000 names
# cost each panel seconds at national scale, docs/capacity.md).
PROVINCE = '"province" =~ /^$province$/'
OPERATOR = '"operator" =~ /^$operator$/'
KIND = '"kind" =~ /^$kind$/'
SITE = '"site" =~ /^$site$/'
SITE_FILTERS = (PROVINCE, OPERATOR, KIND, SITE)

VERDICT_COLOURS = {"ready": "green", "degraded": "yellow", "unknown": "#8e8e8e", "not_ready": "red"}
STATE_COLOURS = {
    "up_commercial": "green",
    "up_generator": "blue",
    "up_battery": "orange",
    "unknown": "#8e8e8e",
    "down_transport": "purple",
    "down_power": "red",
    "down_damage": "dark-red",
}
COMPLIANCE_WORDS = {
    "compliant": ("đạt", "green"),
    "unknown": ("chưa báo cáo", "#8e8e8e"),
    "non_compliant": ("không đạt", "red"),
}


class PanelBuilder(Protocol):
    """What :class:`Board` needs of any of the SDK's panel builders."""

    def build(self) -> model.Panel: ...


@dataclass(frozen=True, slots=True)
class Check:
    """One target of one panel, and what its query must return."""

    dashboard: str
    panel_id: int
    panel: str
    panel_type: str
    ref_id: str
    query: str
    result_format: str
    min_interval: str | None
    max_data_points: int
    expect: Expect


@dataclass(frozen=True, slots=True)
class Built:
    """A dashboard's JSON (as Grafana stores it) and the checks of its queries."""

    uid: str
    filename: str
    json: dict[str, Any]
    checks: tuple[Check, ...]


def _mapping(
    words: Mapping[str, tuple[str, str]], codes: Mapping[Any, int], colours: Mapping[str, str]
) -> model.ValueMap:
    options = {
        str(code): model.ValueMappingResult(text=words[key][0], color=colours[key], index=code)
        for key, code in codes.items()
    }
    return model.ValueMap(options=options)


def verdict_mapping() -> model.ValueMap:
    """``verdict_code`` → the verdict in Vietnamese, coloured (collector/history.py)."""
    return _mapping(VERDICTS, VERDICT_CODES, VERDICT_COLOURS)


def state_mapping() -> model.ValueMap:
    """``state_code`` → the station state in Vietnamese, coloured."""
    return _mapping(STATION_STATES, STATE_CODES, STATE_COLOURS)


def compliance_mapping() -> model.ValueMap:
    """``status_code`` of a hardened station → compliant / never reported / not."""
    words = {k: (vi, vi) for k, (vi, _) in COMPLIANCE_WORDS.items()}
    colours = {k: colour for k, (_, colour) in COMPLIANCE_WORDS.items()}
    return _mapping(words, STATION_STATUS_CODES, colours)


def where(*conditions: str) -> str:
    """``$timeFilter AND …``: every query is bounded by the dashboard's time range."""
    return " AND ".join(("$timeFilter", *conditions))


SUMMARY_BUCKET = "1m"  # collector/summaries.py stamps at most one summary per minute


LATEST = "15m"
"""How far back a "now" panel looks from the end of the range: a site is judged at each
report, and every 5 min while silent (collector/readiness.py), the fleet summed every
minute; 15 min covers three of either. Cheap whatever the range, and right for a range
in the past too (the picture at its end)."""


def latest(*conditions: str, window: str = LATEST) -> str:
    """``time`` within ``window`` before the end of the range, ``AND …``."""
    return " AND ".join((f"time > ${{__to}}ms - {window} AND time <= ${{__to}}ms", *conditions))


def summed(
    measurement: str,
    columns: Mapping[str, str],
    *,
    filters: Sequence[str],
    over_time: bool,
    by: Sequence[str] = (),
    window: str = LATEST,
    every_s: int = FLEET_EVERY_S,
    ratios: Sequence[str] = (),
) -> str:
    """A periodic summary (``fleet``, ``compliance``) summed across its series.

    The collector stamps each summary at the start of its slot (``every_s``, whole
    minutes), the same in every series and shard (``collector/summaries.py``), so one
    minute's points, summed, are the fleet at that minute, exactly. Now
    (``over_time=False``): the newest such minute (per ``by`` group). Over time: per
    Grafana interval (a whole number of slots, the panel's minimum being one slot), the
    sum divided by the slots it holds: the mean count per summary (the 5-minute trends
    hold the sum of their summaries, so the same text reads both). ``ratios`` are
    columns left undivided (a mean of ratios, a minimum). One level of aggregation
    only: InfluxDB 1.6 runs a query nested in another seconds slower, and grouping
    days by the minute costs it seconds too (benchmarks/dashboards.py).
    ``columns``: alias → expression of sums.
    """
    if not over_time:
        selected = ", ".join(f'{expr} AS "{alias}"' for alias, expr in columns.items())
        groups = ", ".join([f"time({SUMMARY_BUCKET})", *(f'"{key}"' for key in by)])
        return (
            f'SELECT {selected} FROM "{measurement}" WHERE {latest(*filters, window=window)} '
            f"GROUP BY {groups} fill(none) ORDER BY time DESC LIMIT 1"
        )
    per_summary = f"{every_s * 1000} / $__interval_ms"
    selected = ", ".join(
        f'{expr} AS "{alias}"' if alias in ratios else f'({expr}) * {per_summary} AS "{alias}"'
        for alias, expr in columns.items()
    )
    groups = ", ".join(["time($__interval)", *(f'"{key}"' for key in by)])
    return (
        f'SELECT {selected} FROM {RP}."{measurement}" WHERE {where(*filters)} '
        f"GROUP BY {groups} fill(none)"
    )


def sum_of(columns: Sequence[str]) -> dict[str, str]:
    """``{column: sum("column")}`` for :func:`summed`."""
    return {column: f'sum("{column}")' for column in columns}


class Overridable(Protocol):
    """Any SDK panel builder: it can override a field's config by the field's name."""

    def override_by_name(self, name: str, properties: list[model.DynamicConfigValue]) -> Self: ...


P = TypeVar("P", bound=Overridable)


def rename(panel: P, names: Mapping[str, str], colours: Mapping[str, str] | None = None) -> P:
    """Show each column under its Vietnamese name (and colour), by Grafana field overrides."""
    for column, shown in names.items():
        properties = [model.DynamicConfigValue(id_val="displayName", value=shown)]
        colour = (colours or {}).get(column)
        if colour is not None:
            properties.append(
                model.DynamicConfigValue(
                    id_val="color", value={"mode": "fixed", "fixedColor": colour}
                )
            )
        panel = panel.override_by_name(column, properties)
    return panel


def steps(base: str, *levels: tuple[float, str]) -> ThresholdsConfig:
    """Absolute thresholds: ``base`` colour below the first level."""
    chain = [model.Threshold(value=None, color=base)]
    chain += [model.Threshold(value=value, color=colour) for value, colour in levels]
    return ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(chain)


RP = '"$rp"'
"""The retention policy a time series reads: raw or 5-minute (kienco/dashboards/retention.py)."""


def rp_variable() -> CustomVariable:
    """*Dữ liệu*: raw points (30 s, kept 35 days) or the 5-minute trends (kept 400 days)."""
    # no comma in a text: Grafana splits a custom variable's values on commas
    choices = [("Thô — 30 giây / 35 ngày", RAW), ("Xu hướng — 5 phút / 400 ngày", TREND)]
    return (
        CustomVariable("rp")
        .label("Dữ liệu")
        .description(
            "Biểu đồ theo thời gian đọc dữ liệu thô (từng báo cáo) hay xu hướng 5 phút "
            "(nhanh cho nhiều ngày; dashboards/influxdb/retention.influxql). "
            "Time series read raw points or 5-minute trends (fast over days)."
        )
        .values(", ".join(f"{text} : {value}" for text, value in choices))
        .options([model.VariableOption(text=t, value=v, selected=v == RAW) for t, v in choices])
        .current(model.VariableOption(text=choices[0][0], value=RAW, selected=True))
        .multi(False)
        .include_all(False)
    )


def tag_variable(
    name: str,
    label: str,
    query: str,
    description: str,
    *,
    default: str = ALL,
) -> QueryVariable:
    """A multi-value variable from ``SHOW TAG VALUES``, with "All", refreshed with the range.

    "All" is ``.*``, never the list of values found: every query filters each variable
    on a tag of the series it reads (``SITE_FILTERS``), and a list of 100 000 sites cost
    each panel seconds at national scale (docs/capacity.md)."""
    shown = "All" if default == ALL else default
    variable = (
        QueryVariable(name)
        .label(label)
        .description(description)
        .query(" ".join(query.split()))
        .datasource(DATASOURCE)
        .multi(True)
        .include_all(True)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(text=shown, value=default, selected=True))
        .all_value(".*")
    )
    return variable


@dataclass
class Board:
    """One dashboard being laid out."""

    uid: str
    title: str
    description: str
    filename: str
    tags: Sequence[str]
    time_from: str
    refresh: str
    variables: Sequence[cogbuilder.Builder[model.VariableModel]]
    _panels: list[model.Panel | model.RowPanel] = field(default_factory=list)
    _checks: list[Check] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def _next_id(self) -> int:
        return len(self._panels) + 1

    def row(self, title: str) -> Self:
        """A section title across the grid; what follows starts below it."""
        self._newline()
        self._panels.append(
            model.RowPanel(
                title=title,
                collapsed=False,
                id_val=self._next_id(),
                grid_pos=model.GridPos(h=1, w=GRID_COLUMNS, x=0, y=self._y),
                panels=[],
            )
        )
        self._y += 1
        return self

    def _newline(self) -> None:
        if self._x:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0

    def add(
        self,
        panel: PanelBuilder,
        *,
        w: int,
        h: int,
        queries: Sequence[InfluxQL] = (),
        min_interval: str | None = None,
        max_data_points: int | None = None,
    ) -> Self:
        """Place a panel after the previous one (wrapping at 24 columns), with its queries."""
        if self._x + w > GRID_COLUMNS:
            self._newline()
        built = panel.build()
        built.id_val = self._next_id()
        built.grid_pos = model.GridPos(h=h, w=w, x=self._x, y=self._y)
        built.datasource = DataSourceRef(type_val=DATASOURCE.type_val, uid=DATASOURCE.uid)
        if min_interval is not None:
            built.interval = min_interval
        if max_data_points is not None:  # fewer intervals: a state timeline of many sites
            built.max_data_points = max_data_points
        targets = []
        for index, query in enumerate(queries):
            query.ref_id = chr(ord("A") + index)
            targets.append(query.build())
            self._checks.append(
                Check(
                    self.uid,
                    built.id_val,
                    built.title or "",
                    built.type_val,
                    query.ref_id,
                    query.query,
                    query.result_format,
                    min_interval,
                    max_data_points or DEFAULT_DATA_POINTS,
                    query.expect,
                )
            )
        if targets:
            built.targets = list(targets)
        self._panels.append(built)
        self._x += w
        self._row_height = max(self._row_height, h)
        return self

    def build(self) -> Built:
        builder = (
            Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags(list(self.tags))
            .timezone(TIMEZONE)
            .time(self.time_from, "now")
            .refresh(self.refresh)
            .readonly()
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .variables(list(self.variables))
        )
        dashboard = builder.build()
        dashboard.schema_version = SCHEMA_VERSION
        dashboard.panels = list(self._panels)
        data = JSONEncoder().encode(dashboard)
        import json

        return Built(self.uid, self.filename, json.loads(data), tuple(self._checks))
