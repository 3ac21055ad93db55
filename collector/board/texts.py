"""Every word the board shows, in Vietnamese and English: one catalogue.

Verdicts, station states and site kinds are the CLI's words (plumbing/labels.py);
reasons carry their own texts (rules/texts.py), numbers and durations are written
as the reasons write them (``rules.texts.format_value``). Vietnamese is the default;
``?lang=en`` (remembered in a cookie) switches.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from plumbing.labels import KINDS, STATION_STATES, VERDICTS, Lang, label, local_time
from rules.texts import format_value

__all__ = [
    "LANGS",
    "UI",
    "duration",
    "media",
    "number",
    "since_when",
    "text",
    "when",
    "when_s",
    "word",
]

LANGS: tuple[Lang, ...] = ("vi", "en")

UI: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        # the frame
        "app": ("kienco — bảng sẵn sàng", "kienco — readiness board"),
        "nav_overview": ("Tổng quan", "Overview"),
        "nav_meetings": ("Cuộc họp", "Meetings"),
        "nav_compliance": ("Tuân thủ", "Compliance"),
        "nav_risk": ("Cấp độ rủi ro", "Risk levels"),
        "switch_lang": ("English", "Tiếng Việt"),
        "times_note": ("Giờ hiển thị là giờ Việt Nam (UTC+7).", "Times are Vietnam time (UTC+7)."),
        "signed_in_as": ("Đăng nhập: {name} ({role})", "Signed in: {name} ({role})"),
        "logout": ("Đăng xuất", "Sign out"),
        "live_note": (
            "Tự cập nhật khi có thay đổi; không có JavaScript thì tải lại trang.",
            "Updates itself on every change; without JavaScript, reload the page.",
        ),
        "updated_at": ("Cập nhật {at}", "Updated {at}"),
        "skip": ("Tới nội dung", "Skip to content"),
        # the collector's own problems (collector/board/trust.py): what, since when, what it means
        # The silence sweep runs on: past its stale window each site reads "no report",
        # which is the collector not hearing, not (yet) the site gone quiet.
        "trust_broker_disconnected": (
            "Collector mất kết nối tới broker MQTT từ {since} — không báo cáo nào tới được: các "
            "trạng thái dưới đây là của trước lúc đó, và mỗi điểm sẽ hiện «không có báo cáo» khi "
            "quá hạn của nó — đó là collector không nghe được, chưa chắc điểm đã mất liên lạc.",
            "The collector has been disconnected from its MQTT broker since {since} — no report "
            "reaches it: the states below are as of then, and each site will read «no report» "
            "once its stale window passes — the collector cannot hear, the site may be fine.",
        ),
        "trust_stopping": (
            "Collector đang dừng từ {since} — các trạng thái dưới đây đứng yên cho tới khi nó "
            "chạy lại.",
            "The collector has been stopping since {since} — the states below are frozen until "
            "it runs again.",
        ),
        "trust_reports_late": (
            "Báo cáo của {provinces} tới chậm từ {since} — collector đang đọc tồn đọng sau khi "
            "cầu nối hoặc collector mất kết nối: các điểm dưới đây có thể hiện im lặng hoặc "
            "trạng thái cũ cho tới khi đọc hết.",
            "Reports from {provinces} have arrived late since {since} — the collector is working "
            "off a backlog after a bridge or collector outage: sites below may look silent or "
            "show an old state until it is read.",
        ),
        "trust_influx_unreachable": (
            "InfluxDB không nhận ghi từ {since} — biểu đồ và lịch sử dừng ở lúc đó; số liệu được "
            "lưu tạm trên đĩa của collector, không mất, và được ghi khi InfluxDB trở lại. Các "
            "trạng thái dưới đây vẫn được cập nhật.",
            "InfluxDB has not taken writes since {since} — charts and history stop there; the "
            "readings are kept on the collector's disk, nothing is lost, and they are written "
            "once InfluxDB is back. The states below are still current.",
        ),
        "trust_thread_dead": (
            "Luồng {thread} của collector đã dừng (nhịp cuối lúc {since}) — {means}",
            "The collector's {thread} thread has died (its last heartbeat at {since}) — {means}",
        ),
        "trust_thread_stuck": (
            "Luồng {thread} của collector bị treo từ {since} — {means}",
            "The collector's {thread} thread has been stuck since {since} — {means}",
        ),
        "trust_means_mqtt": (
            "không báo cáo nào được đọc: các trạng thái dưới đây là của trước lúc đó, và mỗi "
            "điểm sẽ hiện «không có báo cáo» khi quá hạn của nó — collector không nghe được.",
            "no report is read: the states below are as of then, and each site will read «no "
            "report» once its stale window passes — the collector cannot hear.",
        ),
        "trust_means_writer": (
            "báo cáo không được lưu: biểu đồ và lịch sử dừng lại, các trạng thái dưới đây có "
            "thể chậm dần.",
            "reports are not stored: charts and history stop, and the states below may fall "
            "behind.",
        ),
        "trust_means_staleness": (
            "điểm ngừng báo cáo không bị đánh dấu im lặng: một điểm dưới đây có thể đã mất liên "
            "lạc mà vẫn hiện trạng thái cũ.",
            "sites that stop reporting are not marked silent: a site below may have gone quiet "
            "and still show its last state.",
        ),
        "trust_means_other": (
            "các trạng thái dưới đây có thể không còn đúng.",
            "the states below may not be current.",
        ),
        "trust_other": (
            "Collector báo sự cố {code} từ {since} — các trạng thái dưới đây có thể không còn "
            "đúng.",
            "The collector reports a problem ({code}) since {since} — the states below may not "
            "be current.",
        ),
        "trust_details": ("Chi tiết cho người vận hành:", "Details for operators:"),
        # the browser's own (collector/board/static/board.js fills {at}, HH:MM:SS Vietnam time)
        "lost_contact": (
            "Mất kết nối tới kienco từ {at} — trang có thể đã cũ",
            "Lost contact with kienco since {at} — this page may be out of date",
        ),
        # shown in both languages, the page's first (whoever walks up to a wall screen)
        "signed_out": (
            "Phiên đăng nhập đã hết, trang dừng cập nhật từ {at} —",
            "Your session has ended, this page stopped updating at {at} —",
        ),
        "sign_in_again": ("đăng nhập lại", "sign in again"),
        # login
        "login_title": ("Đăng nhập", "Sign in"),
        "login_token": ("Mã truy cập", "Access token"),
        "login_button": ("Đăng nhập", "Sign in"),
        "login_help": (
            "Dùng mã do quản trị viên cấp (kienco token new).",
            "Use the token your administrator gave you (kienco token new).",
        ),
        "login_failed": ("Mã truy cập không đúng.", "That token is not one this collector knows."),
        # overview
        "overview_title": ("Tổng quan theo tỉnh", "Overview by province"),
        "province": ("Tỉnh", "Province"),
        "points_ready": ("Điểm cầu sẵn sàng", "Meeting points ready"),
        "on_battery": ("Trạm chạy ắc quy", "Stations on battery"),
        "on_generator": ("Trạm chạy máy phát", "Stations on generator"),
        "dark": ("Trạm mất nguồn", "Stations dark"),
        "dark_soon": ("Trạm sẽ mất nguồn trong 2 giờ", "Stations dark within 2 h"),
        "silent_stations": ("Trạm không rõ (mất liên lạc)", "Stations not known (silent)"),
        "cut_off": ("Trạm mất truyền dẫn (còn điện)", "Stations cut off from transport"),
        "rooms_dark": ("Phòng nguồn mất nguồn", "Power rooms dark"),
        "rooms_on_backup": (
            "Phòng nguồn chạy ắc quy/máy phát",
            "Power rooms on battery or generator",
        ),
        "rooms_dark_soon": ("({n} sẽ mất nguồn trong 2 giờ)", "({n} dark within 2 h)"),
        "rooms_silent": ("Phòng nguồn không rõ (mất liên lạc)", "Power rooms not known (silent)"),
        "risk_level": ("Cấp độ rủi ro", "Risk level"),
        "risk_none": ("0 (chưa công bố)", "0 (none declared)"),
        "stations_of": ("trên {n} trạm", "of {n} stations"),
        "no_sites": ("Chưa có điểm nào báo cáo.", "No site has reported yet."),
        "worst_first": ("Tỉnh xấu nhất ở trên.", "Worst province first."),
        # province
        "province_title": ("Tỉnh {province}", "Province {province}"),
        "site": ("Điểm", "Site"),
        "kind": ("Loại", "Kind"),
        "verdict": ("Đánh giá", "Verdict"),
        "state": ("Trạng thái nguồn/truyền dẫn", "Power / transport"),
        "dark_in": ("Mất nguồn sau", "Dark in"),
        "dark_at": ("lúc {at}", "at {at}"),
        "paths_up": ("Đường truyền lên", "Paths up"),
        "paths_of": ("{up}/{declared}", "{up} of {declared}"),
        "reasons": ("Lý do", "Reasons"),
        "all": ("Tất cả", "All"),
        "filter": ("Lọc", "Filter"),
        "shown_of": ("{shown}/{total} điểm", "{shown} of {total} sites"),
        "counts": (
            "{ready} sẵn sàng, {degraded} suy giảm, {not_ready} chưa sẵn sàng, {unknown} không rõ",
            "{ready} ready, {degraded} degraded, {not_ready} not ready, {unknown} unknown",
        ),
        "show_all": (
            "Đang hiện {shown}/{total} — hiện tất cả",
            "Showing {shown} of {total} — show all",
        ),
        "nothing_selected": ("Không có điểm nào khớp bộ lọc.", "No site matches the filter."),
        "compliance_link": ("Báo cáo tuân thủ", "Compliance report"),
        "meetings_link": ("Cuộc họp của tỉnh", "The province's meetings"),
        "risk_link": ("Cấp độ rủi ro", "Risk level"),
        # site
        "site_title": ("{name}", "{name}"),
        "last_report": ("Báo cáo gần nhất", "Last report"),
        "never": ("chưa có", "none yet"),
        "judged_at": (
            "Đánh giá lúc {at}, cấp độ rủi ro {level}",
            "Judged at {at}, risk level {level}",
        ),
        "backup_hours": ("Điện dự phòng", "Backup power"),
        "independent_paths": ("Đường độc lập đang lên", "Independent paths up"),
        "devices": ("Thiết bị", "Devices"),
        "device": ("Thiết bị", "Device"),
        "role": ("Vai trò", "Role"),
        "reading": ("Số đo", "Reading"),
        "no_devices": ("Không khai báo thiết bị.", "No device declared."),
        "paths": ("Đường truyền", "Paths"),
        "path": ("Đường", "Path"),
        "media": ("Môi trường", "Media"),
        "provider": ("Nhà mạng", "Provider"),
        "up": ("lên", "up"),
        "down": ("mất", "down"),
        "rtt": ("Trễ", "RTT"),
        "jitter": ("Rung pha", "Jitter"),
        "loss": ("Mất gói", "Loss"),
        "bandwidth": ("Băng thông ↓/↑", "Bandwidth ↓/↑"),
        "no_paths": ("Không khai báo đường truyền.", "No path declared."),
        "charts": ("{hours} giờ qua", "The last {hours} hours"),
        "chart_autonomy": ("Điện dự phòng (giờ)", "Backup power (hours)"),
        "chart_rtt": ("Độ trễ (ms) theo đường", "Round-trip time (ms) by path"),
        "chart_loss": ("Mất gói (%) theo đường", "Packet loss (%) by path"),
        "chart_none": ("Chưa có số liệu.", "No data yet."),
        "history_off": (
            "Không có lịch sử: collector này không ghi InfluxDB.",
            "No history: this collector writes no InfluxDB.",
        ),
        "history_down": (
            "Không đọc được lịch sử từ InfluxDB lúc này.",
            "The history cannot be read from InfluxDB now.",
        ),
        "on_mains": ("điện lưới", "mains"),
        "battery": ("dung lượng ắc quy {pct}", "battery charge {pct}"),
        "running_on_battery": ("đang chạy ắc quy", "running on battery"),
        "path_state": ("Trạng thái", "State"),
        "runtime": ("còn {dur}", "{dur} left"),
        "generator_running": ("máy phát chạy", "generator running"),
        "fuel": ("nhiên liệu {pct}", "fuel {pct}"),
        "load": ("tải {pct}", "load {pct}"),
        "error": ("lỗi: {text}", "error: {text}"),
        "unknown_value": ("không rõ", "unknown"),
        # meetings
        "meetings_title": ("Cuộc họp", "Meetings"),
        "plan_title": ("Lên lịch cuộc họp", "Plan a meeting"),
        "title": ("Tên cuộc họp", "Title"),
        "starts_at": ("Bắt đầu (giờ Việt Nam)", "Starts (Vietnam time)"),
        "duration_h": ("Thời lượng (giờ)", "Duration (hours)"),
        "points": ("Điểm cầu", "Meeting points"),
        "points_help": (
            "Mã các điểm, cách nhau bởi dấu cách hoặc dấu phẩy; để trống: mọi điểm cầu của tỉnh.",
            "Site ids, separated by spaces or commas; empty: every meeting point of the province.",
        ),
        "plan_button": ("Lên lịch", "Plan"),
        "no_meetings": ("Chưa có cuộc họp nào.", "No meeting planned."),
        "meeting": ("Cuộc họp", "Meeting"),
        "starts": ("Bắt đầu", "Starts"),
        "ends": ("Kết thúc", "Ends"),
        "duration": ("Thời lượng", "Duration"),
        "starts_in": ("Bắt đầu sau {dur}", "Starts in {dur}"),
        "started_ago": ("Đã bắt đầu {dur} trước", "Started {dur} ago"),
        "ended": ("Đã kết thúc", "Ended"),
        "ready_of": (
            "{ready}/{total} điểm sẵn sàng cho cuộc họp này",
            "{ready} of {total} points ready for this meeting",
        ),
        "unready": ("Điểm chưa sẵn sàng và lý do", "Points not ready, and why"),
        "all_ready": ("Mọi điểm đều sẵn sàng.", "Every point is ready."),
        "ready_points": ("Điểm sẵn sàng", "Points ready"),
        "rehearse_button": ("Diễn tập ngay", "Rehearse now"),
        "rehearse_help": (
            "Mọi điểm chạy kiểm tra trước cuộc họp (đường truyền, chất lượng, thiết bị phòng họp).",
            "Every point runs its pre-meeting check (paths, link quality, room devices).",
        ),
        "rehearsal_asked": ("Đã yêu cầu {n} điểm diễn tập.", "{n} points asked to rehearse."),
        "rehearsals": ("Kết quả diễn tập", "Rehearsal results"),
        "rehearsal_at": ("Lúc", "At"),
        "rehearsal_result": ("Kết quả", "Result"),
        "passed": ("đạt", "passed"),
        "failed": ("không đạt", "failed"),
        "no_rehearsal": ("chưa diễn tập", "not rehearsed"),
        "problems": ("Vấn đề", "Problems"),
        "created_by": ("Người lập: {who}", "Planned by {who}"),
        # compliance
        "compliance_title": (
            "Tuân thủ trạm kiên cố — {province}",
            "Hardened-station compliance — {province}",
        ),
        "download_csv": ("Tải CSV", "Download CSV"),
        "download_pdf": ("Tải PDF", "Download PDF"),
        "area_level": ("Theo", "By"),
        "level_area": ("địa bàn", "area"),
        "level_province": ("tỉnh", "province"),
        "choose_province": ("Chọn tỉnh", "Choose a province"),
        "pdf_font_missing": (
            "Thiếu phông chữ tiếng Việt cho PDF trên máy chủ: {fix}",
            "The server lacks a Vietnamese font for the PDF: {fix}",
        ),
        # risk
        "risk_title": ("Cấp độ rủi ro thiên tai", "Disaster risk levels"),
        "risk_province_title": ("Cấp độ rủi ro — {province}", "Risk level — {province}"),
        "risk_basis": (
            "Theo Quyết định 18/2021/QĐ-TTg, cấp 1–5; ngưỡng chặt hơn khi cấp độ tăng.",
            "Decision 18/2021/QĐ-TTg, levels 1–5; thresholds tighten as the level rises.",
        ),
        "level": ("Cấp độ", "Level"),
        "set_by": ("Người đặt", "Set by"),
        "set_at": ("Lúc", "When"),
        "reason": ("Lý do", "Reason"),
        "set_level": ("Đặt cấp độ", "Set the level"),
        "set_button": ("Đặt", "Set"),
        "no_history": ("Chưa từng đặt cấp độ.", "No level has been set."),
        "admins_only": ("Chỉ quản trị viên (admin) đặt cấp độ.", "Only admins set the level."),
        # errors
        "not_found": ("Không tìm thấy.", "Not found."),
        "refused": ("Không được phép.", "Not allowed."),
        "bad_request": ("Yêu cầu không hợp lệ.", "Invalid request."),
        "back": ("Quay lại", "Back"),
    }
)


def text(key: str, lang: Lang, **values: object) -> str:
    """The catalogue's text for ``key`` in ``lang``, its ``{fields}`` filled."""
    vi, en = UI[key]
    template = vi if lang == "vi" else en
    return template.format(**values) if values else template


def word(kind: str, key: str | None, lang: Lang) -> str:
    """A verdict, station state or site kind as people read it (the CLI's words)."""
    table = {"verdict": VERDICTS, "state": STATION_STATES, "kind": KINDS}[kind]
    return label(table, key, lang)


def duration(seconds: float | None, lang: Lang) -> str:
    return "—" if seconds is None else format_value(seconds, "dur", lang)


def number(value: float | None, lang: Lang) -> str:
    return "—" if value is None else format_value(value, "n", lang)


def when(at: datetime | None, fmt: str = "%d/%m %H:%M") -> str:
    """A UTC time in Vietnam time."""
    return "—" if at is None else local_time(at, fmt)


def since_when(at: datetime | None, now: datetime) -> str:
    """A start in Vietnam time: its hour and minute, with its day when not today's."""
    if at is None:
        return "—"
    same_day = local_time(at, "%Y%m%d") == local_time(now, "%Y%m%d")
    return local_time(at, "%H:%M" if same_day else "%d/%m %H:%M")


def when_s(epoch_s: float, fmt: str = "%H:%M") -> str:
    """Epoch seconds in Vietnam time."""
    return local_time(datetime.fromtimestamp(epoch_s, UTC), fmt)


def media(value: str, lang: Lang) -> str:
    """A path's medium in words (fibre, microwave, ...), as the reasons say it."""
    return format_value(value, "media", lang)
