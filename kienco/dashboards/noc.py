"""NOC — station health: which stations are on battery, how long until dark, which lost a path.

For the NOC engineers of VNPT and Viettel. Counts come from the collector's ``fleet``
summary (so a silent station still counts, as unknown); the sites off mains, silent or
not ready from its per-minute ``attention`` list (a few thousand series in a storm, not
one per site: the whole country answers in under a second); paths and fuel from the
agents' ``link`` and ``power`` points, the worst 100 sites of each (TOP/BOTTOM: one row
per path or generator is hundreds of thousands of rows nationally).
"""

from __future__ import annotations

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models.dashboard import VariableModel

from kienco.dashboards.common import (
    KIND,
    OPERATOR,
    PROVINCE,
    RP,
    SITE_FILTERS,
    STATE_COLOURS,
    TIMELINE_POINTS,
    Board,
    Built,
    latest,
    rp_variable,
    state_mapping,
    steps,
    sum_of,
    summed,
    tag_variable,
    where,
)
from kienco.dashboards.influxql import Expect, InfluxQL
from kienco.dashboards.macros import ALL
from kienco.dashboards.panels import map_of_sites, stat_row, states_over_time, table_of, trend
from kienco.labels import STATION_STATES

__all__ = ["build", "variables"]

UID = "kienco-noc"
STATES = (
    "up_commercial",
    "up_generator",
    "up_battery",
    "down_power",
    "down_transport",
    "down_damage",
    "state_unknown",
)
STATE_NAMES = {
    state: STATION_STATES["unknown" if state == "state_unknown" else state][0].capitalize()
    for state in STATES
}
STATE_NAME_COLOURS = {
    state: STATE_COLOURS["unknown" if state == "state_unknown" else state] for state in STATES
}
FLEET_FILTERS = (PROVINCE, OPERATOR, KIND)
WORST_SHOWN = 100  # rows of a "worst first" table: a NOC reads the top of it
MEDIA_NAMES = {
    "fibre": "Cáp quang",
    "microwave": "Vi ba",
    "vsat": "VSAT",
    "cellular": "Di động",
    "copper": "Cáp đồng",
    "other": "Khác",
}


def variables(*, kind_default: str = ALL) -> list[cogbuilder.Builder[VariableModel]]:
    """province → operator → kind → site, each narrowing the next; the data the time
    series read (raw or 5-minute trends).

    Province, operator and kind are the tags of the ``fleet`` summary (a few hundred
    series, one per province, kind and operator), not of ``readiness`` (one series per
    site: ~100 000 nationally, seconds for InfluxDB 1.6 to list); only the sites come
    from ``readiness``."""
    return [
        tag_variable(
            "province",
            "Tỉnh",
            'SHOW TAG VALUES FROM "fleet" WITH KEY = "province"',
            "Tỉnh/thành phố (mã). Province code.",
        ),
        tag_variable(
            "operator",
            "Nhà mạng",
            f'SHOW TAG VALUES FROM "fleet" WITH KEY = "operator" WHERE {PROVINCE}',
            "Doanh nghiệp viễn thông quản lý trạm. Operator (carrier) of the site.",
        ),
        tag_variable(
            "kind",
            "Loại điểm",
            f'SHOW TAG VALUES FROM "fleet" WITH KEY = "kind" WHERE {PROVINCE}',
            "trạm (station), phòng nguồn (power_room), điểm cầu (meeting_point).",
            default=kind_default,
        ),
        tag_variable(
            "site",
            "Trạm / điểm",
            f'SHOW TAG VALUES FROM "readiness" WITH KEY = "site" WHERE {PROVINCE} AND {OPERATOR} '
            f"AND {KIND}",
            "Các điểm thuộc tỉnh, nhà mạng và loại đã chọn; 'All' là tất cả các điểm đó. "
            "The sites under the province, operator and kind chosen.",
        ),
        rp_variable(),
    ]


def build() -> Built:
    board = Board(
        uid=UID,
        title="NOC — Sức khỏe trạm",
        description="Trạm nào đang chạy ắc quy, bao lâu nữa thì tắt, trạm nào mất đường truyền. "
        "NOC — station health: which stations are on battery, how long until dark, which "
        "lost a path.",
        filename="noc-station-health.json",
        tags=("kienco", "noc"),
        time_from="now-6h",
        refresh="1m",
        variables=variables(),
    )
    board.row("Hiện tại — now")
    board.add(
        stat_row(
            "Trạm theo trạng thái nguồn và nguyên nhân",
            "Số trạm theo trạng thái lúc cuối khoảng thời gian: điện lưới, máy phát, ắc quy; "
            "mất nguồn, mất truyền dẫn, hư hỏng; không rõ (mất liên lạc).",
            "Sites by power state and cause at the end of the range, from the collector's "
            "fleet summary (a silent site counts as unknown).",
            STATE_NAMES,
            STATE_NAME_COLOURS,
        ),
        w=24,
        h=4,
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    sum_of(STATES),
                    filters=FLEET_FILTERS,
                    over_time=False,
                ),
                Expect(STATES, single=True),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Thời gian còn lại đến khi tắt — ngắn nhất trước",
            "Các trạm đã mất điện lưới: giờ còn lại của ắc quy và máy phát (nhiên liệu), "
            "trạm sắp tắt nhất ở trên. Theo danh sách trạm cần chú ý mà collector ghi mỗi "
            "phút (nhanh cả khi chọn tất cả các tỉnh).",
            "Sites off mains: time until dark (battery + generator fuel), shortest first, "
            "from the collector's per-minute list of sites needing attention (fast for the "
            "whole country too).",
            {
                "site": "Trạm",
                "name": "Tên",
                "province": "Tỉnh",
                "operator": "Nhà mạng",
                "state_code": "Trạng thái",
                "dark_in_s": "Còn lại đến khi tắt",
                "backup_hours": "Giờ dự phòng",
            },
            sort_by="Còn lại đến khi tắt",
            mappings={"state_code": state_mapping()},
            units={"dark_in_s": "s", "backup_hours": "h"},
            hidden=("Time", "listed"),
            drop_empty=("dark_in_s", "listed"),
        ),
        w=14,
        h=10,
        queries=[
            InfluxQL(
                'SELECT last("state_code") AS "state_code", "dark_in_s", "backup_hours", "name", '
                f'"listed" FROM "attention" WHERE {latest(*SITE_FILTERS)} '
                'GROUP BY "site", "province", "operator"',
                Expect(
                    ("state_code", "dark_in_s", "backup_hours", "name", "listed"),
                    tags=("site", "province", "operator"),
                    single=True,
                    sparse=("dark_in_s",),
                ),
                result_format="table",
            )
        ],
    )
    board.add(
        map_of_sites(
            "Bản đồ trạm cần chú ý — màu theo giờ dự phòng",
            "Mỗi chấm là một trạm mất điện lưới, mất liên lạc hoặc chưa sẵn sàng (danh sách "
            "collector ghi mỗi phút); màu theo số giờ dự phòng (khi đã mất điện lưới, đó là "
            "thời gian đến khi tắt): đỏ < 4 giờ, cam < 8 giờ, xanh từ 8 giờ.",
            "Sites off mains, silent or not ready (the collector's per-minute list), "
            "coloured by hours of backup (time to dark once off mains): red < 4 h, "
            "orange < 8 h, green from 8 h.",
            "backup_hours",
            steps("red", (4, "orange"), (8, "green")),
            drop_empty=("listed",),
        ),
        w=10,
        h=10,
        queries=[
            InfluxQL(
                'SELECT last("state_code") AS "state_code", "backup_hours", "dark_in_s", '
                '"latitude", "longitude", "name", "listed" FROM "attention" '
                f'WHERE {latest(*SITE_FILTERS)} GROUP BY "site"',
                Expect(
                    ("state_code", "backup_hours", "latitude", "longitude", "name", "listed"),
                    tags=("site",),
                    single=True,
                ),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Theo tỉnh và nhà mạng",
            "Số trạm theo trạng thái nguồn, theo tỉnh và nhà mạng, lúc cuối khoảng thời gian.",
            "Sites by power state per province and operator, at the end of the range.",
            {"province": "Tỉnh", "operator": "Nhà mạng", "sites": "Tổng", **STATE_NAMES},
        ),
        w=24,
        h=8,
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    sum_of(("sites", *STATES)),
                    filters=FLEET_FILTERS,
                    over_time=False,
                    by=("province", "operator"),
                ),
                Expect(("sites", *STATES), tags=("province", "operator"), single=True),
                result_format="table",
            )
        ],
    )
    board.row("Theo thời gian — over time")
    board.add(
        trend(
            "Trạm chạy ắc quy, máy phát, mất nguồn",
            "Số trạm đang chạy ắc quy, chạy máy phát, tắt (mất nguồn hoặc hư hỏng) và mất "
            "truyền dẫn, theo thời gian.",
            "Sites on battery, on generator, dark (power or damage) and cut off, over time.",
            names={
                "up_battery": "Ắc quy",
                "up_generator": "Máy phát",
                "dark": "Tắt (mất nguồn, hư hỏng)",
                "down_transport": "Mất truyền dẫn",
            },
            colours={
                "up_battery": "orange",
                "up_generator": "blue",
                "dark": "red",
                "down_transport": "purple",
            },
        ),
        w=12,
        h=8,
        min_interval="1m",
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    {
                        "up_battery": 'sum("up_battery")',
                        "up_generator": 'sum("up_generator")',
                        "dark": 'sum("down_power") + sum("down_damage")',
                        "down_transport": 'sum("down_transport")',
                    },
                    filters=FLEET_FILTERS,
                    over_time=True,
                ),
                Expect(("up_battery", "up_generator", "dark", "down_transport")),
                alias="$col",
            )
        ],
    )
    media_up = {media: f'sum("paths_{media}_up")' for media in MEDIA_NAMES}
    board.add(
        trend(
            "Đường truyền đang hoạt động theo loại",
            "Số đường truyền đang hoạt động, theo loại (cáp quang, vi ba, VSAT, di động…). "
            "Đường của trạm mất liên lạc không được tính là hoạt động.",
            "Paths up per medium over time; a silent site's paths do not count as up.",
            names=MEDIA_NAMES,
        ),
        w=12,
        h=8,
        min_interval="1m",
        queries=[
            InfluxQL(
                summed("fleet", media_up, filters=FLEET_FILTERS, over_time=True),
                Expect(tuple(MEDIA_NAMES)),
                alias="$col",
            )
        ],
    )
    board.add(
        states_over_time(
            "Trạm rời điện lưới — trạng thái theo thời gian",
            "Các trạm đã chọn có lúc rời điện lưới, trong những khoảng đó: trạng thái xấu nhất "
            "của mỗi khoảng (máy phát, ắc quy, mất nguồn…), theo danh sách trạm cần chú ý "
            "collector ghi mỗi phút. Trạm luôn có điện lưới không hiện.",
            "The chosen sites that left mains, while they did: each interval's worst state "
            "(generator, battery, down…), from the collector's per-minute list of sites "
            "needing attention. Sites on mains throughout are not drawn.",
            state_mapping(),
        ),
        w=24,
        h=10,
        min_interval="1m",
        max_data_points=TIMELINE_POINTS,
        queries=[
            InfluxQL(
                f'SELECT max("state_code") FROM {RP}."attention" '
                f'WHERE {where(*SITE_FILTERS)} AND "state_code" > 0 '
                'GROUP BY time($__interval), "site" fill(none)',
                Expect(("max",), tags=("site",)),
                alias="$tag_site",
            )
        ],
    )
    board.row("Đường truyền và nhiên liệu — paths and fuel")
    board.add(
        table_of(
            f"Đường truyền kém nhất — {WORST_SHOWN} trạm mất gói nhiều nhất",
            f"{WORST_SHOWN} trạm đã chọn có đường truyền mất gói nhiều nhất trong 15 phút cuối "
            "(đường mất hẳn: 100 %; collector ghi mỗi phút các trạm đang mất gói): đường đó, "
            "hoạt động hay không và độ trễ của lần đo đó. Mọi đường của một trạm: trang của "
            "trạm trên bảng điều khiển.",
            f"The {WORST_SHOWN} chosen sites whose worst path lost the most in the last 15 min "
            "(a path down: 100 %; the collector lists the sites losing packets each minute): "
            "that path, up or not and RTT of that measurement. Every path of one site: its "
            "page on the board.",
            {
                "site": "Trạm",
                "path": "Đường",
                "media": "Loại",
                "provider": "Nhà cung cấp",
                "up": "Hoạt động",
                "rtt_ms": "Độ trễ",
                "loss_pct": "Mất gói",
            },
            sort_by="Mất gói",
            descending=True,
            units={"rtt_ms": "ms", "loss_pct": "percent"},
        ),
        w=12,
        h=9,
        queries=[
            InfluxQL(
                # The collector's per-minute list of sites losing packets, each with its
                # worst path (collector/history.py link_worst), not the raw link points:
                # TOP over ~300 000 link series costs InfluxDB 1.6 4-7 s at "All", last()
                # per path 14-18 s (benchmarks/influx_series.py, docs/capacity.md)
                f'SELECT TOP("loss_pct", "site", {WORST_SHOWN}) AS "loss_pct", "path", "up", '
                f'"rtt_ms", "media", "provider" FROM "link_worst" WHERE {latest(*SITE_FILTERS)}',
                Expect(("loss_pct", "site", "path", "up", "media")),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            f"Nhiên liệu máy phát — {WORST_SHOWN} trạm thấp nhất",
            f"{WORST_SHOWN} trạm đã chọn có máy phát mức nhiên liệu thấp nhất trong 15 phút "
            "cuối (máy phát thấp nhất của mỗi trạm), thấp nhất ở trên.",
            f"The {WORST_SHOWN} chosen sites with the lowest generator fuel level in the last "
            "15 min (each site's lowest generator), lowest first.",
            {
                "site": "Trạm",
                "device": "Máy phát",
                "fuel_pct": "Nhiên liệu",
                "fuel_l": "Lít",
                "generator_running": "Đang chạy",
            },
            sort_by="Nhiên liệu",
            units={"fuel_pct": "percent", "fuel_l": "litre"},
        ),
        w=12,
        h=9,
        queries=[
            InfluxQL(
                f'SELECT BOTTOM("fuel_pct", "site", {WORST_SHOWN}) AS "fuel_pct", "device", '
                f'"fuel_l", "generator_running" FROM "power" WHERE {latest(*SITE_FILTERS)}',
                Expect(("fuel_pct", "site", "device", "fuel_l", "generator_running")),
                result_format="table",
            )
        ],
    )
    board.add(
        trend(
            "Mức nhiên liệu theo thời gian",
            "Mức nhiên liệu (%) thấp nhất và trung bình của các máy phát, theo tỉnh, nhà mạng "
            "và loại đã chọn (tổng hợp của collector mỗi phút); từng máy phát: bảng bên trên.",
            "Lowest and mean fuel level (%) of the generators under the chosen province, "
            "operator and kind (the collector's per-minute summary); each one: the table above.",
            unit="percent",
            names={"min": "Thấp nhất", "mean": "Trung bình"},
            thresholds=steps("red", (25, "orange"), (50, "green")),
        ),
        w=24,
        h=8,
        min_interval="30s",
        queries=[
            InfluxQL(
                summed(
                    "fleet",
                    {
                        "min": 'min("fuel_pct_min")',
                        "mean": 'sum("fuel_pct_sum") / sum("generators")',
                    },
                    filters=FLEET_FILTERS,
                    over_time=True,
                    ratios=("min", "mean"),
                ),
                Expect(("min", "mean")),
                alias="$col",
            )
        ],
    )
    return board.build()
