"""The collector shards, side by side: the system dashboard's first row.

Each collector writes its own health every ``influx.health_every_s`` (measurement
``kienco_collector``, collector/health_points.py). These panels read it, one tile, row or
line per collector: is it receiving (reports/s), how far behind (lag, writer backlog,
spool), is it rejecting (dead letters by reason), are its brokers dropping, are its
provinces' bridges up, is InfluxDB taking its writes, are its loops alive, its GC pauses.

A shard whose health stopped coming is the worst case and reads red: the tiles and the
table show how old each collector's newest health is, against the end of the range
(``${__to}``), looking back over the raw retention (35 days), so a shard silent for hours
is still listed, red. Grafana colours a value it has not got ("No data") with the
thresholds' base step (``getDisplayProcessor``: ``scaleFunc(-Infinity)``), so the base
step of the age is red too: no collector at all is red, not green.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import stat, table
from grafana_foundation_sdk.builders.dashboard import FieldColor, QueryVariable, ThresholdsConfig
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from collector.health_points import LATE_AFTER_S, LOST_AFTER_S, MEASUREMENT
from kienco.dashboards.common import Board, latest, steps, tag_variable, where
from kienco.dashboards.influxql import Expect, InfluxQL
from kienco.dashboards.panels import states_over_time, table_of, trend
from kienco.dashboards.retention import RAW_DURATION

__all__ = ["AGE", "COLLECTOR", "add_shards", "age_thresholds", "collector_variable"]

COLLECTOR = '"collector" =~ /^$collector$/'
FROM = f'FROM "{MEASUREMENT}"'
AGE = '(${__to} - last("at_ms")) / 1000'
"""Seconds from a collector's newest health to the end of the range (the browser's clock)."""
SKEW_S = 60.0  # a health up to a minute "ahead" is a clock a little off, not a fault

# How much is too much, per column of the shards' table.
PENDING_BATCH = 2_000  # batch.max_messages as shipped: more than a batch waiting is behind
LAG_LATE_S, LAG_BAD_S = 60.0, 300.0
GC_LONG_S, GC_BAD_S = 0.25, 1.0


def age_thresholds() -> ThresholdsConfig:
    """Red with no value, green when fresh, orange when late, red when lost."""
    return steps(
        "red",
        (-SKEW_S, "green"),
        (LATE_AFTER_S, "orange"),
        (LOST_AFTER_S, "red"),
    )


def _yes_no(yes: str, no: str) -> model.ValueMap:
    return model.ValueMap(
        options={
            "1": model.ValueMappingResult(text=yes, color="green", index=1),
            "0": model.ValueMappingResult(text=no, color="red", index=0),
        }
    )


def collector_variable() -> QueryVariable:
    return tag_variable(
        "collector",
        "Collector",
        f'SHOW TAG VALUES {FROM} WITH KEY = "collector"',
        "Các collector (shard) đã ghi tình trạng của mình. The collector shards that wrote "
        "their own health.",
    )


def _by_collector(select: str, *, extra: str = "", by: str = "") -> str:
    groups = ", ".join(["time($__interval)", '"collector"', *([f'"{by}"'] if by else [])])
    conditions = (COLLECTOR, extra) if extra else (COLLECTOR,)
    return f"SELECT {select} {FROM} WHERE {where(*conditions)} GROUP BY {groups} fill(none)"


def _tiles() -> stat.Panel:
    return (
        stat.Panel()
        .title("Collector: tình trạng ghi cách đây bao lâu")
        .description(
            "Mỗi ô là một collector (shard): bao nhiêu giây từ lần cuối nó ghi tình trạng "
            f"của mình (mỗi {LATE_AFTER_S / 3:g} s) tới cuối khoảng thời gian. Xanh: đang "
            f"ghi; cam: trễ ({LATE_AFTER_S:g} s); đỏ: mất ({LOST_AFTER_S:g} s) — collector "
            "đã dừng, luồng của nó bị treo, hoặc InfluxDB không nhận ghi (nó lưu tạm, sẽ ghi "
            "sau). Không có ô nào: chưa collector nào ghi, cũng là đỏ.\n\n"
            "One tile per collector shard: seconds from its newest health point (written "
            f"every {LATE_AFTER_S / 3:g} s) to the end of the range. Green: writing; orange: "
            f"late ({LATE_AFTER_S:g} s); red: lost ({LOST_AFTER_S:g} s): the collector "
            "stopped, a loop of it is stuck, or InfluxDB is not taking its writes (it "
            "spools them for later). No tile at all: no collector wrote any, red too."
        )
        .unit("s")
        .decimals(0)
        .no_value("không có collector nào — no collector")
        .thresholds(age_thresholds())
        .color_scheme(FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .color_mode(common_models.BigValueColorMode.BACKGROUND)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .text_mode(common_models.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
        )
    )


# The shards' table: each column, its Vietnamese name, and when it is bad.
COLUMNS: dict[str, str] = {
    "collector": "Collector",
    "age_s": "Ghi cách đây",
    "reports_per_s": "Báo cáo/s",
    "lag_s": "Độ trễ",
    "provinces_late": "Tỉnh đọc chậm",
    "pending": "Chờ ghi",
    "spooled_batches": "Lô chờ (spool)",
    "rejected_per_s": "Từ chối/s",
    "brokers_dropping": "Broker bỏ tin",
    "bridges_down": "Cầu nối mất",
    "loops_failing": "Luồng lỗi",
    "influx_writing": "InfluxDB nhận ghi",
    "broker_connected": "Nhận từ broker",
    "gc_pause_max_s": "GC dừng lâu nhất",
}
NOW_FIELDS = tuple(c for c in COLUMNS if c not in ("collector", "age_s"))


def _table() -> table.Panel:
    counts_bad = steps("green", (1, "red"))
    return table_of(
        "Từng collector, lúc cuối khoảng thời gian",
        "Một dòng mỗi collector (shard), theo tình trạng nó ghi gần nhất: ghi cách đây bao "
        "lâu; báo cáo nhận được mỗi giây; độ trễ (lúc nhận trừ lúc đo của báo cáo mới "
        "nhất); số tỉnh đang đọc báo cáo cũ (tồn đọng sau khi mất cầu nối, cảnh báo "
        "ReportsLate); tin chờ ghi bền và số lô chờ trong spool (InfluxDB không nhận); tin bị "
        "từ chối mỗi giây (vào kho dead-letter); số broker đang bỏ tin (cảnh báo "
        "BrokerDroppedReports); số cầu nối tỉnh đang mất; số luồng chết hoặc treo; "
        "InfluxDB có nhận ghi, collector có nhận tin từ broker; lần dừng GC lâu nhất từ "
        "khi khởi động. Chi tiết: /healthz và /metrics của collector đó.",
        "One row per collector shard, from its newest health: how old it is; reports "
        "received per second; lag (receive time minus the newest report's time); provinces "
        "whose reports are read late (a backlog worked off, its ReportsLate alert); messages "
        "waiting for a durable write and batches waiting in the spool (InfluxDB not "
        "taking them); messages rejected per second (kept as dead letters); brokers "
        "dropping messages (its BrokerDroppedReports alert); provincial bridges down; "
        "loops dead or stuck; InfluxDB taking writes, subscribed to the broker; the longest "
        "GC pause since it started. Details: that collector's /healthz and /metrics.",
        COLUMNS,
        sort_by=COLUMNS["age_s"],
        descending=True,
        units={"age_s": "s", "lag_s": "s", "gc_pause_max_s": "s"},
        mappings={
            "influx_writing": _yes_no("có", "không"),
            "broker_connected": _yes_no("có", "không"),
        },
        thresholds={
            "age_s": age_thresholds(),
            "reports_per_s": steps("red", (0.01, "green")),  # nothing comes in: red
            "lag_s": steps("green", (LAG_LATE_S, "orange"), (LAG_BAD_S, "red")),
            "provinces_late": steps("green", (1, "orange")),  # ReportsLate: a warning
            "pending": steps("green", (PENDING_BATCH, "orange"), (10 * PENDING_BATCH, "red")),
            "spooled_batches": steps("green", (1, "orange"), (100, "red")),
            "rejected_per_s": steps("green", (0.001, "orange"), (1, "red")),
            "brokers_dropping": counts_bad,
            "bridges_down": counts_bad,
            "loops_failing": counts_bad,
            "gc_pause_max_s": steps("green", (GC_LONG_S, "orange"), (GC_BAD_S, "red")),
        },
    )


def add_shards(board: Board) -> Board:
    """The shards' row: tiles, the table, then each figure over time."""
    board.row("Collector — từng shard")
    now = latest(COLLECTOR, window=RAW_DURATION)
    board.add(
        _tiles(),
        w=24,
        h=4,
        queries=[
            InfluxQL(
                f'SELECT {AGE} AS "age_s" {FROM} WHERE {now} GROUP BY "collector"',
                Expect(("age_s",), tags=("collector",), single=True),
                alias="$tag_collector",
            )
        ],
    )
    selected = ", ".join([f'{AGE} AS "age_s"', *(f'last("{f}") AS "{f}"' for f in NOW_FIELDS)])
    board.add(
        _table(),
        w=24,
        h=8,
        queries=[
            InfluxQL(
                f'SELECT {selected} {FROM} WHERE {now} GROUP BY "collector"',
                Expect(("age_s", *NOW_FIELDS), tags=("collector",), single=True),
                result_format="table",
            )
        ],
    )
    board.add(
        trend(
            "Báo cáo nhận mỗi giây, theo collector",
            "Số báo cáo mỗi collector nhận và chấp nhận mỗi giây. Tụt về 0: không còn gì "
            "tới (broker, cầu nối tỉnh, hoặc collector).",
            "Reports each collector received and accepted per second. Down to 0: nothing "
            "comes in (its broker, a provincial bridge, or the collector).",
        ),
        w=8,
        h=8,
        queries=[
            InfluxQL(
                _by_collector('mean("reports_per_s") AS "reports_per_s"'),
                Expect(("reports_per_s",), tags=("collector",)),
                alias="$tag_collector",
            )
        ],
    )
    board.add(
        trend(
            "Độ trễ báo cáo, theo collector",
            "lag_s: lúc collector nhận trừ lúc agent đo, của báo cáo mới nhất; late_s: tỉnh "
            "chậm nhất đang đọc báo cáo cũ bao lâu (tồn đọng sau khi mất cầu nối hoặc "
            "collector dừng), 0 khi không tỉnh nào chậm; lớn nhất trong mỗi khoảng. Cao khi "
            "collector tụt lại sau, hoặc khi báo cáo cũ đang được gửi bù.",
            "lag_s: receive time minus the time the agent took it, of the newest report; "
            "late_s: how far behind the latest province's reports are read (a backlog after "
            "a bridge or collector outage), 0 when none is late; the most in each interval. "
            "High when the collector falls behind, or while old reports are replayed.",
            unit="s",
            thresholds=steps("green", (LAG_LATE_S, "orange"), (LAG_BAD_S, "red")),
        ),
        w=8,
        h=8,
        queries=[
            InfluxQL(
                _by_collector('max("lag_s") AS "lag_s", max("late_s") AS "late_s"'),
                Expect(("lag_s", "late_s"), tags=("collector",)),
                alias="$tag_collector $col",
            )
        ],
    )
    board.add(
        trend(
            "Tồn đọng ghi: tin chờ ghi và lô trong spool",
            "Tin chờ được ghi bền (InfluxDB hoặc spool) rồi mới xác nhận với broker, và số "
            "lô đang chờ trong spool vì InfluxDB không nhận; lớn nhất trong mỗi khoảng.",
            "Messages waiting for a durable write (InfluxDB or the spool) before their ack, "
            "and batches waiting in the spool because InfluxDB is not taking them; the most "
            "in each interval.",
        ),
        w=8,
        h=8,
        queries=[
            InfluxQL(
                _by_collector('max("pending") AS "pending", max("spooled_batches") AS "spool"'),
                Expect(("pending", "spool"), tags=("collector",)),
                alias="$tag_collector $col",
            )
        ],
    )
    board.add(
        trend(
            "Tin bị từ chối theo lý do (dead letter)",
            "Tin mỗi collector từ chối mỗi giây, theo lý do (invalid_json, schema, "
            "site_mismatch, future_timestamp, oversized, bad_topic, site_limit, "
            "unprocessable, influx_refused): giữ trong kho dead-letter, xem bằng `kienco "
            "deadletter list --reason …`.",
            "Messages each collector rejected per second, by reason: kept in its dead-letter "
            "store (`kienco deadletter list --reason …`).",
        ),
        w=8,
        h=8,
        queries=[
            InfluxQL(
                _by_collector(
                    'mean("dead_letters_per_s") AS "dead_letters_per_s"',
                    extra='"reason" =~ /.+/',
                    by="reason",
                ),
                Expect(("dead_letters_per_s",), tags=("collector", "reason")),
                alias="$tag_collector $tag_reason",
            )
        ],
    )
    board.add(
        trend(
            "Tin broker bỏ (mất hẳn), theo broker",
            "Tin mỗi broker bỏ trong mỗi khoảng, vì hàng đợi của một client đã đầy "
            "(max_queued_messages): own là broker của collector, còn lại là broker tỉnh. "
            "Tin bị bỏ là mất hẳn.",
            "Messages each broker dropped in each interval, a client's queue being full "
            "(max_queued_messages): own is the collector's broker, the others provincial "
            "brokers. What a broker drops is lost for good.",
            thresholds=steps("green", (1, "red")),
        ),
        w=8,
        h=8,
        queries=[
            InfluxQL(
                _by_collector(
                    'sum("dropped_new") AS "dropped_new"', extra='"broker" =~ /.+/', by="broker"
                ),
                Expect(("dropped_new",), tags=("collector", "broker")),
                alias="$tag_collector $tag_broker",
            )
        ],
    )
    board.add(
        trend(
            "GC: phần trăm thời gian mọi luồng phải dừng",
            "Phần thời gian collector dừng mọi luồng để dọn bộ nhớ (garbage collection), "
            "lớn nhất trong mỗi khoảng; lần dừng dài nhất ở bảng trên.",
            "Share of the time the collector stopped every thread for garbage collection, "
            "the most in each interval; the longest pause is in the table above.",
            unit="percent",
        ),
        w=8,
        h=8,
        queries=[
            InfluxQL(
                _by_collector('max("gc_paused_pct") AS "gc_paused_pct"'),
                Expect(("gc_paused_pct",), tags=("collector",)),
                alias="$tag_collector",
            )
        ],
    )
    for title, vi, en, field, by, words in (
        (
            "Collector ổn hay có vấn đề (/healthz)",
            "Mỗi collector theo thời gian: ổn (mọi thứ /healthz kiểm đều ổn) hay có vấn đề "
            "(mất broker, InfluxDB không nhận ghi, luồng chết hoặc treo). Trống: không có "
            "tình trạng nào được ghi.",
            "Each collector over time: ok (all /healthz checks pass) or not (broker lost, "
            "InfluxDB not taking writes, a loop dead or stuck). Blank: no health written.",
            "ok",
            "",
            _yes_no("ổn", "có vấn đề"),
        ),
        (
            "Cầu nối broker tỉnh → trung tâm",
            "Cầu nối (bridge) của từng broker tỉnh tới trung tâm, như collector của tỉnh "
            "thấy: nối hay mất (đường truyền bị cắt, broker tỉnh dừng).",
            "Each provincial broker's bridge to the centre as its province's collector sees "
            "it: up or down (its backhaul cut, its broker stopped).",
            "bridge_up",
            "broker",
            _yes_no("nối", "mất"),
        ),
        (
            "Luồng của collector",
            "Từng luồng của mỗi collector (mqtt, writer, staleness, api, …): chạy, hay chết "
            "hoặc treo (không có nhịp).",
            "Each loop of each collector (mqtt, writer, staleness, api, …): running, or dead "
            "or stuck (no heartbeat).",
            "thread_ok",
            "thread",
            _yes_no("chạy", "chết/treo"),
        ),
    ):
        board.add(
            states_over_time(title, vi, en, words),
            w=8,
            h=8,
            queries=[
                InfluxQL(
                    _by_collector(
                        f'min("{field}") AS "{field}"',
                        extra=f'"{by}" =~ /.+/' if by else "",
                        by=by,
                    ),
                    Expect((field,), tags=("collector", *((by,) if by else ()))),
                    alias=f"$tag_collector $tag_{by}" if by else "$tag_collector",
                )
            ],
        )
    return board
