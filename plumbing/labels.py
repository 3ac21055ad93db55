"""Words for verdicts, station states and site kinds, in Vietnamese and English.

The CLI and the board (collector/board/) show the same words. Reasons carry their own
texts (rules/texts.py); these are the column values around them.
Times are stored in UTC and shown in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

Lang = Literal["vi", "en"]
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

VERDICTS: dict[str, tuple[str, str]] = {
    "ready": ("sẵn sàng", "ready"),
    "degraded": ("suy giảm", "degraded"),
    "not_ready": ("chưa sẵn sàng", "not ready"),
    "unknown": ("không rõ", "unknown"),
}
STATION_STATES: dict[str, tuple[str, str]] = {
    "up_commercial": ("điện lưới", "on mains"),
    "up_generator": ("máy phát", "on generator"),
    "up_battery": ("ắc quy", "on battery"),
    "down_power": ("mất nguồn", "down: power"),
    "down_transport": ("mất truyền dẫn", "down: transport"),
    "down_damage": ("hư hỏng", "down: damage"),
    "unknown": ("không rõ", "unknown"),
}
KINDS: dict[str, tuple[str, str]] = {
    "station": ("trạm", "station"),
    "power_room": ("phòng nguồn", "power room"),
    "meeting_point": ("điểm cầu", "meeting point"),
}
VERDICT_STYLE = {
    "ready": "green",
    "degraded": "yellow",
    "not_ready": "bold red",
    "unknown": "magenta",
}


# Decision 18/2021/QĐ-TTg: levels 1–5; 0 is kienco's "none declared" (baseline thresholds).
RISK = {"vi": "cấp độ rủi ro thiên tai", "en": "disaster risk level"}
RISK_NONE = {"vi": "0 (chưa công bố)", "en": "0 (none declared)"}


class Judged(Protocol):
    """What ``risk_levels`` reads of a verdict (``contract.wire.Status`` has both)."""

    @property
    def province(self) -> str: ...
    @property
    def risk_level(self) -> int: ...


def risk_levels(statuses: Iterable[Judged], lang: Lang) -> str:
    """The risk level(s) the verdicts were judged under, per province.

    "disaster risk level 3" for one province; "disaster risk level: hp 3; qn 0 (none
    declared)" for several; a province whose sites are not all judged at the same
    level yet (a level just changed) lists each: "hp 2, 3".
    """
    levels: dict[str, set[int]] = {}
    for status in statuses:
        levels.setdefault(status.province, set()).add(status.risk_level)

    def shown(province: str) -> str:
        return ", ".join(
            RISK_NONE[lang] if level == 0 else str(level) for level in sorted(levels[province])
        )

    if not levels:
        return f"{RISK[lang]} —"
    if len(levels) == 1:
        (only,) = levels
        return f"{RISK[lang]} {shown(only)}"
    return f"{RISK[lang]}: " + "; ".join(f"{p} {shown(p)}" for p in sorted(levels))


def label(table: dict[str, tuple[str, str]], key: str | None, lang: Lang) -> str:
    if key is None:
        return "—"
    vi, en = table.get(key, (key, key))
    return vi if lang == "vi" else en


def local_time(at: datetime, fmt: str = "%d/%m %H:%M") -> str:
    """A UTC time as people in Vietnam read it."""
    return at.astimezone(LOCAL_TZ).strftime(fmt)


def hours(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} h" if value >= 10 else f"{value:.1f} h"
