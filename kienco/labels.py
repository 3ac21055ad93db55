"""Words the CLI shows for verdicts, station states and site kinds, in Vietnamese and English.

Reasons carry their own texts (rules/texts.py); these are the column values around them.
Times are stored in UTC and shown in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
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
