"""Province — meeting readiness: a meeting starts in 1–2 hours; which points are not ready, why.

For provincial IT. N of M ready from the ``fleet`` summary (kind ``meeting_point`` by
default); each point's verdict and reasons from its newest ``readiness`` point; link
quality per path against the policy's limits (read from the shipped policy when the
dashboards are built); rehearsals; the meetings planned ahead (``meeting`` points are
stamped at their start, so "next" is a time range into the future).
"""

from __future__ import annotations

from kienco.dashboards.common import (
    KIND,
    OPERATOR,
    PROVINCE,
    RP,
    SITE_FILTERS,
    TIMELINE_POINTS,
    VERDICT_COLOURS,
    Board,
    Built,
    latest,
    steps,
    sum_of,
    summed,
    verdict_mapping,
    where,
)
from kienco.dashboards.influxql import Expect, InfluxQL
from kienco.dashboards.noc import variables
from kienco.dashboards.panels import stat_row, states_over_time, table_of, trend
from rules import load_policy

__all__ = ["build"]

UID = "kienco-province"
VERDICT_NAMES = {
    "ready": "Sẵn sàng",
    "degraded": "Suy giảm",
    "not_ready": "Chưa sẵn sàng",
    "unknown": "Không rõ",
}
FILTERS = (PROVINCE, OPERATOR, KIND)


PATHS_SHOWN = 40  # series a path panel draws; more are unreadable, and slow to fetch


def _path_quality(column: str, aggregate: str = "mean") -> InfluxQL:
    return InfluxQL(
        f'SELECT {aggregate}("{column}") FROM {RP}."link" WHERE {where(*SITE_FILTERS)} '
        f'GROUP BY time($__interval), "site", "path" fill(none) SLIMIT {PATHS_SHOWN}',
        Expect((aggregate,), tags=("site", "path")),
        alias="$tag_site $tag_path",
    )


def build() -> Built:
    limits = load_policy().link_quality
    board = Board(
        uid=UID,
        title="Tỉnh — Sẵn sàng họp trực tuyến",
        description="Cuộc họp bắt đầu sau 1–2 giờ: điểm cầu nào chưa sẵn sàng, vì sao. "
        "Province — meeting readiness: which meeting points are not ready, and why.",
        filename="province-meeting-readiness.json",
        tags=("kienco", "province", "meeting"),
        time_from="now-24h",
        refresh="1m",
        variables=variables(kind_default="meeting_point"),
    )
    board.row("Hiện tại — now")
    board.add(
        stat_row(
            "Điểm cầu sẵn sàng",
            "Số điểm sẵn sàng trên tổng số điểm đã chọn, và số điểm suy giảm, chưa sẵn sàng, "
            "không rõ, lúc cuối khoảng thời gian.",
            "Points ready out of all chosen, and degraded, not ready, unknown, at the end of "
            "the range.",
            {"sites": "Tổng số điểm", **VERDICT_NAMES},
            {"sites": "text", **VERDICT_COLOURS},
        ),
        w=12,
        h=5,
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    sum_of(("sites", *VERDICT_NAMES)),
                    filters=FILTERS,
                    over_time=False,
                ),
                Expect(("sites", *VERDICT_NAMES), single=True),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Sẵn sàng theo tỉnh (N/M)",
            "Theo tỉnh: số điểm sẵn sàng trên tổng số điểm.",
            "Per province: N points ready of M.",
            {"province": "Tỉnh", "ready": "Sẵn sàng", "sites": "Tổng số điểm"},
            sort_by="Sẵn sàng",
        ),
        w=12,
        h=5,
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    sum_of(("ready", "sites")),
                    filters=FILTERS,
                    over_time=False,
                    by=("province",),
                ),
                Expect(("ready", "sites"), tags=("province",), single=True),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Từng điểm: đánh giá và lý do",
            "Đánh giá mới nhất của từng điểm, với lý do; điểm chưa sẵn sàng ở trên.",
            "Each point's newest verdict with its reasons; not-ready points first.",
            {
                "site": "Điểm",
                "name": "Tên",
                "verdict_code": "Đánh giá",
                "reasons_vi": "Lý do",
                "backup_hours": "Giờ dự phòng",
                "independent_paths_up": "Đường độc lập",
                "risk_level": "Cấp độ rủi ro",
            },
            sort_by="Đánh giá",
            descending=True,
            mappings={"verdict_code": verdict_mapping()},
            units={"backup_hours": "h"},
        ),
        w=24,
        h=10,
        queries=[
            InfluxQL(
                'SELECT last("verdict_code") AS "verdict_code", "name", "reasons_vi", '
                '"backup_hours", "independent_paths_up", "risk_level" '
                f'FROM "readiness" WHERE {latest(*SITE_FILTERS)} GROUP BY "site"',
                Expect(
                    ("verdict_code", "name", "reasons_vi", "independent_paths_up", "risk_level"),
                    tags=("site",),
                    single=True,
                ),
                result_format="table",
            )
        ],
    )
    board.row("Theo thời gian — over time")
    board.add(
        trend(
            "Số điểm sẵn sàng theo thời gian",
            "Số điểm theo đánh giá, theo thời gian (xếp chồng: tổng là số điểm).",
            "Points per verdict over time (stacked: the total is the number of points).",
            names=VERDICT_NAMES,
            colours=VERDICT_COLOURS,
            stacked=True,
        ),
        w=12,
        h=8,
        min_interval="1m",
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    sum_of(tuple(VERDICT_NAMES)),
                    filters=FILTERS,
                    over_time=True,
                ),
                Expect(tuple(VERDICT_NAMES)),
                alias="$col",
            )
        ],
    )
    board.add(
        states_over_time(
            "Điểm không sẵn sàng — đánh giá theo thời gian",
            "Các điểm có lúc không sẵn sàng, trong những khoảng đó: đánh giá xấu nhất của mỗi "
            "khoảng. Điểm luôn sẵn sàng không hiện.",
            "The points that were not ready at some time, while they were not: each "
            "interval's worst verdict. Points ready throughout are not drawn.",
            verdict_mapping(),
        ),
        w=12,
        h=8,
        min_interval="30s",
        max_data_points=TIMELINE_POINTS,
        queries=[
            InfluxQL(
                f'SELECT max("verdict_code") FROM {RP}."readiness" '
                f'WHERE {where(*SITE_FILTERS)} AND "verdict_code" > 0 '
                'GROUP BY time($__interval), "site" fill(none)',
                Expect(("max",), tags=("site",)),
                alias="$tag_site",
            )
        ],
    )
    board.row("Chất lượng đường truyền — link quality (giới hạn: chính sách mặc định)")
    board.add(
        trend(
            "Độ trễ (RTT) theo đường",
            f"Độ trễ trung bình từng đường; vạch: giới hạn họp video HD {limits.max_rtt_ms:g} ms.",
            f"Mean RTT per path; dashed line: the HD video limit, {limits.max_rtt_ms:g} ms.",
            unit="ms",
            thresholds=steps("green", (limits.max_rtt_ms, "red")),
        ),
        w=12,
        h=8,
        min_interval="30s",
        queries=[_path_quality("rtt_ms")],
    )
    board.add(
        trend(
            "Độ biến thiên trễ (jitter) theo đường",
            f"Jitter từng đường; vạch: giới hạn {limits.max_jitter_ms:g} ms.",
            f"Jitter per path; dashed line: the limit, {limits.max_jitter_ms:g} ms.",
            unit="ms",
            thresholds=steps("green", (limits.max_jitter_ms, "red")),
        ),
        w=12,
        h=8,
        min_interval="30s",
        queries=[_path_quality("jitter_ms")],
    )
    board.add(
        trend(
            "Mất gói theo đường",
            f"Tỷ lệ mất gói lớn nhất trong mỗi khoảng; vạch: giới hạn {limits.max_loss_pct:g} %.",
            f"Worst packet loss per interval; dashed line: the limit, {limits.max_loss_pct:g} %.",
            unit="percent",
            thresholds=steps("green", (limits.max_loss_pct, "red")),
        ),
        w=12,
        h=8,
        min_interval="30s",
        queries=[_path_quality("loss_pct", "max")],
    )
    down = limits.min_bandwidth_down_mbps or 0.0
    up = limits.min_bandwidth_up_mbps or 0.0
    board.add(
        trend(
            "Băng thông đo được theo đường",
            f"Kết quả đo băng thông (tải xuống, tải lên) của từng đường; cần ít nhất "
            f"{down:g} Mbit/s xuống và {up:g} Mbit/s lên.",
            f"Measured throughput per path (down, up); at least {down:g} Mbit/s down and "
            f"{up:g} Mbit/s up are needed.",
            unit="Mbits",
            thresholds=steps("red", (max(down, up), "green")),
        ),
        w=12,
        h=8,
        min_interval="30s",
        queries=[
            InfluxQL(
                'SELECT last("bandwidth_down_mbps") AS "down", last("bandwidth_up_mbps") AS "up" '
                f'FROM {RP}."link" WHERE {where(*SITE_FILTERS)} '
                f'GROUP BY time($__interval), "site", "path" fill(none) SLIMIT {PATHS_SHOWN}',
                Expect(("down", "up"), tags=("site", "path")),
                alias="$tag_site $tag_path $col",
            )
        ],
    )
    board.row("Diễn tập và lịch họp — rehearsals and meetings")
    board.add(
        table_of(
            "Kết quả diễn tập",
            "Các lần diễn tập trước họp (gọi thử) trong khoảng thời gian, mới nhất trước.",
            "Pre-meeting rehearsals in the range, newest first.",
            {
                "site": "Điểm",
                "meeting": "Cuộc họp",
                "passed": "Đạt",
                "problems": "Số vấn đề",
                "problems_vi": "Vấn đề",
            },
            hidden=(),
        ),
        w=12,
        h=8,
        queries=[
            InfluxQL(
                'SELECT "meeting", "passed", "problems", "problems_vi" FROM "rehearsal" '
                f'WHERE {where(*SITE_FILTERS)} GROUP BY "site" ORDER BY time DESC LIMIT 100',
                Expect(("meeting", "passed", "problems", "problems_vi"), tags=("site",)),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Các cuộc họp sắp tới",
            "Cuộc họp đã lên lịch từ 6 giờ trước đến 14 ngày tới (giờ = giờ bắt đầu), "
            "không phụ thuộc khoảng thời gian đã chọn.",
            "Meetings planned from 6 h ago to 14 days ahead (time = start), whatever range "
            "is chosen.",
            {
                "Time": "Bắt đầu",
                "meeting": "Mã",
                "title": "Cuộc họp",
                "duration_s": "Thời lượng",
                "points": "Số điểm",
                "created_by": "Người tạo",
            },
            sort_by="Bắt đầu",
            units={"duration_s": "s"},
            hidden=(),
        ),
        w=12,
        h=8,
        queries=[
            InfluxQL(
                'SELECT "title", "duration_s", "points", "created_by" FROM "meeting" '
                f"WHERE time >= now() - 6h AND time <= now() + 14d AND {PROVINCE} "
                'GROUP BY "meeting"',
                Expect(("title", "duration_s", "points", "created_by"), tags=("meeting",)),
                result_format="table",
            )
        ],
    )
    return board.build()
