"""Ministry — hardened-station compliance: does every area have its compliant hardened stations?

From the collector's periodic ``compliance`` (per area) and ``compliance_station``
(per declared hardened station) points, which it writes when an inventory is loaded:
declared, compliant, not compliant by failed criterion, missing, the trend, and the
carriers present per area. There is no site-kind variable here: compliance is about
stations only.
"""

from __future__ import annotations

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models.dashboard import VariableModel

from collector.history import COMPLIANCE_CRITERIA, COMPLIANCE_EVERY_S
from kienco.dashboards.common import (
    OPERATOR,
    PROVINCE,
    SITE,
    Board,
    Built,
    compliance_mapping,
    latest,
    rp_variable,
    sum_of,
    summed,
    tag_variable,
)
from kienco.dashboards.influxql import Expect, InfluxQL
from kienco.dashboards.panels import stat_row, table_of, trend

__all__ = ["build"]

UID = "kienco-ministry"
# The newest compliance summary is at most 5 min old: look back three periods.
COMPLIANCE_WINDOW = "15m"
AREA = '"area" =~ /^$area$/'
COUNTS = {
    "declared": "Khai báo kiên cố",
    "compliant": "Đạt chuẩn",
    "non_compliant": "Không đạt",
    "missing": "Còn thiếu",
    "never_reported": "Chưa từng báo cáo",
}
COUNT_COLOURS = {
    "declared": "text",
    "compliant": "green",
    "non_compliant": "red",
    "missing": "orange",
    "never_reported": "#8e8e8e",
}
CRITERIA = {
    "never_reported": "Chưa từng báo cáo",
    "silent": "Mất liên lạc",
    "meta_missing": "Thiếu mô tả trạm",
    "not_declared_hardened": "Agent không khai báo kiên cố",
    "no_generator": "Không có máy phát",
    "generator_autonomy_unknown": "Không rõ giờ chạy máy phát",
    "generator_autonomy_short": "Máy phát không đủ giờ",
    "generator_not_started": "Máy phát không khởi động",
    "no_fibre_path": "Không có cáp quang",
    "no_second_independent_path": "Thiếu đường độc lập thứ hai",
}
FAILED = {f"failed_{code}": CRITERIA.get(code, code) for code in COMPLIANCE_CRITERIA}


def _variables() -> list[cogbuilder.Builder[VariableModel]]:
    return [
        tag_variable(
            "province",
            "Tỉnh",
            'SHOW TAG VALUES FROM "compliance" WITH KEY = "province"',
            "Tỉnh/thành phố (mã). Province code.",
        ),
        tag_variable(
            "area",
            "Khu vực",
            f'SHOW TAG VALUES FROM "compliance" WITH KEY = "area" WHERE {PROVINCE}',
            "Xã/phường (đơn vị hành chính) theo danh mục. The inventory's area.",
        ),
        tag_variable(
            "operator",
            "Nhà mạng",
            'SHOW TAG VALUES FROM "compliance_station" WITH KEY = "operator" '
            f"WHERE {PROVINCE} AND {AREA}",
            "Nhà mạng của trạm kiên cố. Operator of the hardened station.",
        ),
        tag_variable(
            "site",
            "Trạm",
            'SHOW TAG VALUES FROM "compliance_station" WITH KEY = "site" '
            f"WHERE {PROVINCE} AND {AREA} AND {OPERATOR}",
            "Trạm kiên cố thuộc khu vực và nhà mạng đã chọn. Hardened stations chosen.",
        ),
        rp_variable(),
    ]


def build() -> Built:
    board = Board(
        uid=UID,
        title="Bộ — Trạm kiên cố đạt chuẩn",
        description="Mỗi khu vực có đủ trạm kiên cố đạt chuẩn không, trạm nào không đạt và vì "
        "sao. Ministry — hardened-station compliance per area.",
        filename="ministry-hardened-compliance.json",
        tags=("kienco", "ministry", "compliance"),
        time_from="now-7d",
        refresh="5m",
        variables=_variables(),
    )
    board.row("Hiện tại — now")
    board.add(
        stat_row(
            "Trạm kiên cố",
            "Tổng các khu vực đã chọn: khai báo, đạt chuẩn, không đạt, còn thiếu (so với số "
            "trạm yêu cầu mỗi khu vực), chưa từng báo cáo.",
            "Over the chosen areas: declared, compliant, not compliant, missing (against the "
            "number required per area), never reported.",
            COUNTS,
            COUNT_COLOURS,
        ),
        w=24,
        h=4,
        queries=[
            InfluxQL(
                summed(
                    "compliance",
                    sum_of(tuple(COUNTS)),
                    filters=(PROVINCE, AREA),
                    over_time=False,
                    window=COMPLIANCE_WINDOW,
                ),
                Expect(tuple(COUNTS), single=True),
                result_format="table",
            )
        ],
    )
    board.add(
        table_of(
            "Theo khu vực",
            "Mỗi khu vực: trạm kiên cố khai báo, đạt, không đạt, còn thiếu so với yêu cầu, "
            "các nhà mạng đang hoạt động (trên đường truyền các trạm đang báo cáo: số này "
            "được tính vào kết quả) và các nhà mạng có trạm trong danh mục.",
            "Per area: hardened stations declared, compliant, not, missing against the "
            "requirement, the carriers seen up now (on the paths its sites report: the "
            "verdict counts these) and the carriers with a station in the inventory.",
            {
                "province": "Tỉnh",
                "area": "Mã khu vực",
                "area_name": "Khu vực",
                **COUNTS,
                "required": "Yêu cầu",
                "carrier_up_list": "Nhà mạng đang hoạt động",
                "carriers_up": "Số nhà mạng đang hoạt động",
                "carrier_list": "Nhà mạng trong danh mục",
                "carriers": "Số nhà mạng trong danh mục",
                "carriers_live": "Nhà mạng có trạm đang báo cáo",
            },
            sort_by="Còn thiếu",
            descending=True,
        ),
        w=24,
        h=9,
        queries=[
            InfluxQL(
                'SELECT last("declared") AS "declared", "compliant", "non_compliant", '
                '"missing", "never_reported", "required", "area_name", "carrier_up_list", '
                '"carriers_up", "carrier_list", "carriers", "carriers_live" FROM "compliance" '
                f"WHERE {latest(PROVINCE, AREA, window=COMPLIANCE_WINDOW)} "
                'GROUP BY "province", "area"',
                Expect(
                    (
                        "declared",
                        "compliant",
                        "non_compliant",
                        "missing",
                        "required",
                        "area_name",
                        "carrier_up_list",
                        "carriers_up",
                        "carrier_list",
                        "carriers",
                    ),
                    tags=("province", "area"),
                    single=True,
                ),
                result_format="table",
            )
        ],
    )
    board.add(
        stat_row(
            "Không đạt theo tiêu chí",
            "Số trạm kiên cố không đạt, theo tiêu chí không đạt (một trạm có thể trượt nhiều "
            "tiêu chí).",
            "Hardened stations failing, per failed criterion (a station may fail several).",
            FAILED,
            dict.fromkeys(FAILED, "orange"),
        ),
        w=24,
        h=5,
        queries=[
            InfluxQL(
                summed(
                    "compliance",
                    sum_of(tuple(FAILED)),
                    filters=(PROVINCE, AREA),
                    over_time=False,
                    window=COMPLIANCE_WINDOW,
                ),
                Expect(tuple(FAILED), single=True),
                result_format="table",
            )
        ],
    )
    board.row("Xu hướng và từng trạm — trend and stations")
    board.add(
        trend(
            "Xu hướng đạt chuẩn",
            "Số trạm đạt, không đạt, còn thiếu theo thời gian, cộng trên các tỉnh đã chọn "
            "(mọi khu vực của tỉnh: từng khu vực xem bảng Theo khu vực).",
            "Compliant, not compliant and missing over time, summed over the chosen provinces "
            "(all their areas; each area: the per-area table).",
            names={k: COUNTS[k] for k in ("compliant", "non_compliant", "missing")},
            colours=COUNT_COLOURS,
        ),
        w=12,
        h=9,
        min_interval="5m",
        queries=[
            InfluxQL(
                summed(
                    "compliance_province",
                    sum_of(("compliant", "non_compliant", "missing")),
                    filters=(PROVINCE,),
                    over_time=True,
                    every_s=COMPLIANCE_EVERY_S,
                ),
                Expect(("compliant", "non_compliant", "missing")),
                alias="$col",
            )
        ],
    )
    board.add(
        table_of(
            "Từng trạm kiên cố",
            "Kết quả mới nhất của từng trạm kiên cố và các tiêu chí không đạt.",
            "Each hardened station's newest result and its failed criteria.",
            {
                "site": "Trạm",
                "name": "Tên",
                "area": "Khu vực",
                "operator": "Nhà mạng",
                "status_code": "Kết quả",
                "failed_vi": "Tiêu chí không đạt",
                "autonomy_h": "Giờ tự chủ",
                "independent_paths": "Đường độc lập",
            },
            sort_by="Kết quả",
            descending=True,
            mappings={"status_code": compliance_mapping()},
            units={"autonomy_h": "h"},
        ),
        w=12,
        h=9,
        queries=[
            InfluxQL(
                'SELECT last("status_code") AS "status_code", "name", "failed_vi", '
                '"autonomy_h", "independent_paths" FROM "compliance_station" '
                f"WHERE {latest(PROVINCE, AREA, OPERATOR, SITE, window=COMPLIANCE_WINDOW)} "
                'GROUP BY "site", "area", "operator"',
                Expect(
                    ("status_code", "name", "failed_vi"),
                    tags=("site", "area", "operator"),
                    single=True,
                ),
                result_format="table",
            )
        ],
    )
    return board.build()
