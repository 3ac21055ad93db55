"""Every user-facing text of the rules, in Vietnamese and English, keyed by reason code.

Templates use ``str.format`` fields filled from a finding's numbers and labels. A few
format specs turn canonical units into words people read:

- ``{x:n}``     a number: whole when it is whole, one decimal otherwise, with the
                language's separators (``10,5`` / ``10.5``; ``65.535`` / ``65,535``);
- ``{x:below}`` a number that falls short of a threshold: as ``n``, but rounded down
                (``71,9`` for 71.98, never ``72`` beside "72 h required");
- ``{x:dur}``   seconds as a duration (``38 phút`` / ``38 min``, ``2 giờ 5 phút``);
- ``{x:media}`` a link medium (``fibre`` → ``cáp quang``); other values pass through;
- ``{x:risk}``  a shared-risk group slug as a phrase (``tower-hp12`` → ``cột`` /
                ``the same tower``), guessed from the slug's first word;
- ``{x:time}``  UTC epoch seconds as a time in Vietnam (``07/09 14:24``, UTC+7: no
                daylight saving there, so no time-zone database is read);
- ``{x:at_risk}`` the risk level that made a threshold stricter, as a suffix
                (`` at risk level 4``); nothing when ``None``.

One field is derived: ``{needs}`` renders ", a hardened station needs 72 h" from the
labels and numbers ``target`` (``station:hardened``; empty: no target, no clause),
``required_h`` and ``tightened_at_level`` (" at risk level 4" when that raised it).

A number that is unknown (``None``) prints as ``?``. Every reason names what is
wrong and, where a threshold applies, the threshold.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")


@dataclass(frozen=True, slots=True)
class Text:
    vi: str
    en: str

    def template(self, lang: Lang) -> str:
        return self.vi if lang == "vi" else self.en


# The fix when a battery's runtime cannot be known: the site config gives its model.
_SET_MODEL = Text(
    "hãy khai báo thời gian lưu điện ở tải đầy của ắc quy trong cấu hình trạm "
    "(battery: full_load_runtime_s)",
    "set the battery's full-load runtime in the site config (battery: full_load_runtime_s)",
)

# Every reason names what is wrong and, where a threshold applies, the threshold; a
# threshold the province's risk level made stricter says so ({tightened_at_level:at_risk},
# and the derived {needs}, see render()). tests/test_rules_texts.py lists which codes
# carry which threshold.
_CATALOGUE: dict[str, Text] = {
    # --- freshness
    "no_report_yet": Text(
        "chưa nhận được báo cáo nào: chưa đánh giá được",
        "no report received yet: nothing to judge",
    ),
    "no_recent_report": Text(
        "không có báo cáo trong {age_s:dur} (quá {stale_after_s:dur} là mất liên lạc"
        "{tightened_at_level:at_risk})",
        "no report for {age_s:dur} (stale after {stale_after_s:dur}{tightened_at_level:at_risk})",
    ),
    "report_backlog": Text(
        "đang nhận dữ liệu gửi lại; báo cáo mới nhất đã cách đây {age_s:dur} "
        "(quá {stale_after_s:dur} là mất liên lạc{tightened_at_level:at_risk})",
        "replaying a backlog; the newest report is {age_s:dur} old "
        "(stale after {stale_after_s:dur}{tightened_at_level:at_risk})",
    ),
    "clock_behind": Text(
        "báo cáo vẫn tới đều nhưng mỗi báo cáo đã cũ {behind_s:dur}: đồng hồ thiết bị giám "
        "sát có lẽ chạy chậm (mất điện, không tới được máy chủ NTP) — chỉnh giờ (NTP) cho "
        "thiết bị —, hoặc một hàng đợi báo cáo của điểm đang được đọc không nhanh hơn lúc "
        "đầy; trạng thái chưa tin được cho tới khi đó",
        "reports keep arriving on schedule but each is {behind_s:dur} old: the agent's clock "
        "is likely behind (a power cut, no NTP server in reach) — set its time (NTP) —, or a "
        "queue of its reports is read no faster than it fills; its state cannot be vouched "
        "for until then",
    ),
    "clock_corrected": Text(
        "đồng hồ thiết bị giám sát chạy chậm {behind_s:dur} và chính thiết bị báo đồng hồ "
        "chưa đồng bộ (mất điện, không tới được máy chủ NTP): báo cáo vẫn tới đúng hẹn và "
        "không hàng đợi nào giữ chúng, nên điểm được đánh giá như khi đồng hồ đúng; số liệu "
        "trong lịch sử bị ghi lùi {behind_s:dur} — chỉnh giờ (NTP) cho thiết bị",
        "the agent's clock is {behind_s:dur} behind and its box says its clock is not "
        "synchronised (a power cut, no NTP server in reach): its reports arrive on schedule "
        "and no queue holds them, so the site is judged as if its clock were right; its "
        "history is stored {behind_s:dur} early — set its time (NTP)",
    ),
    "agent_offline": Text(
        "thiết bị giám sát mất kết nối (MQTT Last Will): không có số liệu của điểm",
        "agent offline (its MQTT Last Will fired): no data from the site",
    ),
    "clock_ahead_refused": Text(
        "thiết bị giám sát vẫn gửi báo cáo nhưng đồng hồ của nó chạy nhanh {ahead_s:dur} so "
        "với collector (cho phép {future_tolerance_s:dur}): báo cáo bị từ chối (giữ lại trong "
        "dead letter), nên chưa đánh giá được điểm — chỉnh giờ cho thiết bị (NTP; giờ Việt "
        "Nam đặt như giờ UTC là nhanh 7 giờ)",
        "the agent keeps reporting, but its clock is {ahead_s:dur} ahead of the collector's "
        "({future_tolerance_s:dur} tolerated): its reports are refused (kept as dead "
        "letters), so the site cannot be judged — set its time (NTP; Vietnam's time set as "
        "UTC is 7 h ahead)",
    ),
    "clock_ahead": Text(
        "đồng hồ thiết bị giám sát chạy nhanh {ahead_s:dur}, cho phép {future_tolerance_s:dur}",
        "the agent's clock is {ahead_s:dur} ahead, {future_tolerance_s:dur} tolerated",
    ),
    "meta_missing": Text(
        "chưa có mô tả điểm (meta): không rõ loại và cấp",
        "no site description (meta) yet: kind and class unknown",
    ),
    # --- station state
    "power_down": Text(
        "mất điện: ắc quy đã cạn, trạm ngừng hoạt động",
        "power down: battery depleted, the site is dark",
    ),
    "power_down_input_failed": Text(
        "{device} đang chạy ắc quy và ắc quy đã cạn, trong khi {mains_device} vẫn thấy điện "
        "lưới: không phải mất điện lưới mà đầu vào của {device} hỏng (aptomat, cáp, bộ "
        "chỉnh lưu) — thiết bị nó cấp điện đã tắt; kiểm tra đầu vào của {device}",
        "{device} is on battery and flat while {mains_device} still sees mains: not a mains "
        "failure but {device}'s input (breaker, cable, rectifier) — what it feeds is dark; "
        "check {device}'s input",
    ),
    "power_output_off": Text(
        "{device} báo đầu ra đã tắt: thiết bị nó cấp điện đang mất điện, dù điện lưới và "
        "ắc quy thế nào — bật lại đầu ra hoặc tìm lý do nó tắt (quá tải, lỗi, lệnh tắt, "
        "ắc quy cạn)",
        "{device} says its output is off: what it feeds is dark, whatever the mains and "
        "its battery say — switch it back on, or find why it shut down (overload, a fault, "
        "a command, the battery exhausted)",
    ),
    # --- backup power, mains lost ({needs}: the target; none at meeting points, whose
    # hours the meeting rule judges)
    "on_battery_generator_stopped": Text(
        "mất điện lưới: máy phát không chạy, ắc quy còn {dark_in_s:dur}{needs}",
        "mains lost: generator not running, on battery with {dark_in_s:dur} left{needs}",
    ),
    "on_battery_generator_stopped_runtime_unknown": Text(
        "mất điện lưới: máy phát không chạy, đang chạy bằng ắc quy, không rõ thời gian còn lại",
        "mains lost: generator not running, on battery, time left unknown",
    ),
    "on_battery_no_generator": Text(
        "mất điện lưới: không có máy phát, ắc quy còn {dark_in_s:dur}{needs}",
        "mains lost: no generator, on battery with {dark_in_s:dur} left{needs}",
    ),
    "on_battery": Text(
        "mất điện lưới: đang chạy bằng ắc quy, tổng cộng còn {dark_in_s:dur}{needs}",
        "mains lost: on battery, {dark_in_s:dur} left in total{needs}",
    ),
    "on_battery_runtime_unknown": Text(
        "mất điện lưới: đang chạy bằng ắc quy, không rõ thời gian còn lại",
        "mains lost: on battery, time left unknown",
    ),
    "on_battery_no_model": Text(
        "mất điện lưới: đang chạy bằng ắc quy, không rõ thời gian còn lại vì {device} không báo "
        "thời gian lưu điện tin cậy được và cấu hình trạm không có mô hình ắc quy của nó; "
        + _SET_MODEL.vi,
        "mains lost: on battery, time left unknown: {device} reports no trustworthy runtime "
        "and the site config gives no model of its battery; " + _SET_MODEL.en,
    ),
    "on_generator": Text(
        "mất điện lưới: đang chạy máy phát, nhiên liệu đủ {generator_s:dur}, "
        "tổng cộng còn {dark_in_s:dur}{needs}",
        "mains lost: on generator, fuel for {generator_s:dur}, {dark_in_s:dur} in total{needs}",
    ),
    "on_generator_fuel_unknown": Text(
        "mất điện lưới: đang chạy máy phát, không rõ nhiên liệu còn đủ bao lâu "
        "(không có lượng dầu hoặc mức tiêu hao)",
        "mains lost: on generator, fuel autonomy unknown (fuel level or burn rate not reported)",
    ),
    "power_source_unknown": Text(
        "mất điện lưới nhưng không đọc được máy phát có đang chạy hay không, và không thiết "
        "bị ắc quy nào báo đang xả: không rõ trạm đang chạy bằng nguồn nào, nên không rõ còn "
        "bao lâu (ắc quy {battery_s:dur}, nhiên liệu máy phát {generator_s:dur} nếu máy đang "
        "chạy) — kiểm tra máy phát",
        "mains lost, but whether the generator runs was not read, and no battery device says "
        "it is discharging: which source carries the site is unknown, and so is the time "
        "left (battery {battery_s:dur}, generator fuel {generator_s:dur} if it runs) — check "
        "the generator",
    ),
    # --- backup power, mains present: hours if they failed now
    "backup_hours_short": Text(
        "điện dự phòng đủ {backup_h:below} giờ{needs}",
        "{backup_h:below} h of backup power{needs}",
    ),
    "backup_hours_critical": Text(
        "điện dự phòng chỉ đủ {backup_h:below} giờ, dưới mức tối thiểu {critical_h:n} giờ{needs}",
        "only {backup_h:below} h of backup power, under the {critical_h:n} h minimum{needs}",
    ),
    "backup_hours_unknown": Text(
        "không rõ thời gian dự phòng: không có số liệu thời gian lưu điện hay mức sạc ắc quy",
        "backup hours unknown: no battery runtime or charge reported",
    ),
    "backup_hours_unknown_no_model": Text(
        "không rõ thời gian dự phòng: {device} không báo thời gian lưu điện tin cậy được và "
        "cấu hình trạm không có mô hình ắc quy của nó; " + _SET_MODEL.vi,
        "backup hours unknown: {device} reports no trustworthy runtime and the site config "
        "gives no model of its battery; " + _SET_MODEL.en,
    ),
    "on_battery_partial": Text(
        "mất điện lưới: ắc quy {known} còn {dark_in_s:dur}; không rõ thời gian lưu điện của "
        "{device}, chỉ đúng nếu {device} không cấp điện cho thiết bị nào của trạm",
        "mains lost: {known} on battery with {dark_in_s:dur} left; runtime of {device} "
        "unknown, true only if {device} feeds nothing the site needs",
    ),
    "backup_hours_partial": Text(
        "không rõ thời gian lưu điện của {device}: {backup_h:below} giờ điện dự phòng chỉ tính "
        "{known}, chỉ đúng nếu {device} không cấp điện cho thiết bị nào của trạm",
        "runtime of {device} unknown: the {backup_h:below} h of backup power count {known} "
        "alone, true only if {device} feeds nothing the site needs",
    ),
    "backup_hours_partial_no_model": Text(
        "không rõ thời gian lưu điện của {device}: {backup_h:below} giờ điện dự phòng chỉ tính "
        "{known}, chỉ đúng nếu {device} không cấp điện cho thiết bị nào của trạm; {device} "
        "không báo giá trị tin cậy được và cấu hình trạm không có mô hình ắc quy của nó; "
        + _SET_MODEL.vi,
        "runtime of {device} unknown: the {backup_h:below} h of backup power count {known} "
        "alone, true only if {device} feeds nothing the site needs; it reports no "
        "trustworthy figure and the site config gives no model of its battery; " + _SET_MODEL.en,
    ),
    "generator_autonomy_unknown": Text(
        "không rõ máy phát chạy được bao lâu (thiếu lượng dầu hoặc mức tiêu hao); "
        "riêng ắc quy đủ {battery_h:n} giờ{needs}",
        "generator autonomy unknown (fuel or burn rate not reported); "
        "the battery alone gives {battery_h:n} h{needs}",
    ),
    "ups_on_bypass": Text(
        "{device} đang ở chế độ bypass: tải chạy thẳng bằng điện lưới, nếu mất điện lưới "
        "ắc quy sẽ không gánh tải, nên tính 0 giờ lưu điện — kiểm tra cảnh báo của UPS "
        "(quá tải, lỗi, công tắc bypass bảo trì chưa trả về)",
        "{device} is in bypass: its load runs straight on the mains, and if the mains fails "
        "its battery will not take over, so it counts 0 h of backup — check the UPS's alarm "
        "(overload, a fault, a maintenance bypass left on)",
    ),
    "runtime_untrusted": Text(
        "bỏ qua thời gian lưu điện do {device} báo ({runtime_s:n} giây) vì không hợp lý; "
        "ước tính {estimate_s:dur} theo mức sạc ắc quy",
        "ignored the runtime {device} reports ({runtime_s:n} s), not plausible; "
        "estimated {estimate_s:dur} from its charge instead",
    ),
    "runtime_untrusted_no_charge": Text(
        "bỏ qua thời gian lưu điện do {device} báo ({runtime_s:n} giây) vì không hợp lý; "
        "thiết bị không báo mức sạc ắc quy để ước tính",
        "ignored the runtime {device} reports ({runtime_s:n} s), not plausible; "
        "it reports no charge to estimate from",
    ),
    "battery_model_missing": Text(
        "không rõ thời gian lưu điện của {device}: thiết bị không báo giá trị tin cậy được và "
        "cấu hình trạm không có mô hình ắc quy của nó; " + _SET_MODEL.vi,
        "runtime of {device} unknown: it reports no trustworthy figure and the site config "
        "gives no model of its battery; " + _SET_MODEL.en,
    ),
    "battery_estimate_optimistic": Text(
        "{device} báo còn {ups_s:dur} nhưng tốc độ xả cho thấy chỉ còn {slope_s:dur} "
        "(dưới {ratio_pct:n}%): dùng theo tốc độ xả",
        "{device} estimates {ups_s:dur} but the discharge trend gives only {slope_s:dur} "
        "(under {ratio_pct:n} % of it): the trend is used",
    ),
    "power_probe_error": Text(
        "không đọc được thiết bị điện {device}: {error}",
        "cannot read power device {device}: {error}",
    ),
    # --- multipath
    "path_all_down": Text(
        "mất truyền dẫn: mất toàn bộ đường truyền ({paths_down:n}/{paths_total:n} đường)",
        "transport lost: all paths down ({paths_down:n} of {paths_total:n})",
    ),
    "paths_unknown": Text(
        "không xác nhận được đường truyền nào đang hoạt động, cần {required:n} đường độc lập"
        "{tightened_at_level:at_risk}",
        "no path confirmed up, {required:n} independent paths required{tightened_at_level:at_risk}",
    ),
    "paths_one_independent": Text(
        "chỉ còn 1 đường truyền độc lập, cần {required:n}{tightened_at_level:at_risk}",
        "only one independent path up, {required:n} required{tightened_at_level:at_risk}",
    ),
    "paths_one_independent_shared": Text(
        "chỉ còn 1 đường truyền độc lập ({path_a:media} và {path_b:media} dùng chung "
        "{srlg:risk}), cần {required:n}{tightened_at_level:at_risk}",
        "only one independent path up ({path_a:media} and {path_b:media} share {srlg:risk}), "
        "{required:n} required{tightened_at_level:at_risk}",
    ),
    "paths_too_few": Text(
        "chỉ có {independent:n} đường truyền độc lập, cần {required:n}{tightened_at_level:at_risk}",
        "only {independent:n} independent paths up, {required:n} required"
        "{tightened_at_level:at_risk}",
    ),
    "paths_one_media": Text(
        "mọi đường truyền độc lập đều là {media:media}: một sự cố loại này có thể cắt tất cả, "
        "nên có {preferred_media:n} loại đường truyền",
        "every independent path is {media:media}: one fault of that kind can cut them all, "
        "{preferred_media:n} media preferred",
    ),
    "path_down": Text(
        "đường truyền {path} ({media:media}) mất kết nối",
        "path {path} ({media:media}) is down",
    ),
    "path_lossy": Text(
        "đường truyền {path} ({media:media}) còn lên nhưng mất {loss_pct} % gói thăm dò "
        "(quá {usable_loss_pct} %): không tính là một đường",
        "path {path} ({media:media}) is up but loses {loss_pct} % of its probes "
        "(over {usable_loss_pct} %): not counted as a path",
    ),
    "path_unprobed": Text(
        "đường truyền {path} ({media:media}) được báo mà không gửi gói thăm dò nào "
        "(probes_sent 0): không có gì đo nó, nên coi là chưa rõ, không tính là lên hay xuống",
        "path {path} ({media:media}) is reported with no probe sent (probes_sent 0): nothing "
        "measured it, so it is counted as unknown, neither up nor down",
    ),
    # --- link quality
    "link_rtt_high": Text(
        "độ trễ tốt nhất {rtt_ms:n} ms (đường {path}), ngưỡng {max_rtt_ms:n} ms",
        "best round-trip time {rtt_ms:n} ms (path {path}), limit {max_rtt_ms:n} ms",
    ),
    "link_jitter_high": Text(
        "độ biến thiên trễ {jitter_ms:n} ms (đường {path}), ngưỡng {max_jitter_ms:n} ms",
        "jitter {jitter_ms:n} ms (path {path}), limit {max_jitter_ms:n} ms",
    ),
    "link_loss_high": Text(
        "mất gói {loss_pct:n}% (đường {path}), ngưỡng {max_loss_pct:n}%",
        "packet loss {loss_pct:n} % (path {path}), limit {max_loss_pct:n} %",
    ),
    "link_backup_unfit": Text(
        "nếu mất đường đang đạt chất lượng, cuộc họp phải chuyển sang đường {path} "
        "({media:media}), nhưng đường này mất {loss_pct:n} % gói (quá "
        "{backup_max_loss_pct:n} %): chỉ {fit:n} đường độc lập đủ cho cuộc họp, cần "
        "{required:n}{tightened_at_level:at_risk}",
        "if the path good for the meeting is lost, the meeting falls back on path {path} "
        "({media:media}), which loses {loss_pct:n} % of its packets (over "
        "{backup_max_loss_pct:n} %): only {fit:n} independent path(s) could carry the "
        "meeting, {required:n} required{tightened_at_level:at_risk}",
    ),
    "link_call_on_primary": Text(
        "bộ định tuyến giữ cuộc gọi trên đường {path} (ưu tiên {priority:n}) khi đường này "
        "còn lên; đường {better} (ưu tiên {better_priority:n}) đạt chất lượng nhưng không "
        "được dùng — chuyển đường bằng tay hoặc sửa đường {path}",
        "the router keeps calls on path {path} (priority {priority:n}) while it is up; path "
        "{better} (priority {better_priority:n}) would carry them but is not used — switch "
        "over by hand, or mend {path}",
    ),
    "link_bandwidth_low": Text(
        "băng thông {up_mbps:n}/{down_mbps:n} Mbps lên/xuống (đường {path}), "
        "cần {min_up_mbps:n}/{min_down_mbps:n} Mbps",
        "bandwidth {up_mbps:n}/{down_mbps:n} Mbps up/down (path {path}), "
        "{min_up_mbps:n}/{min_down_mbps:n} Mbps required",
    ),
    "link_bandwidth_unknown": Text(
        "chưa biết băng thông đường {path}: lần đo gần nhất không thành ({error}); "
        "cần {min_up_mbps:n}/{min_down_mbps:n} Mbps lên/xuống",
        "bandwidth of path {path} not known: its last test failed ({error}); "
        "{min_up_mbps:n}/{min_down_mbps:n} Mbps up/down required",
    ),
    "link_quality_unknown": Text(
        "chưa đo được chất lượng đường truyền (độ trễ, mất gói)",
        "link quality not measured (round-trip time, loss)",
    ),
    # --- hardened-station compliance (rules/compliance.py)
    "generator_autonomy_short": Text(
        "điện dự phòng (ắc quy + máy phát) chỉ đủ {autonomy_h:below} giờ "
        "(máy phát {generator_h:n} giờ), cần {required_h:n} giờ",
        "backup power (battery + generator) lasts {autonomy_h:below} h "
        "(generator {generator_h:n} h), {required_h:n} h required",
    ),
    "generator_not_started": Text(
        "mất điện lưới nhưng máy phát không khởi động (bộ điều khiển báo dừng): "
        "{generator_h:n} giờ nhiên liệu không tính, trạm chỉ còn ắc quy {battery_h:below} giờ, "
        "cần {required_h:n} giờ",
        "mains lost but the generator did not start (its controller says stopped): "
        "its {generator_h:n} h of fuel are not counted, the station has {battery_h:below} h "
        "of battery, {required_h:n} h required",
    ),
    "generator_not_started_no_battery": Text(
        "mất điện lưới nhưng máy phát không khởi động (bộ điều khiển báo dừng): "
        "{generator_h:n} giờ nhiên liệu không tính, không rõ ắc quy còn bao lâu, "
        "cần {required_h:n} giờ",
        "mains lost but the generator did not start (its controller says stopped): "
        "its {generator_h:n} h of fuel are not counted, battery time left unknown, "
        "{required_h:n} h required",
    ),
    "generator_not_started_no_fuel": Text(
        "mất điện lưới nhưng máy phát không khởi động (bộ điều khiển báo dừng): "
        "trạm chỉ còn ắc quy {battery_h:below} giờ, cần {required_h:n} giờ",
        "mains lost but the generator did not start (its controller says stopped): "
        "the station has {battery_h:below} h of battery, {required_h:n} h required",
    ),
    "generator_not_started_no_battery_no_fuel": Text(
        "mất điện lưới nhưng máy phát không khởi động (bộ điều khiển báo dừng): "
        "không rõ ắc quy còn bao lâu, cần {required_h:n} giờ",
        "mains lost but the generator did not start (its controller says stopped): "
        "battery time left unknown, {required_h:n} h required",
    ),
    "no_generator": Text(
        "không có máy phát điện: trạm kiên cố cần ắc quy + máy phát đủ {required_h:n} giờ",
        "no generator: a hardened station needs battery + generator for {required_h:n} h",
    ),
    "no_fibre_path": Text(
        "không có đường truyền cáp quang: trạm kiên cố cần có",
        "no fibre path: a hardened station needs one",
    ),
    "no_second_independent_path": Text(
        "chỉ có {independent:n} đường truyền độc lập (khai báo {declared:n} đường), "
        "cần {required:n}",
        "only {independent:n} independent path(s) ({declared:n} declared), {required:n} required",
    ),
    "no_second_independent_path_shared": Text(
        "chỉ có {independent:n} đường truyền độc lập, cần {required:n}: "
        "{a} và {b} dùng chung {srlg:risk}",
        "only {independent:n} independent path(s), {required:n} required: "
        "{a} and {b} share {srlg:risk}",
    ),
    "silent": Text(
        "mất liên lạc: không có báo cáo trong {age_s:dur} (quá {stale_after_s:dur})",
        "silent: no report for {age_s:dur} (over {stale_after_s:dur})",
    ),
    "silent_offline": Text(
        "mất liên lạc: thiết bị giám sát ngắt kết nối (MQTT Last Will), "
        "báo cáo cuối cách đây {age_s:dur}",
        "silent: agent offline (MQTT Last Will), last report {age_s:dur} ago",
    ),
    "never_reported": Text(
        "chưa từng gửi báo cáo: tính là thiếu",
        "never reported: counted as missing",
    ),
    "not_declared_hardened": Text(
        "thiết bị giám sát không khai báo trạm là kiên cố, danh mục ghi là kiên cố",
        "the site's agent does not declare it hardened; the inventory does",
    ),
    "not_in_inventory": Text(
        "trạm đang gửi báo cáo nhưng không có trong danh mục",
        "reporting, but not in the inventory",
    ),
    # --- planned meetings: the pre-meeting rehearsal (rules/rehearsal.py)
    "rehearsal_missing": Text(
        "chưa diễn tập (cần một lần diễn tập đạt trong vòng {max_age_s:dur})",
        "no rehearsal yet (one passed within {max_age_s:dur} is required)",
    ),
    "rehearsal_failed": Text(
        "diễn tập không đạt {age_s:dur} trước: {problems}",
        "rehearsal failed {age_s:dur} ago: {problems}",
    ),
    "rehearsal_stale": Text(
        "lần diễn tập gần nhất đã {age_s:dur}, quá {max_age_s:dur}",
        "last rehearsal was {age_s:dur} ago, older than {max_age_s:dur}",
    ),
    "rehearsal_stale_at_start": Text(
        "lần diễn tập gần nhất ({age_s:dur} trước) sẽ đã {age_at_start_s:dur} khi cuộc họp "
        "bắt đầu, quá {max_age_s:dur}: hãy diễn tập lại trong vòng {max_age_s:dur} trước "
        "giờ họp",
        "the last rehearsal ({age_s:dur} ago) will be {age_at_start_s:dur} old when the "
        "meeting starts, older than {max_age_s:dur}: rehearse again within {max_age_s:dur} "
        "of its start",
    ),
    # --- meeting readiness
    "meeting_power_short": Text(
        "nếu mất điện lưới, điện dự phòng đủ {backup_s:dur}; cuộc họp cần {needed_s:dur}, "
        "đến {needed_until_ts:time} (gồm {margin_pct:n}% dự phòng{tightened_at_level:at_risk})",
        "if mains fail, backup power lasts {backup_s:dur}; the meeting needs {needed_s:dur}, "
        "to {needed_until_ts:time} (incl. {margin_pct:n} % margin{tightened_at_level:at_risk})",
    ),
    "meeting_power_runs_out": Text(
        "mất điện lưới: nguồn dự phòng còn {backup_s:dur} (đến {backup_until_ts:time}); "
        "cuộc họp cần {needed_s:dur}, đến {needed_until_ts:time} "
        "(họp xong lúc {ends_at_ts:time}, cộng {margin_pct:n}% dự phòng"
        "{tightened_at_level:at_risk})",
        "mains lost: power left for {backup_s:dur} (to {backup_until_ts:time}); "
        "the meeting needs {needed_s:dur}, to {needed_until_ts:time} "
        "(it ends at {ends_at_ts:time}, plus {margin_pct:n} % margin"
        "{tightened_at_level:at_risk})",
    ),
    "meeting_power_unknown": Text(
        "không xác định được điện dự phòng có đủ {needed_s:dur} cho cuộc họp "
        "(đến {needed_until_ts:time}) không",
        "cannot tell whether power lasts the {needed_s:dur} the meeting needs "
        "(to {needed_until_ts:time})",
    ),
    "meeting_power_ups_only": Text(
        "không có máy phát: chỉ một nguồn là UPS ({backup_s:dur}) cho cuộc họp",
        "no generator: the UPS ({backup_s:dur}) is the meeting's only power source",
    ),
    "meeting_ups_bridge_short": Text(
        "UPS chỉ giữ được {battery_s:dur} trong lúc chờ máy phát, cần {bridge_s:dur}",
        "the UPS bridges only {battery_s:dur} to the generator, {bridge_s:dur} required",
    ),
    "meeting_ups_bridge_unknown": Text(
        "không rõ UPS có giữ được {bridge_s:dur} trong lúc chờ máy phát không",
        "unknown whether the UPS bridges {bridge_s:dur} to the generator",
    ),
    "room_unknown": Text(
        "không có số liệu thiết bị phòng họp",
        "no meeting-room device data",
    ),
    "room_error": Text(
        "không đọc được thiết bị phòng họp: {error}",
        "cannot read the meeting-room devices: {error}",
    ),
    "room_devices_unknown": Text(
        "không rõ trạng thái {unknown:n} thiết bị phòng họp",
        "{unknown:n} meeting-room device(s) in unknown state",
    ),
    "codec_unreachable": Text(
        "không kết nối được bộ codec hội nghị",
        "conference codec unreachable",
    ),
    "codec_not_registered": Text(
        "codec chưa đăng nhập hệ thống hội nghị",
        "codec not signed in to the conferencing service",
    ),
    "camera_fault": Text("camera không hoạt động", "camera not working"),
    "microphone_fault": Text("micrô không hoạt động", "microphone not working"),
    "speaker_fault": Text("loa không hoạt động", "speaker not working"),
    "display_fault": Text("màn hình không hoạt động", "display not working"),
}

CATALOGUE: Mapping[str, Text] = MappingProxyType(_CATALOGUE)

_MEDIA: Mapping[str, Text] = MappingProxyType(
    {
        "fibre": Text("cáp quang", "fibre"),
        "microwave": Text("viba", "microwave"),
        "vsat": Text("VSAT", "VSAT"),
        "cellular": Text("di động", "cellular"),
        "copper": Text("cáp đồng", "copper"),
        "other": Text("đường khác", "other"),
    }
)

# First word of a shared-risk group slug → what the group is. Slugs are ids chosen by
# operators; a known first word gives a readable phrase, anything else is named as is.
_RISKS: Mapping[str, Text] = MappingProxyType(
    {
        "tower": Text("cột", "the same tower"),
        "cot": Text("cột", "the same tower"),
        "mast": Text("cột", "the same tower"),
        "duct": Text("cống cáp", "the same duct"),
        "pole": Text("tuyến cột", "the same pole line"),
        "route": Text("tuyến cáp", "the same cable route"),
        "cable": Text("tuyến cáp", "the same cable route"),
        "fibre": Text("tuyến cáp", "the same cable route"),
        "bridge": Text("cầu", "the same bridge"),
        "upstream": Text("nút mạng phía trên", "the same upstream node"),
        "node": Text("nút mạng phía trên", "the same upstream node"),
        "power": Text("nguồn điện", "the same power feed"),
        "feed": Text("nguồn điện", "the same power feed"),
    }
)


def _number(value: float, lang: Lang) -> str:
    rounded = round(value, 1)
    text = f"{rounded:,.0f}" if rounded == int(rounded) else f"{rounded:,.1f}"
    if lang == "vi":  # Vietnamese swaps the separators: 65.535 and 10,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def floor_tenth(value: float) -> float:
    """``value`` rounded down to one decimal (71.98 → 71.9; 7.3 stays 7.3, not 7.2999…)."""
    return math.floor(round(value * 10, 6)) / 10


def _duration(seconds: float, lang: Lang) -> str:
    vi = lang == "vi"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} giây" if vi else f"{s} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} phút" if vi else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        head = f"{hours} giờ" if vi else f"{hours} h"
        tail = (f" {minutes} phút" if vi else f" {minutes} min") if minutes else ""
        return head + tail
    days, hours = divmod(hours, 24)
    head = f"{days} ngày" if vi else f"{days} d"
    tail = (f" {hours} giờ" if vi else f" {hours} h") if hours else ""
    return head + tail


VIETNAM = timezone(timedelta(hours=7), "ICT")


def _time(epoch_s: float) -> str:
    # to the nearest minute, as the durations beside it are
    return datetime.fromtimestamp(round(epoch_s / 60) * 60, VIETNAM).strftime("%d/%m %H:%M")


# Who a backup target is for ("station:hardened" in a finding's ``target`` label).
_SITES: Mapping[str, Text] = MappingProxyType(
    {
        "station:ordinary": Text("trạm thường", "an ordinary station"),
        "station:hardened": Text("trạm kiên cố", "a hardened station"),
        "station:core": Text("trạm trung tâm", "a core station"),
        "power_room:ordinary": Text("phòng nguồn", "a power room"),
        "power_room:hardened": Text("phòng nguồn kiên cố", "a hardened power room"),
        "power_room:core": Text("phòng nguồn trung tâm", "a core power room"),
        "meeting_point:meeting_point": Text("điểm cầu", "a meeting point"),
    }
)


def _at_risk(level: float | None, lang: Lang) -> str:
    """Where the province's risk level made a threshold stricter (Decision 18/2021/QĐ-TTg)."""
    if level is None:
        return ""
    return (
        f" khi rủi ro thiên tai ở cấp độ {level:.0f}"
        if lang == "vi"
        else f" at risk level {level:.0f}"
    )


def _needs(values: Mapping[str, object], lang: Lang) -> str:
    """{needs}: ", a hardened station needs 72 h[ at risk level 4]", or "" with no target."""
    target = str(values["target"])
    if not target:
        return ""
    site = _SITES.get(target)
    who = target if site is None else site.template(lang)
    required = values["required_h"]
    hours = "?" if required is None else _number(float(str(required)), lang)
    level = values["tightened_at_level"]
    risk = _at_risk(None if level is None else float(str(level)), lang)
    return f", {who} cần {hours} giờ{risk}" if lang == "vi" else f", {who} needs {hours} h{risk}"


# Fields a template may use that are rendered from others (the finding gives those).
_DERIVED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"needs": ("target", "required_h", "tightened_at_level")}
)


def _risk(slug: str, lang: Lang) -> str:
    word = slug.replace("_", "-").replace(".", "-").split("-", 1)[0]
    known = _RISKS.get(word)
    if known is not None:
        return known.template(lang)
    return f"nhóm rủi ro {slug}" if lang == "vi" else f"shared-risk group {slug}"


class _Formatter(string.Formatter):
    def __init__(self, lang: Lang) -> None:
        super().__init__()
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "at_risk":  # a suffix: nothing when no risk level tightened it
            return _at_risk(None if value is None else float(value), self.lang)
        if value is None:
            return "?"
        if format_spec == "n":
            return _number(float(value), self.lang)
        if format_spec == "below":
            return _number(floor_tenth(float(value)), self.lang)
        if format_spec == "dur":
            return _duration(float(value), self.lang)
        if format_spec == "media":
            media = _MEDIA.get(str(value))
            return str(value) if media is None else media.template(self.lang)
        if format_spec == "risk":
            return _risk(str(value), self.lang)
        if format_spec == "time":
            return _time(float(value))
        return str(super().format_field(value, format_spec))


_FORMATTERS: Mapping[Lang, _Formatter] = MappingProxyType(
    {lang: _Formatter(lang) for lang in LANGS}
)


def format_value(value: object, spec: str, lang: Lang) -> str:
    """One value as a template field ``{x:spec}`` renders it in ``lang``."""
    return _FORMATTERS[lang].format_field(value, spec)


@cache
def _fields(code: str) -> frozenset[str]:
    text = CATALOGUE[code]
    names: set[str] = set()
    for lang in LANGS:
        for _, field, _, _ in string.Formatter().parse(text.template(lang)):
            if field:
                names.add(field)
    return frozenset(names)


@cache
def placeholders(code: str) -> frozenset[str]:
    """The numbers and labels a code's texts need, in either language (a derived field
    such as ``{needs}`` counts as the fields it is rendered from)."""
    names: set[str] = set()
    for field in _fields(code):
        names.update(_DERIVED.get(field, (field,)))
    return frozenset(names)


def render(
    code: str,
    lang: Lang,
    numbers: Mapping[str, float | None],
    labels: Mapping[str, str],
) -> str:
    """The text of ``code`` in ``lang``; raises KeyError for an unknown code or field."""
    values: dict[str, object] = {**numbers, **labels}
    if "needs" in _fields(code):
        values["needs"] = _needs(values, lang)
    # What ``_FORMATTERS[lang].format(template, **values)`` returns, without re-parsing
    # the template through string.Formatter's Python-level loop on every evaluation
    # (tests/test_rules_texts.py holds the two equal for every code).
    field = _FORMATTERS[lang].format_field
    parts: list[str] = []
    for literal, name, spec in _compiled(code, lang):
        parts.append(literal)
        if name is not None:
            parts.append(field(values[name], spec))
    return "".join(parts)


@cache
def _compiled(code: str, lang: Lang) -> tuple[tuple[str, str | None, str], ...]:
    """A template as (literal text, field name or None, format spec) pieces. Every field
    of the catalogue is a plain name with a plain spec (no conversion, no nesting)."""
    pieces = []
    for literal, name, spec, conversion in string.Formatter().parse(CATALOGUE[code].template(lang)):
        if name is not None and (not name.isidentifier() or conversion or "{" in (spec or "")):
            raise ValueError(f"{code} ({lang}): field {name!r} is more than a plain name")
        pieces.append((literal, name, spec or ""))
    return tuple(pieces)
