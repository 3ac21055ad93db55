"""The hardened-station compliance report as a table, a CSV and a PDF to sign off.

``render_table`` prints to a terminal (rich); ``render_csv`` writes one row per
station, UTF-8 with a BOM so that Excel shows Vietnamese; ``render_pdf`` writes an
A4 document in Vietnamese (or English): page one has the date, the policy and the
summary, then one section per area, then the signature block. The PDF needs a TTF
font with Vietnamese glyphs: Debian's ``fonts-dejavu-core``.

Names, area names and operators come from agents and the inventory: each reaches
its sink through ``plumbing.untrusted`` (``terminal``, ``csv_cell``, ``pdf``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from plumbing.labels import LOCAL_TZ, Lang, local_time
from plumbing.untrusted import csv_cell, one_line, pdf, terminal
from rules.compliance import AreaCompliance, ComplianceReport, StationCompliance
from rules.texts import floor_tenth

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_PACKAGE = "fonts-dejavu-core"
T: dict[str, tuple[str, str]] = {  # key: (vi, en)
    "title": ("BÁO CÁO TUÂN THỦ TIÊU CHUẨN TRẠM KIÊN CỐ", "HARDENED-STATION COMPLIANCE REPORT"),
    "province": ("Tỉnh/thành phố", "Province"),
    "at": ("Thời điểm đánh giá", "Assessed at"),
    "tz": ("giờ Việt Nam", "Vietnam time"),
    "policy": ("Chính sách áp dụng", "Policy used"),
    "rule_count": (
        "Mỗi {unit} cần ít nhất {n} trạm kiên cố đạt chuẩn",
        "{n} compliant hardened stations required per {unit}",
    ),
    "rule_power": (
        "Điện dự phòng (ắc quy + máy phát) ít nhất {h} giờ",
        "Backup power (battery + generator) at least {h} h",
    ),
    "rule_paths": (
        "Có đường cáp quang và tổng cộng ít nhất {n} đường truyền độc lập (không chung rủi ro)",
        "A fibre path and at least {n} independent paths in all (no shared risk)",
    ),
    "rule_silent": (
        "Mất liên lạc: không có báo cáo trong {n} chu kỳ",
        "Silent: no report for {n} intervals",
    ),
    "rule_carriers": (
        "Mỗi {unit} có ít nhất {n} nhà mạng đang hoạt động (trên đường truyền các trạm "
        "của {unit} đang báo cáo)",
        "At least {n} carriers per {unit}, seen up now (on the paths its sites report)",
    ),
    "summary": ("Tóm tắt", "Summary"),
    "areas_ok": ("Địa bàn đạt yêu cầu", "Areas meeting the requirement"),
    "areas_bad": ("Địa bàn chưa đạt", "Areas not meeting it"),
    "declared": ("Trạm kiên cố khai báo", "Hardened stations declared"),
    "compliant": ("Đạt chuẩn", "Compliant"),
    "non_compliant": ("Không đạt", "Not compliant"),
    "never": ("Chưa từng báo cáo", "Never reported"),
    "silent": ("Mất liên lạc", "Silent"),
    "missing": ("Còn thiếu so với yêu cầu", "Missing against the requirement"),
    "carriers": ("Nhà mạng đang hoạt động", "Carriers seen up"),
    "carriers_count": ("{names} ({n}/{req})", "{names} ({n}/{req})"),
    "inventory_only": ("Chỉ có trong danh mục", "Only in the inventory"),
    "inventory_only_line": ("chỉ có trong danh mục: {names}", "only in the inventory: {names}"),
    "unnamed_line": (
        "{n} đường truyền đang hoạt động không ghi nhà mạng (khai báo provider trong cấu hình "
        "đường truyền của trạm)",
        "{n} path(s) up name no carrier (set provider in the site's path config)",
    ),
    "operator": ("Nhà mạng", "Carrier"),
    "why_stations": ("thiếu {n} trạm đạt chuẩn", "{n} compliant station(s) missing"),
    "why_carriers": (
        "chỉ {n} nhà mạng đang hoạt động, cần {req}",
        "only {n} carrier(s) seen up, {req} required",
    ),
    "unlisted": ("Trạm báo cáo nhưng ngoài danh mục", "Reporting sites not in the inventory"),
    "area": ("Địa bàn", "Area"),
    "site": ("Mã trạm", "Site"),
    "name": ("Tên trạm", "Name"),
    "result": ("Kết quả", "Result"),
    "criteria": ("Tiêu chí không đạt", "Failed criteria"),
    "meets": ("ĐẠT", "MEETS"),
    "fails": ("KHÔNG ĐẠT", "DOES NOT MEET"),
    "area_line": (
        "{ok}/{req} trạm đạt chuẩn, thiếu {missing}; nhà mạng đang hoạt động: {carriers}",
        "{ok}/{req} compliant, {missing} missing; carriers seen up: {carriers}",
    ),
    "none": ("không có", "none"),
    "page": ("Trang {n}/{total}", "Page {n} of {total}"),
    "place_date": ("{place}, ngày {d} tháng {m} năm {y}", "{place}, {d}/{m}/{y}"),
    "maker": ("NGƯỜI LẬP BÁO CÁO", "PREPARED BY"),
    "approver": ("LÃNH ĐẠO PHÊ DUYỆT", "APPROVED BY"),
    "sign": ("(Ký, ghi rõ họ tên)", "(signature and full name)"),
    "unit_area": ("địa bàn (huyện/xã)", "area (district/commune)"),
    "unit_province": ("tỉnh/thành phố", "province"),
}
STATUS: dict[str, tuple[str, str]] = {
    "compliant": ("đạt", "compliant"),
    "non_compliant": ("không đạt", "not compliant"),
    "unknown": ("chưa báo cáo", "never reported"),
}
CSV_COLUMNS = (
    "province", "area", "area_name", "site", "name", "operator", "in_inventory",
    "declared_hardened", "status", "status_text", "failed_codes", "failed_texts",
    "autonomy_h", "independent_paths", "last_report_at",
)  # fmt: skip


class FontMissing(RuntimeError):
    """The PDF font is not installed; the message says how to install it."""


def local_iso(at: datetime) -> str:
    """An ISO 8601 time in Vietnam time, with its +07:00 offset."""
    return at.astimezone(LOCAL_TZ).isoformat()


def t(key: str, lang: Lang, **values: object) -> str:
    vi, en = T[key]
    return (vi if lang == "vi" else en).format(**values)


def status_text(station: StationCompliance, lang: Lang) -> str:
    vi, en = STATUS[station.status]
    return vi if lang == "vi" else en


def criteria_text(station: StationCompliance, lang: Lang, sep: str = "; ") -> str:
    return sep.join(c.text(lang) for c in station.failed)


def carriers_text(area: AreaCompliance, lang: Lang, sep: str = "; ") -> str:
    """The carriers seen up against the target, then those only in the inventory."""
    names = ", ".join(area.carriers_up) or t("none", lang)
    text = t("carriers_count", lang, names=names, n=len(area.carriers_up),
             req=area.required_carriers)  # fmt: skip
    if area.carriers_inventory_only:
        only = ", ".join(area.carriers_inventory_only)
        text += sep + t("inventory_only_line", lang, names=only)
    if area.paths_up_unnamed:
        text += sep + t("unnamed_line", lang, n=area.paths_up_unnamed)
    return text


def why_text(area: AreaCompliance, lang: Lang) -> str:
    """What an area lacks: compliant stations, carriers seen up, or both ("" if none)."""
    why = []
    if not area.stations_meet:
        why.append(t("why_stations", lang, n=area.missing))
    if not area.carriers_ok:
        why.append(t("why_carriers", lang, n=len(area.carriers_up), req=area.required_carriers))
    return "; ".join(why)


def verdict_text(area: AreaCompliance, lang: Lang) -> str:
    """MEETS, or DOES NOT MEET with what it lacks."""
    if area.meets:
        return t("meets", lang)
    return f"{t('fails', lang)}: {why_text(area, lang)}"


def _area_title(area: AreaCompliance) -> str:
    return f"{area.area_name} ({area.area})" if area.area_name else area.area


def _unit(report: ComplianceReport, lang: Lang) -> str:
    return t("unit_" + report.settings.area_level, lang)


def _place(report: ComplianceReport) -> str:
    return report.province_name or report.province


def _n(value: float) -> str:
    return f"{value:g}"


# --- table


def render_table(report: ComplianceReport, out: IO[str], *, lang: Lang = "vi") -> None:
    """The report as terminal tables: one row per area, then the stations that fail."""
    console = Console(file=out, width=160 if not out.isatty() else None)
    areas = RichTable(title=terminal(f"{t('title', lang)} — {_place(report)}"), expand=True)
    for key in ("area", "declared", "compliant", "non_compliant", "never", "missing", "carriers"):
        areas.add_column(t(key, lang), overflow="fold")
    areas.add_column(t("result", lang))
    for a in report.areas:
        areas.add_row(
            terminal(_area_title(a)), str(a.declared), str(a.compliant), str(a.non_compliant),
            str(a.never_reported), str(a.missing), terminal(carriers_text(a, lang, "\n")),
            Text(verdict_text(a, lang), style="green" if a.meets else "bold red"),
        )  # fmt: skip
    console.print(areas)
    failing = [s for s in report.stations if s.status != "compliant"] + list(report.unlisted)
    if failing:
        stations = RichTable(expand=True)
        for key in ("site", "name", "area", "operator", "result", "criteria"):
            stations.add_column(t(key, lang), overflow="fold")
        for s in failing:
            stations.add_row(
                terminal(s.site), terminal(s.name), terminal(s.area_name or s.area),
                terminal(s.operator or "—"), status_text(s, lang),
                Text("\n").join(terminal(c.text(lang)) for c in s.failed),
            )  # fmt: skip
        console.print(stations)
    for line in _summary(report, lang):
        console.print(terminal(f"{line[0]}: {line[1]}"))


def _summary(report: ComplianceReport, lang: Lang) -> list[tuple[str, str]]:
    bad = [f"{_area_title(a)}: {why_text(a, lang)}" for a in report.areas if not a.meets]
    carriers = report.carriers_up
    only = [c for c in report.carriers if c not in carriers]
    return [
        (t("areas_ok", lang), f"{report.areas_meeting}/{len(report.areas)}"),
        (t("areas_bad", lang), " · ".join(bad) or t("none", lang)),
        (t("declared", lang), str(report.total("declared"))),
        (t("compliant", lang), str(report.total("compliant"))),
        (t("non_compliant", lang), str(report.total("non_compliant"))),
        (t("silent", lang), str(report.silent)),
        (t("never", lang), str(report.never_reported)),
        (t("missing", lang), str(report.total("missing"))),
        (t("carriers", lang), f"{len(carriers)}: {', '.join(carriers) or t('none', lang)}"),
        (t("inventory_only", lang), ", ".join(only) or t("none", lang)),
        (t("unlisted", lang), str(len(report.unlisted))),
    ]


# --- CSV


def render_csv(report: ComplianceReport, out: IO[bytes], *, lang: Lang = "vi") -> None:
    """One row per station (unlisted sites last); UTF-8 with BOM, for Excel.

    Every text cell goes through ``csv_cell``: none can start a formula.
    """
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for s in (*report.stations, *report.unlisted):
        cells = [
            s.province, s.area, s.area_name, s.site, s.name, s.operator,
            str(s.in_inventory).lower(), str(s.declared_hardened).lower(), s.status,
            status_text(s, lang), ";".join(s.codes), criteria_text(s, lang, " | "),
        ]  # fmt: skip
        writer.writerow(
            [
                *(csv_cell(cell) for cell in cells),
                # rounded down: a station short of the hours never reads as having them
                "" if s.autonomy_h is None else f"{floor_tenth(s.autonomy_h):.1f}",
                "" if s.independent_paths is None else s.independent_paths,
                # Vietnam time with its offset: what the reader's clock says, still ISO 8601
                "" if s.last_report_at is None else local_iso(s.last_report_at),
            ]
        )
    text.flush()
    text.detach()  # leave ``out`` open: it belongs to the caller


# --- PDF


def _fonts(font_dir: Path) -> tuple[str, str]:
    names = ("DejaVuSans", "DejaVuSans-Bold")
    for name in names:
        path = font_dir / f"{name}.ttf"
        if not path.is_file():
            raise FontMissing(
                f"the PDF needs {path} (Vietnamese glyphs). "
                f"Install it: sudo apt-get install -y {FONT_PACKAGE}"
            )
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(path)))
    return names


class _NumberedCanvas(Canvas):
    """A canvas that writes "page n of total" on every page once the total is known."""

    def __init__(self, *args: Any, footer: str = "", page_lang: Lang = "vi", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []
        self._page_footer, self._page_lang = footer, page_lang

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()  # type: ignore[attr-defined]  # reportlab has it; its stubs do not

    def save(self) -> None:
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self.setFont("DejaVuSans", 8)
            page = t("page", self._page_lang, n=number, total=len(self._pages))
            self.drawString(18 * mm, 10 * mm, self._page_footer)
            self.drawRightString(A4[0] - 18 * mm, 10 * mm, page)
            super().showPage()
        super().save()


def _grid(
    rows: Sequence[list[Any]], widths: Sequence[float], bold: str, *, header: bool = True
) -> Table:
    table = Table(list(rows), colWidths=list(widths), repeatRows=1 if header else 0)
    style: list[tuple[Any, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), bold.removesuffix("-Bold")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
    ]
    if header:
        style += [
            ("FONTNAME", (0, 0), (-1, 0), bold),
            ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
        ]
    table.setStyle(style)
    return table


def render_pdf(
    report: ComplianceReport, out: IO[bytes], *, lang: Lang = "vi", font_dir: Path = FONT_DIR
) -> None:
    """An A4 document to print and sign: summary on page one, one section per area."""
    regular, bold = _fonts(font_dir)
    body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=13)
    small = ParagraphStyle("small", parent=body, fontSize=9, leading=11)
    head = ParagraphStyle(
        "head", parent=body, fontName=bold, fontSize=12, leading=16, keepWithNext=1
    )
    title = ParagraphStyle("title", parent=head, fontSize=14, alignment=1, spaceAfter=6)
    s = report.settings
    unit, place = _unit(report, lang), _place(report)
    when = local_time(report.generated_at, "%d/%m/%Y %H:%M")

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(pdf(text), style)

    story: list[Flowable] = [
        p(t("title", lang), title),
        p(f"{t('province', lang)}: {place} ({report.province})", head),
        p(f"{t('at', lang)}: {when} ({t('tz', lang)})"),
        p(f"{t('policy', lang)}: {s.source}"),
    ]
    rules = [
        t("rule_count", lang, unit=unit, n=s.required_per_area),
        t("rule_power", lang, h=_n(s.min_autonomy_h)),
        t("rule_paths", lang, n=s.required_independent_paths),
        t("rule_silent", lang, n=_n(s.stale_intervals)),
        t("rule_carriers", lang, unit=unit, n=s.required_carriers),
    ]
    story += [p(f"• {rule}", small) for rule in rules]
    story += [Spacer(1, 4 * mm), p(t("summary", lang), head)]
    summary = [[p(k, small), p(v, small)] for k, v in _summary(report, lang)]
    story.append(_grid(summary, (75 * mm, 99 * mm), bold, header=False))
    for number, area in enumerate(report.areas, start=1):
        verdict = verdict_text(area, lang)
        line = t("area_line", lang, ok=area.compliant, req=area.required,
                 missing=area.missing, carriers=carriers_text(area, lang))  # fmt: skip
        story += [
            Spacer(1, 5 * mm),
            p(f"{number}. {_area_title(area)} — {verdict}", head),
            p(line),
            Spacer(1, 2 * mm),
            _stations(area.stations, lang, p, small, bold),
        ]
    if report.unlisted:
        story += [Spacer(1, 5 * mm), p(t("unlisted", lang), head)]
        story.append(_stations(report.unlisted, lang, p, small, bold))
    story.append(Spacer(1, 10 * mm))
    story.append(KeepTogether(_signature(report, lang, p, head, small)))
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
        topMargin=16 * mm, bottomMargin=18 * mm, title=t("title", lang), author="kienco", lang=lang,
    )  # fmt: skip
    footer = one_line(f"{t('title', lang).capitalize()} — {place} — {when}")  # canvas: no markup
    doc.build(story, canvasmaker=partial(_NumberedCanvas, footer=footer, page_lang=lang))


def _stations(
    stations: Sequence[StationCompliance], lang: Lang, p: Any, small: ParagraphStyle, bold: str
) -> Table:
    heads: list[object] = [t(k, lang) for k in ("site", "name", "operator", "result", "criteria")]
    rows: list[list[object]] = [heads]
    for st in stations:
        crit = "<br/>".join(pdf(f"• {c.text(lang)}") for c in st.failed) or "—"
        rows.append(
            [p(st.site, small), p(st.name or "", small), p(st.operator or "—", small),
             p(status_text(st, lang), small), Paragraph(crit, small)]
        )  # fmt: skip
    if not stations:
        rows.append([p(t("none", lang), small), "", "", "", ""])
    return _grid(rows, (24 * mm, 34 * mm, 20 * mm, 26 * mm, 70 * mm), bold)


def _signature(
    report: ComplianceReport, lang: Lang, p: Any, head: ParagraphStyle, small: ParagraphStyle
) -> list[Flowable]:
    local = report.generated_at.astimezone(LOCAL_TZ)
    date = t("place_date", lang, place=_place(report), d=f"{local.day:02d}",
             m=f"{local.month:02d}", y=local.year)  # fmt: skip
    centred = ParagraphStyle("c", parent=head, alignment=1)
    note = ParagraphStyle("n", parent=small, alignment=1)
    block = Table(
        [
            ["", p(date, note)],
            [p(t("maker", lang), centred), p(t("approver", lang), centred)],
            [p(t("sign", lang), note), p(t("sign", lang), note)],
            ["", ""],
        ],
        colWidths=(87 * mm, 87 * mm),
        rowHeights=(8 * mm, 8 * mm, 6 * mm, 28 * mm),
    )
    return [block]
