"""The system dashboard's clock panels: which edge boxes do not keep time, per province
and by name, so a technician can give them a time source.

After a typhoon, boxes reboot with no RTC and no NTP in reach: their readings are stamped
by a clock that is not kept (collector/clocks.py says when a box counts). The counts come
from the ``fleet`` summary (its ``clock_*`` fields), the boxes from the collector's
per-minute ``clock_wrong`` list. Measured at 103 400 sites (docs/capacity.md): the counts
0.02 s and the list 0.01–0.03 s at "All", where the newest ``clock_synced`` of every
site's ``host`` series took 3.5–4.6 s and its raw points with ``clock_synced = false``
4.4–5.2 s.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as model

from collector.clocks import CLOCK_COUNTS
from kienco.dashboards.common import (
    KIND,
    OPERATOR,
    PROVINCE,
    SITE_FILTERS,
    Board,
    latest,
    sum_of,
    summed,
)
from kienco.dashboards.common import steps as levels
from kienco.dashboards.influxql import Expect, InfluxQL
from kienco.dashboards.noc import WORST_SHOWN
from kienco.dashboards.panels import table_of

__all__ = ["CLOCK_NAMES", "add_clocks"]

CLOCK_NAMES = {
    "clock_wrong": "Không giữ giờ",
    "clock_unsynced": "Hộp báo chưa đồng bộ",
    "clock_behind": "Chậm (báo cáo cũ)",
    "clock_corrected": "Chậm, đã sửa giờ",
    "clock_ahead": "Nhanh",
    "clock_ahead_refused": "Nhanh, báo cáo bị từ chối",
}
REASONS: dict[str, tuple[str, str]] = {  # the rules' finding → words, colour
    "clock_behind": ("chậm (báo cáo cũ)", "orange"),
    "clock_corrected": ("chậm, đã sửa giờ", "orange"),
    "clock_ahead": ("nhanh", "yellow"),
    "clock_ahead_refused": ("nhanh, báo cáo bị từ chối", "red"),
}


def _reasons() -> model.ValueMap:
    return model.ValueMap(
        options={
            code: model.ValueMappingResult(text=text, color=colour, index=index)
            for index, (code, (text, colour)) in enumerate(REASONS.items())
        }
    )


def _synced() -> model.ValueMap:
    return model.ValueMap(
        options={
            "false": model.ValueMappingResult(text="chưa đồng bộ", color="red", index=0),
            "true": model.ValueMappingResult(text="đồng bộ", color="green", index=1),
        }
    )


def add_clocks(board: Board) -> None:
    """A row: boxes not keeping time per province (``fleet``), and which (``clock_wrong``)."""
    board.row("Đồng hồ của các hộp — boxes' clocks")
    board.add(
        table_of(
            "Hộp không giữ đúng giờ, theo tỉnh",
            "Số hộp (agent) có đồng hồ không được giữ, theo tỉnh, lúc cuối khoảng thời gian: "
            "hộp tự báo đồng hồ chưa đồng bộ với nguồn thời gian (như timedatectl), hoặc quy "
            "tắc thấy đồng hồ chậm (báo cáo đến đúng nhịp nhưng đều cũ), đã chứng minh chậm "
            "và sửa giờ, hoặc nhanh (kể cả nhanh đến mức báo cáo bị từ chối). Một hộp có thể "
            "ở nhiều cột; 'Không giữ giờ' đếm mỗi hộp "
            "một lần. Agent cũ không báo trạng thái đồng hồ thì không được đếm là chưa đồng "
            "bộ; hộp im lặng không được đếm. Từ bản tóm tắt fleet mỗi phút (nhanh cả khi "
            "chọn tất cả các tỉnh).",
            "Boxes whose clock is not kept, per province, at the end of the range: the box "
            "says its clock is not synchronised to a time source (as timedatectl judges), "
            "or the rules find it behind (reports on time, each as old), proven behind and "
            "its times corrected, or ahead (even so far ahead its reports are refused). A "
            "box may be in several columns; 'not kept' "
            "counts each once. Older agents that do not say are not counted as unsynchronised, "
            "silent boxes not at all. From the per-minute fleet summary (fast for the whole "
            "country).",
            {"province": "Tỉnh", **CLOCK_NAMES, "sites": "Tổng số điểm"},
            sort_by=CLOCK_NAMES["clock_wrong"],
            descending=True,
            thresholds={"clock_wrong": levels("green", (1, "orange"))},
        ),
        w=10,
        h=9,
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    sum_of((*CLOCK_COUNTS, "sites")),
                    filters=(PROVINCE, OPERATOR, KIND),
                    over_time=False,
                    by=("province",),
                ),
                Expect((*CLOCK_COUNTS, "sites"), tags=("province",), single=True),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            f"Hộp không giữ đúng giờ — {WORST_SHOWN} hộp lệch nhiều nhất",
            f"{WORST_SHOWN} hộp có đồng hồ không được giữ trong 15 phút cuối (danh sách "
            "collector ghi mỗi phút), lệch nhiều nhất trước: hộp có báo đồng bộ không, quy "
            "tắc thấy gì, chậm hay nhanh bao nhiêu (trống: chưa biết, chỉ biết là không được "
            "giữ). Kỹ thuật viên cho hộp một nguồn thời gian tới được (NTP, chrony, "
            "systemd-timesyncd). Hộp đã giữ giờ trở lại vẫn hiện đến 15 phút.",
            f"The {WORST_SHOWN} boxes whose clock was not kept in the last 15 min (the list "
            "the collector writes each minute), furthest off first: whether the box says it "
            "is synchronised, what the rules found, how far behind or ahead (empty: not "
            "known, only that it is not kept). A technician gives the box a time source it "
            "can reach (NTP, chrony, systemd-timesyncd). A box keeping time again shows for "
            "up to 15 min.",
            {
                "site": "Điểm",
                "name": "Tên",
                "synced": "Hộp báo",
                "reason": "Quy tắc thấy",
                "off_s": "Lệch",
                "behind_s": "Chậm",
                "ahead_s": "Nhanh",
            },
            sort_by="Lệch",
            descending=True,
            mappings={"synced": _synced(), "reason": _reasons()},
            units={"off_s": "s", "behind_s": "s", "ahead_s": "s"},
        ),
        w=14,
        h=9,
        queries=[
            InfluxQL(
                # The collector's per-minute list of boxes not keeping time, not the raw
                # host points: 0.01-0.03 s at ~100 000 sites, where last("clock_synced")
                # per site over host took 3.5-4.6 s (benchmarks/influx_series.py,
                # docs/capacity.md)
                f'SELECT TOP("off_s", "site", {WORST_SHOWN}) AS "off_s", "name", "synced", '
                f'"reason", "behind_s", "ahead_s" FROM "clock_wrong" '
                f"WHERE {latest(*SITE_FILTERS)}",
                Expect(("off_s", "site", "synced")),
                result_format="table",
            )
        ],
    )
