"""The compliance report rendered: a terminal table, a CSV for Excel, a PDF read page by page."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from collector.compliance_report import (
    CSV_COLUMNS,
    FontMissing,
    render_csv,
    render_pdf,
    render_table,
)
from collector.inventory import Inventory
from rules.compliance import ComplianceReport, StationCompliance, build_report
from rules.compliance_policy import CompliancePolicy
from tests.test_compliance import (
    CELL_UP,
    FIBRE_UP,
    MW_UP,
    NOW,
    POLICY,
    item,
    report,
    station,
)


def _pdf_pages(got: ComplianceReport, lang: str = "vi") -> list[str]:
    out = io.BytesIO()
    render_pdf(got, out, lang=lang)  # type: ignore[arg-type]
    assert out.getvalue().startswith(b"%PDF")
    return [" ".join(page.extract_text().split()) for page in PdfReader(out).pages]


# --- CSV


def test_csv_one_row_per_station_with_bom_for_excel() -> None:
    got = report()
    out = io.BytesIO()
    render_csv(got, out)
    data = out.getvalue()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = [*got.stations, *got.unlisted]
    assert [(r["site"], r["status"], r["failed_codes"]) for r in rows] == [
        (s.site, s.status, ";".join(s.codes)) for s in expected
    ]
    by_site = {r["site"]: r for r in rows}
    short = by_site["hp-0003"]
    assert (short["area"], short["area_name"], short["status_text"]) == (
        "an-duong",
        "Huyện An Dương",
        "không đạt",
    )
    assert short["failed_texts"] == (
        "điện dự phòng (ắc quy + máy phát) chỉ đủ 14 giờ (máy phát 10 giờ), cần 72 giờ"
    )
    assert (short["autonomy_h"], short["independent_paths"]) == ("14.0", "2")
    # Vietnam time, with its offset: 05:59:30 UTC read as the morning, 7 h off, in Excel
    assert short["last_report_at"] == "2024-09-07T12:59:30+07:00"
    assert by_site["hp-0201"]["last_report_at"] == "" and by_site["hp-0201"]["status"] == "unknown"
    unlisted = by_site["hp-0999"]
    assert (unlisted["in_inventory"], unlisted["failed_codes"]) == (
        "false",
        "not_in_inventory;generator_autonomy_short",
    )
    assert " | " in unlisted["failed_texts"]  # texts may hold ';', so they are joined by ' | '


def test_csv_in_english_keeps_codes() -> None:
    out = io.BytesIO()
    render_csv(report(), out, lang="en")
    rows = {r["site"]: r for r in csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig")))}
    assert rows["hp-0202"]["status_text"] == "not compliant"
    assert rows["hp-0202"]["failed_codes"] == "silent"
    assert rows["hp-0202"]["failed_texts"] == "silent: no report for 2 h (over 3 min)"


# --- table


def test_table_in_vietnamese_and_english() -> None:
    got = report()
    vi, en = io.StringIO(), io.StringIO()
    render_table(got, vi, lang="vi")
    render_table(got, en, lang="en")
    for text in ("Huyện An Dương", "KHÔNG ĐẠT", "hp-0003", "chỉ đủ 14 giờ", "chưa báo cáo"):
        assert text in vi.getvalue(), text
    assert "Địa bàn đạt yêu cầu: 1/3" in vi.getvalue()
    for text in ("DOES NOT MEET", "MEETS", "never reported", "hp-0999"):
        assert text in en.getvalue(), text
    assert "hp-0101" not in vi.getvalue()  # compliant stations are counted, not listed


def test_an_area_short_of_carriers_says_so_and_names_those_only_on_paper() -> None:
    """An Dương has its 2 compliant stations (2 required here), and one carrier seen up:
    the report read MEETS, carriers "mobifone, viettel, vnpt", the inventory's operators,
    under the rule "at least 3 carriers per area"."""
    got = report(compliance=CompliancePolicy(required_per_area=2))
    vi, en = io.StringIO(), io.StringIO()
    render_table(got, vi, lang="vi")
    render_table(got, en, lang="en")
    en_text, vi_text = " ".join(en.getvalue().split()), " ".join(vi.getvalue().split())
    assert "Areas meeting the requirement: 1/3" in en_text
    assert "Huyện An Dương (an-duong): only 1 carrier(s) seen up, 3 required ·" in en_text
    assert "Huyện An Dương (an-duong): chỉ 1 nhà mạng đang hoạt động, cần 3 ·" in vi_text
    pages = " ".join(_pdf_pages(got, "en"))
    assert (
        "1. Huyện An Dương (an-duong) — DOES NOT MEET: only 1 carrier(s) seen up, 3 required"
        in pages
    )
    assert (
        "2/2 compliant, 0 missing; carriers seen up: vnpt (1/3); "
        "only in the inventory: mobifone, viettel; "
        "1 path(s) up name no carrier (set provider in the site's path config)" in pages
    )
    assert "Carriers seen up 3: mobifone, viettel, vnpt" in pages


# --- PDF


def test_pdf_page_one_has_date_policy_and_summary() -> None:
    pages = _pdf_pages(report())
    first = pages[0]
    for text in (
        "BÁO CÁO TUÂN THỦ TIÊU CHUẨN TRẠM KIÊN CỐ",
        "Tỉnh/thành phố: Hải Phòng (hp)",
        "Thời điểm đánh giá: 07/09/2024 13:00 (giờ Việt Nam)",  # 06:00 UTC
        "Chính sách áp dụng: rules/default-policy.yaml",
        "cần ít nhất 3 trạm kiên cố đạt chuẩn",
        "Điện dự phòng (ắc quy + máy phát) ít nhất 72 giờ",
        "ít nhất 2 đường truyền độc lập",
        "Tóm tắt",
        "Địa bàn đạt yêu cầu 1/3",
        "Địa bàn chưa đạt Huyện An Dương (an-duong): thiếu 1 trạm đạt chuẩn; chỉ 1 nhà mạng "
        "đang hoạt động, cần 3 · Huyện Cát Hải (cat-hai): thiếu 3 trạm đạt chuẩn; chỉ 1 nhà "
        "mạng đang hoạt động, cần 3",
        "Trạm kiên cố khai báo 10",
        "Đạt chuẩn 6",
        "Không đạt 3",
        "Mất liên lạc 1",
        "Chưa từng báo cáo 1",
        "Còn thiếu so với yêu cầu 4",
        "Nhà mạng đang hoạt động 3: mobifone, viettel, vnpt",
        "Chỉ có trong danh mục không có",
        "Trạm báo cáo nhưng ngoài danh mục 1",
    ):
        assert text in first, f"{text!r} not on page 1:\n{first}"


def test_pdf_sections_list_their_stations_and_diacritics_survive() -> None:
    pages = _pdf_pages(report())
    text = " ".join(pages)
    assert "không đạt" in text and "mất liên lạc: không có báo cáo trong 2 giờ" in text
    headings = [
        "1. Huyện An Dương (an-duong) — KHÔNG ĐẠT",
        "2. Huyện Cát Hải (cat-hai) — KHÔNG ĐẠT",
        "3. Quận Đồ Sơn (do-son) — ĐẠT",
        "Trạm báo cáo nhưng ngoài danh mục",
        "NGƯỜI LẬP BÁO CÁO",
    ]
    starts = [text.index(headings[0])]
    for heading in headings[1:]:  # each after the one before: the summary names them too
        starts.append(text.index(heading, starts[-1] + 1))
    sections = [text[a:b] for a, b in itertools.pairwise(starts)]
    assert [re.findall(r"hp-\d{4}", s) for s in sections] == [
        ["hp-0001", "hp-0002", "hp-0003"],
        ["hp-0201", "hp-0202", "hp-0203"],
        ["hp-0100", "hp-0101", "hp-0102", "hp-0103"],
        ["hp-0999"],
    ]
    assert "dùng chung cột" in sections[1]


def test_pdf_pages_are_numbered_and_end_with_the_signature_block() -> None:
    # a province large enough to run over several pages
    inventory = Inventory(
        item(f"hp-{a:02d}{n:02d}", f"xa-{a:02d}", operator=("vnpt", "viettel")[n % 2])
        for a in range(25)
        for n in range(4)
    )
    # in even areas two stations of four run short of fuel: 13 of 25 areas fail
    short = {s.site for s in inventory if int(s.area[3:]) % 2 == 0 and s.site[-1] in "23"}
    snapshots = {s.site: station(s.site, fuel_l=50.0 if s.site in short else 400.0,
                                 links=(FIBRE_UP, MW_UP, CELL_UP))
                 for s in inventory}  # fmt: skip
    got = build_report(snapshots, inventory, POLICY, NOW, province="hp")
    pages = _pdf_pages(got)
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert f"Trang {number}/{len(pages)}" in page
        assert "Hải Phòng — 07/09/2024 13:00" in page  # the footer says which report it is
    assert "Địa bàn đạt yêu cầu 12/25" in pages[0]
    listed = re.findall(r"hp-\d{4}", " ".join(pages))
    assert listed == sorted(s.site for s in inventory)  # every station, once, in order
    last = pages[-1]
    for text in (
        "Hải Phòng, ngày 07 tháng 09 năm 2024",
        "NGƯỜI LẬP BÁO CÁO",
        "LÃNH ĐẠO PHÊ DUYỆT",
        "(Ký, ghi rõ họ tên)",
    ):
        assert text in last


def test_pdf_in_english() -> None:
    pages = _pdf_pages(report(), lang="en")
    assert "HARDENED-STATION COMPLIANCE REPORT" in pages[0]
    assert "Page 1 of" in pages[0] and "Hải Phòng" in pages[0]


def test_pdf_without_the_font_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(FontMissing, match="apt-get install -y fonts-dejavu-core"):
        render_pdf(report(), io.BytesIO(), font_dir=tmp_path)


# --- untrusted names (plumbing/untrusted.py): shown as text in every format

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example","bấm")',
    "+1+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "\t-2+3",
    "<b>unclosed & <font color='red'>&nbsp;",
    "[/] [link=https://evil.example]x[/link] \x1b[2J\x1b]0;t\x07 \u202eabc\nline",
]


def _hostile() -> ComplianceReport:
    got = report()
    names = itertools.cycle(HOSTILE_NAMES)

    def renamed(s: StationCompliance) -> StationCompliance:
        return dataclasses.replace(s, name=next(names), area_name=next(names))

    areas = tuple(
        dataclasses.replace(
            a, area_name=next(names), stations=tuple(renamed(s) for s in a.stations)
        )
        for a in got.areas
    )
    unlisted = tuple(renamed(s) for s in got.unlisted)
    return dataclasses.replace(got, areas=areas, unlisted=unlisted, province_name=HOSTILE_NAMES[-1])


def test_csv_cells_cannot_start_a_formula() -> None:
    out = io.BytesIO()
    render_csv(_hostile(), out)
    rows = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline="")))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c.lstrip()[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert '\'=HYPERLINK("http://evil.example","bấm")' in cells  # kept, as text
    assert "' -2+3" in cells
    assert not [c for c in cells if re.search(r"[\x00-\x1f\x7f-\x9f\u202e]", c)]


def test_pdf_shows_markup_in_names_as_text() -> None:
    pages = _pdf_pages(_hostile(), lang="en")
    text = "".join("".join(pages).split())  # cells wrap where they like
    assert "<b>unclosed&<fontcolor='red'>&nbsp;" in text
    assert "[/][link=https://evil.example]x[/link]" in text
    assert "\x1b" not in text and "\u202e" not in text


def test_table_shows_names_as_text() -> None:
    out = io.StringIO()
    out.isatty = lambda: False  # type: ignore[method-assign]
    render_table(_hostile(), out, lang="en")
    shown = out.getvalue()
    assert "[/] [link=https://evil.example]x[/link] [2J]0;t abc line" in shown.replace("\n", " ")
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", shown)


@pytest.mark.parametrize(
    ("fuel_h", "status", "text_en", "text_vi", "csv_h"),
    [
        # 4 h of battery + 67.98 h of fuel = 71.98 h: short of 72 h, and said so; shown
        # rounded to the nearest tenth it read "lasts 72 h ..., 72 h required", and 72.0
        # in the CSV, beside "not compliant"
        (67.98, "non_compliant", "lasts 71.9 h", "chỉ đủ 71,9 giờ", "71.9"),
        (67.9999, "non_compliant", "lasts 71.9 h", "chỉ đủ 71,9 giờ", "71.9"),
        (66.3, "non_compliant", "lasts 70.3 h", "chỉ đủ 70,3 giờ", "70.3"),
        (10.0, "non_compliant", "lasts 14 h", "chỉ đủ 14 giờ", "14.0"),
        (68.0, "compliant", None, None, "72.0"),
        (76.04, "compliant", None, None, "80.0"),
    ],
)
def test_a_station_short_of_the_hours_never_reads_as_meeting_them(
    fuel_h: float, status: str, text_en: str | None, text_vi: str | None, csv_h: str
) -> None:
    snap = station("hp-0001", fuel_l=fuel_h * 5.0, burn_l_per_h=5.0)  # 4 h of battery
    got = build_report({"hp-0001": snap}, [item("hp-0001")], POLICY, NOW, province="hp")
    (judged,) = got.stations
    assert judged.status == status
    if text_en is not None and text_vi is not None:
        (short,) = judged.failed
        assert text_en in short.text("en") and text_vi in short.text("vi")
    out = io.BytesIO()
    render_csv(got, out)
    (row,) = csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline=""))
    assert row["autonomy_h"] == csv_h
