"""The CLI's words for verdicts, station states and site kinds: they live in plumbing/labels.py.

The collector's board shows the same words, and the collector may not import the
CLI (tests/test_layout.py), so they moved below both; this name is kept for the
CLI's modules.
"""

from __future__ import annotations

from plumbing.labels import (
    KINDS,
    LOCAL_TZ,
    RISK,
    RISK_NONE,
    STATION_STATES,
    VERDICT_STYLE,
    VERDICTS,
    Judged,
    Lang,
    hours,
    label,
    local_time,
    risk_levels,
)

__all__ = [
    "KINDS",
    "LOCAL_TZ",
    "RISK",
    "RISK_NONE",
    "STATION_STATES",
    "VERDICTS",
    "VERDICT_STYLE",
    "Judged",
    "Lang",
    "hours",
    "label",
    "local_time",
    "risk_levels",
]
