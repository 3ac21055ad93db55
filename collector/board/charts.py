"""Small line charts as SVG geometry, drawn on the server: no chart library, no script.

Pure: series of (epoch seconds, value or None) in, numbers out. The template
(templates/_chart.html) lays the numbers into an ``<svg>``; a gap (a None, or no
point for longer than three steps) breaks the line rather than bridging it, so an
outage shows as the hole it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["HEIGHT", "WIDTH", "Chart", "Line", "Sample", "chart"]

WIDTH, HEIGHT = 320, 96
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 34, 4, 6, 14
Sample = tuple[float, float | None]


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    segments: tuple[str, ...]  # "x,y x,y ..." for each <polyline>
    last: float | None
    index: int  # its colour (board.css .series-N)


@dataclass(frozen=True, slots=True)
class Chart:
    lines: tuple[Line, ...]
    y_max: float
    start_s: float
    end_s: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not any(line.segments for line in self.lines)

    @property
    def plot(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the plotting area."""
        return PAD_LEFT, PAD_TOP, self.width - PAD_RIGHT, self.height - PAD_BOTTOM


def _nice_max(value: float) -> float:
    """The axis' top: 1, 2 or 5 times a power of ten, at or above ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def chart(
    series: Mapping[str, Sequence[Sample]],
    *,
    start_s: float,
    end_s: float,
    step_s: float,
    y_floor: float = 0.0,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Chart:
    """One line per series over [start_s, end_s]; the y axis from 0 to a round maximum."""
    values = [v for samples in series.values() for _, v in samples if v is not None]
    y_max = _nice_max(max([y_floor, *values]) if values else y_floor)
    left, top, right, bottom = PAD_LEFT, PAD_TOP, width - PAD_RIGHT, height - PAD_BOTTOM
    span = max(end_s - start_s, 1e-9)

    def xy(t: float, v: float) -> str:
        x = left + (right - left) * (t - start_s) / span
        y = bottom - (bottom - top) * min(max(v, 0.0), y_max) / y_max
        return f"{x:.1f},{y:.1f}"

    lines = []
    for index, (label, samples) in enumerate(sorted(series.items())):
        segments: list[str] = []
        current: list[str] = []
        previous_t: float | None = None
        last: float | None = None
        for t, v in sorted(samples, key=lambda s: s[0]):
            if t < start_s or t > end_s:
                continue
            gap = previous_t is not None and t - previous_t > 3 * step_s
            if v is None or gap:
                if len(current) > 1:
                    segments.append(" ".join(current))
                elif current:  # a lone point: a dot-long segment, so it shows
                    segments.append(f"{current[0]} {current[0]}")
                current = []
            if v is not None:
                current.append(xy(t, v))
                last = v
            previous_t = t
        if len(current) > 1:
            segments.append(" ".join(current))
        elif current:
            segments.append(f"{current[0]} {current[0]}")
        lines.append(Line(label, tuple(segments), last, index % 6))
    return Chart(tuple(lines), y_max, start_s, end_s, width, height)
