"""Grafana's substitutions, as kienco/dashboards/macros.py plays them, on known cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kienco.dashboards.macros import (
    ALL,
    TimeRange,
    Variable,
    format_interval,
    interpolate,
    interval_for,
    render,
)

NOW = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)
PROVINCE = Variable("province", ("hp",), ("hn", "hp", "qn"), True, True, ".*")
SITE = Variable("site", ("hp-bts.1",), ("hp-bts.1", "hp-dc/2"), True, True, None)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (PROVINCE, "hp"),  # one value of a multi-value variable: regex-escaped, alone
        (Variable("province", ("hp", "qn"), PROVINCE.options, True, True, ".*"), "(hp|qn)"),
        (Variable("province", (ALL,), PROVINCE.options, True, True, ".*"), ".*"),  # raw
        (Variable("site", (ALL,), SITE.options, True, True, None), r"(hp-bts\.1|hp-dc\/2)"),
        (SITE, r"hp-bts\.1"),
        (Variable("plain", ("a.b",), (), False, False, None), "a.b"),  # not escaped
        (Variable("level", ("4",), (), True, True, None), "4"),  # a number is left alone
    ],
)
def test_variables_are_substituted_as_the_influxdb_data_source_does(
    variable: Variable, expected: str
) -> None:
    query = f'SELECT 1 FROM "x" WHERE "t" =~ /^${variable.name}$/ AND ${{{variable.name}}} = 1'
    assert interpolate(query, {variable.name: variable}) == (
        f'SELECT 1 FROM "x" WHERE "t" =~ /^{expected}$/ AND {expected} = 1'
    )


@pytest.mark.parametrize(
    ("span", "points", "minimum", "expected"),
    [
        (timedelta(hours=6), 1000, None, "20s"),
        (timedelta(hours=6), 1000, "1m", "1m"),  # never below the panel's minimum
        (timedelta(days=7), 1000, "30s", "10m"),
        (timedelta(days=7), 500, None, "20m"),
        (timedelta(hours=1), 1000, None, "5s"),
        (timedelta(days=365), 1000, None, "6h"),  # 8.76 h rounds to 6 h
    ],
)
def test_interval_rounded_as_grafana_rounds_it(
    span: timedelta, points: int, minimum: str | None, expected: str
) -> None:
    assert format_interval(interval_for(TimeRange.last(span, now=NOW), points, minimum)) == expected


def test_macros_after_variables_as_the_back_end_renders_them() -> None:
    span = TimeRange.last(timedelta(hours=6), now=NOW)
    query = (
        'SELECT mean("x") * 60000 / $__interval_ms FROM "m" WHERE $timeFilter '
        'AND "province" =~ /^$province$/ GROUP BY time($__interval), time($interval)'
    )
    start_ms, end_ms = (
        int((NOW - timedelta(hours=6)).timestamp() * 1000),
        int(NOW.timestamp() * 1000),
    )
    assert render(query, {"province": PROVINCE}, span, min_interval="1m") == (
        'SELECT mean("x") * 60000 / 60000 FROM "m" '
        f"WHERE time >= {start_ms}ms and time <= {end_ms}ms "
        'AND "province" =~ /^hp$/ GROUP BY time(1m), time(1m)'
    )
