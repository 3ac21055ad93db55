"""Panel shapes the kienco dashboards repeat, as Grafana Foundation SDK builders.

Each returns a builder with its title, description, units, colours and column names
set; :meth:`kienco.dashboards.common.Board.add` then places it and gives it its
queries. Titles are Vietnamese; descriptions are Vietnamese, then English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import geomap, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.dashboard import FieldColor, ThresholdsConfig
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from kienco.dashboards.common import rename

__all__ = ["map_of_sites", "stat_row", "states_over_time", "table_of", "trend"]


def _describe(vi: str, en: str) -> str:
    return f"{vi}\n\n{en}"


def stat_row(
    title: str,
    vi: str,
    en: str,
    names: Mapping[str, str],
    colours: Mapping[str, str],
    *,
    unit: str = "none",
) -> stat.Panel:
    """Big numbers side by side, one per column of a one-row table result."""
    panel = (
        stat.Panel()
        .title(title)
        .description(_describe(vi, en))
        .unit(unit)
        .decimals(0)
        .color_mode(common_models.BigValueColorMode.BACKGROUND)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .text_mode(common_models.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
        )
    )
    return rename(panel, names, colours)


def table_of(
    title: str,
    vi: str,
    en: str,
    names: Mapping[str, str],
    *,
    sort_by: str | None = None,
    descending: bool = False,
    mappings: Mapping[str, model.ValueMap] | None = None,
    units: Mapping[str, str] | None = None,
    hidden: Sequence[str] = ("Time",),
    drop_empty: Sequence[str] = (),
    thresholds: Mapping[str, ThresholdsConfig] | None = None,
) -> table.Panel:
    """A table of the query's rows: Vietnamese column names, codes shown as coloured words.

    ``drop_empty``: leave out the rows where any of these columns has no value (a Grafana
    *filter data by values* transformation). ``thresholds``: cells of these columns
    coloured by their value (an empty cell takes the base colour).
    """
    panel = table.Panel().title(title).description(_describe(vi, en)).filterable(True)
    if sort_by is not None:
        panel = panel.sort_by(
            [common_builders.TableSortByFieldState().display_name(sort_by).desc(descending)]
        )
    panel = rename(panel, names)
    for column, mapping in (mappings or {}).items():
        panel = panel.override_by_name(
            column,
            [
                model.DynamicConfigValue(id_val="mappings", value=[mapping]),
                model.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                ),
            ],
        )
    for column, levels in (thresholds or {}).items():
        panel = panel.override_by_name(
            column,
            [
                model.DynamicConfigValue(id_val="thresholds", value=levels.build()),
                model.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
                model.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                ),
            ],
        )
    for column, unit in (units or {}).items():
        panel = panel.override_by_name(
            column, [model.DynamicConfigValue(id_val="unit", value=unit)]
        )
    for column in hidden:
        panel = panel.override_by_name(
            column, [model.DynamicConfigValue(id_val="custom.hidden", value=True)]
        )
    if drop_empty:
        panel = panel.with_transformation(without_empty(drop_empty))
    return panel


def without_empty(columns: Sequence[str]) -> model.DataTransformerConfig:
    """Grafana's *filter data by values*: rows where any of ``columns`` is empty left out."""
    return model.DataTransformerConfig(
        id_val="filterByValue",
        options={
            "type": "exclude",
            "match": "any",
            "filters": [
                {"fieldName": column, "config": {"id": "isNull", "options": {}}}
                for column in columns
            ],
        },
    )


def trend(
    title: str,
    vi: str,
    en: str,
    *,
    unit: str = "none",
    names: Mapping[str, str] | None = None,
    colours: Mapping[str, str] | None = None,
    thresholds: ThresholdsConfig | None = None,
    stacked: bool = False,
) -> timeseries.Panel:
    """Lines over time; ``thresholds`` are drawn as dashed lines (the policy's limits)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(_describe(vi, en))
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .span_nulls(False)
    )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL)
        )
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common_models.GraphThresholdsStyleMode.DASHED
            )
        )
    return rename(panel, names or {}, colours)


def states_over_time(title: str, vi: str, en: str, mapping: model.ValueMap) -> statetimeline.Panel:
    """One coloured band per site: its worst code in each interval."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(_describe(vi, en))
        .mappings([mapping])
        .show_value(common_models.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
    )


def map_of_sites(
    title: str,
    vi: str,
    en: str,
    colour_by: str,
    thresholds: ThresholdsConfig,
    *,
    drop_empty: Sequence[str] = (),
) -> geomap.Panel:
    """Sites as dots at their coordinates, coloured by ``colour_by`` against ``thresholds``;
    rows where any of ``drop_empty`` is empty left out."""
    markers = (
        common_builders.MapLayerOptions()
        .type("markers")
        .name("Trạm")
        .tooltip(True)
        .location(
            common_builders.FrameGeometrySource()
            .mode(common_models.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": colour_by, "fixed": "dark-green"},
                    "size": {"fixed": 7},
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                    "opacity": 0.8,
                },
            }
        )
    )
    panel = (
        geomap.Panel()
        .title(title)
        .description(_describe(vi, en))
        .view(geomap.MapViewConfig().id("coords").lat(16).lon(106).zoom(5))
        .basemap(common_builders.MapLayerOptions().type("default").name("Nền"))
        .layers([markers])
        .thresholds(thresholds)
        .color_scheme(FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
    )
    if drop_empty:
        panel = panel.with_transformation(without_empty(drop_empty))
    return panel
