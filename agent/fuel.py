"""Generator fuel: what the site knows and the controller does not say, filled at the edge.

A diesel genset burns less per hour at part load, but not proportionally less:
published consumption charts of standby gensets (kW-class, 1500 rpm) put it near
35 % of the full-load rate at 1/4 load, 55 % at 1/2, 78 % at 3/4 and 100 % at
full load. Interpolating that curve turns a site's full-load burn rate into the
rate at the current load, which is what decides whether the station survives
day two (DOMAIN.md: "Generator autonomy = fuel ÷ burn rate at the current load").
"""

from __future__ import annotations

from bisect import bisect_left

# (load fraction, fraction of the full-load burn rate); 0 load still idles the engine.
PART_LOAD_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.18),
    (0.25, 0.35),
    (0.5, 0.55),
    (0.75, 0.78),
    (1.0, 1.0),
    (1.1, 1.12),  # overload: a little above rated
)


def burn_at_load(full_load_l_per_h: float, load_pct: float) -> float:
    """Litres per hour at ``load_pct`` of rating, from the full-load rate."""
    load = min(max(load_pct / 100.0, 0.0), PART_LOAD_CURVE[-1][0])
    loads = [point[0] for point in PART_LOAD_CURVE]
    i = bisect_left(loads, load)
    if loads[i] == load:
        return full_load_l_per_h * PART_LOAD_CURVE[i][1]
    (x0, y0), (x1, y1) = PART_LOAD_CURVE[i - 1], PART_LOAD_CURVE[i]
    return full_load_l_per_h * (y0 + (y1 - y0) * (load - x0) / (x1 - x0))
