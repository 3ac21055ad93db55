"""kienco itself: is every collector shard doing its job, are the agents reporting, is
anything piling up at the edge?

For whoever runs kienco: first each collector shard side by side, from the health it
writes of itself (kienco/dashboards/shards.py); then sites reporting per province, and
reporting and silent overall (from the ``fleet`` summary), each agent's outbox backlog,
clock offset and MQTT connection (its birth message or Last Will); then the boxes whose
clock is not kept, per province and which (kienco/dashboards/clocks.py).
"""

from __future__ import annotations

from kienco.dashboards.clocks import add_clocks
from kienco.dashboards.common import (
    KIND,
    OPERATOR,
    PROVINCE,
    SITE_FILTERS,
    Board,
    Built,
    latest,
    summed,
    where,
)
from kienco.dashboards.influxql import Expect, InfluxQL
from kienco.dashboards.noc import WORST_SHOWN, variables
from kienco.dashboards.panels import table_of, trend
from kienco.dashboards.shards import add_shards, collector_variable

__all__ = ["build"]

UID = "kienco-system"


def build() -> Built:
    board = Board(
        uid=UID,
        title="kienco — Hệ thống giám sát",
        description="Từng collector (shard) có làm đúng việc không; các agent có đang báo "
        "cáo không, có gì tồn đọng ở biên không. kienco itself: is every collector shard "
        "doing its job, are the agents reporting, is anything piling up at the edge?",
        filename="kienco-system.json",
        tags=("kienco", "system"),
        time_from="now-6h",
        refresh="1m",
        variables=[*variables(), collector_variable()],
    )
    add_shards(board)
    board.row("Agent — các điểm báo cáo")
    board.add(
        trend(
            "Điểm đang báo cáo, theo tỉnh",
            "Số điểm có báo cáo mới (không im lặng) theo tỉnh, theo thời gian. Một tỉnh tụt "
            "xuống: mất mạng diện rộng, hoặc broker/collector của tỉnh có vấn đề.",
            "Sites reporting (not silent) per province over time. A province dropping: a "
            "wide outage, or its broker or collector.",
        ),
        w=12,
        h=8,
        min_interval="1m",
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    {"reporting": 'sum("sites") - sum("unknown")'},
                    filters=(PROVINCE, OPERATOR, KIND),
                    over_time=True,
                    by=("province",),
                ),
                Expect(("reporting",), tags=("province",)),
                alias="$tag_province",
            )
        ],
    )
    board.add(
        trend(
            "Điểm đang báo cáo và im lặng",
            "Số điểm được giám sát và số điểm không rõ (im lặng, mất kết nối) theo thời gian.",
            "Sites watched, and sites unknown (silent or offline), over time.",
            names={"sites": "Tổng số điểm", "unknown": "Không rõ (im lặng)"},
            colours={"sites": "green", "unknown": "#8e8e8e"},
        ),
        w=12,
        h=8,
        min_interval="1m",
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    {"sites": 'sum("sites")', "unknown": 'sum("unknown")'},
                    filters=(PROVINCE, OPERATOR, KIND),
                    over_time=True,
                ),
                Expect(("sites", "unknown")),
                alias="$col",
            )
        ],
    )
    board.add(
        table_of(
            f"Agent: hộp thư đi, đồng hồ, máy — {WORST_SHOWN} agent tồn đọng nhiều nhất",
            f"{WORST_SHOWN} agent có nhiều báo cáo chờ gửi (outbox) nhất trong 15 phút cuối: "
            "số chờ gửi và đã phải bỏ, độ lệch đồng hồ, CPU, ổ đĩa, nhiệt độ của báo cáo đó. "
            "Nhiều nhất trước.",
            f"The {WORST_SHOWN} agents with the most reports waiting in their outbox in the "
            "last 15 min: waiting and dropped, clock offset, CPU, disk, temperature of that "
            "report. Largest backlog first.",
            {
                "site": "Điểm",
                "outbox_depth": "Chờ gửi",
                "outbox_dropped_total": "Đã bỏ",
                "clock_offset_ms": "Lệch đồng hồ",
                "cpu_pct": "CPU",
                "disk_pct": "Ổ đĩa",
                "temperature_c": "Nhiệt độ",
            },
            sort_by="Chờ gửi",
            descending=True,
            units={
                "clock_offset_ms": "ms",
                "cpu_pct": "percent",
                "disk_pct": "percent",
                "temperature_c": "celsius",
            },
        ),
        w=14,
        h=9,
        queries=[
            InfluxQL(
                # TOP over the raw points, not last() per agent: one iterator per site at
                # ~100 000 sites costs InfluxDB 1.6 5.5 s (benchmarks/influx_series.py)
                f'SELECT TOP("outbox_depth", "site", {WORST_SHOWN}) AS "outbox_depth", '
                '"outbox_dropped_total", "clock_offset_ms", "cpu_pct", "disk_pct", '
                f'"temperature_c" FROM "host" WHERE {latest(*SITE_FILTERS)}',
                Expect(("outbox_depth", "site", "cpu_pct", "disk_pct")),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Kết nối MQTT của agent",
            "Tin nhắn trạng thái cuối của từng agent: trực tuyến (birth) hay mất kết nối "
            "(Last Will của broker).",
            "Each agent's last state message: online (birth) or offline (the broker's Last Will).",
            {"site": "Điểm", "online": "Trực tuyến"},
            sort_by="Trực tuyến",
        ),
        w=10,
        h=9,
        queries=[
            InfluxQL(
                'SELECT last("online") AS "online" FROM "agent_state" '
                f'WHERE {where(*SITE_FILTERS)} GROUP BY "site"',
                Expect(("online",), tags=("site",), single=True),
                result_format="table",
            )
        ],
    )
    add_clocks(board)
    return board.build()
