"""Untrusted text, made safe once per sink (plumbing/untrusted.py), at every boundary.

The sinks' functions are checked on tables of hostile texts and on arbitrary text;
then each surface that shows text from agents and devices is rendered for real (rich
on a forced terminal, the demo's live table) with hostile names and reasons in it.
The CSV and PDF of the compliance report are checked in tests/test_compliance_report.py,
InfluxDB in tests/test_line_protocol.py and tests/test_influx_roundtrip.py.
"""

from __future__ import annotations

import html as html_module
import io
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph
from rich.console import Console

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Reason, Status
from kienco.demo.display import Display
from kienco.demo.scenario import load_scenario
from kienco.demo.simulator import Fleet
from kienco.readiness_view import nothing_selected, print_readiness
from plumbing.untrusted import csv_cell, html, influx_string, json_text, one_line, pdf, terminal

NOW = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)

# What must never come out of one_line: controls, bidi controls, line/paragraph separators.
FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
HOSTILE = [
    "ok [/]",  # rich: MarkupError, the CLI crashed
    "[bold red]fake alarm[/bold red]",
    "[link=https://evil.example]bấm vào đây[/link]",
    "clear \x1b[2J\x1b[H screen",
    "title \x1b]0;pwned\x07 osc",
    "hyperlink \x1b]8;;https://evil.example\x1b\\x\x1b]8;;\x1b\\",
    "c1 \x9b31m csi \x9d osc",
    "bidi \u202egnp.exe\u202c \u2067isolate\u2069",
    "two\nlines\r\nand\u2028more",
    "bell\x07 back\x08space nul\x00",
    ":warning: emoji code",
    "lone \ud800 surrogate",
]
# A wire text cannot hold a lone surrogate (pydantic refuses it): the rest can reach a Status.
HOSTILE_WIRE = [text for text in HOSTILE if "\ud800" not in text]
# rich's own styling, which is all a rendered table may contain besides text.
_RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


def rendered(write: object) -> str:
    """What a rich console wrote on a forced colour terminal, rich's own SGR styling removed."""
    assert isinstance(write, io.StringIO)
    return _RICH_SGR.sub("", write.getvalue())


def assert_shown_as_text(out: str) -> None:
    """No control character (so no escape sequence, no OSC 8 link) but the output's own lines."""
    found = FORBIDDEN.search(out.replace("\n", ""))
    assert not found, repr(found)


# --- the functions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Trạm BTS Đồ Sơn", "Trạm BTS Đồ Sơn"),
        ("Modbus timeout\nretry 1/3", "Modbus timeout retry 1/3"),
        ("a\r\n\r\n\tb", "a b"),
        ("clear \x1b[2J", "clear [2J"),
        ("\x1b]0;pwned\x07", "]0;pwned"),
        ("\x9b31m", "31m"),
        ("bidi \u202egnp.exe", "bidi gnp.exe"),
        ("x\ud800y", "x\ufffdy"),
        ("[/] [link=x]y[/link]", "[/] [link=x]y[/link]"),  # markup is the terminal's business
        ("nbsp\u00a0and\u3000ideographic space", "nbsp\u00a0and\u3000ideographic space"),
    ],
)
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected
    assert influx_string(text) == expected


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1+1", "' =1+1"),  # tab and CR start a formula in some importers: folded, quoted
        ("\r=1+1", "' =1+1"),
        ("  =1+1", "'  =1+1"),
        ("＝1+1", "'＝1+1"),  # full-width equals
        ("Huyện An Dương", "Huyện An Dương"),
        ("a=b", "a=b"),
        ("hp-bts-001", "hp-bts-001"),
        (None, ""),
        ("two\nlines", "two lines"),
    ],
)
def test_csv_cell(text: str | None, cell: str) -> None:
    assert csv_cell(text) == cell


def test_pdf_and_html_escape_their_markup() -> None:
    text = 'a <b>bold</b> & <font color="red">x</font>\n"q"'
    assert pdf(text) == 'a &lt;b&gt;bold&lt;/b&gt; &amp; &lt;font color="red"&gt;x&lt;/font&gt; "q"'
    assert html(text) == html_module.escape(one_line(text), quote=True)
    assert "<" not in html(text) and '"' not in html(text)


def test_json_text_is_the_same_data_without_raw_controls() -> None:
    value = {"name": "Điểm cầu \x9b2J\u202e\u2028", "n": 1, "x": "\x1b[2J\ud800"}
    text = json_text(value)
    assert json.loads(text) == value  # nothing lost
    assert not FORBIDDEN.search(text)
    assert "Điểm cầu" in text  # Vietnamese stays readable
    assert json.loads(json_text(value, indent=2)) == value


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(HOSTILE), st.text(st.characters(exclude_categories=())))
    ).map("".join)
)
def test_every_sink_on_arbitrary_text(text: str) -> None:
    line = one_line(text)
    assert not FORBIDDEN.search(line)
    assert one_line(line) == line  # idempotent: applying a sink twice changes nothing more
    line.encode()  # always has a UTF-8 form
    assert not FORBIDDEN.search(json_text(text)) and json.loads(json_text(text)) == text
    assert csv_cell(text).lstrip()[:1] not in set("=+-@＝＋－＠")
    assert str(terminal(text)) == line
    Paragraph(pdf(text), ParagraphStyle("p"))  # reportlab parses it as plain text
    assert "<" not in html(text) and ">" not in html(text)


# --- the surfaces


def _status(site: str, name: str, text: str, *, risk_level: int = 0) -> Status:
    reason = Reason(rule="r", code="c", severity="critical", text_vi=text, text_en=text)
    return Status(
        site=site,
        province="hp",
        name=name,
        verdict="not_ready",
        station_state="unknown",
        evaluated_at=NOW,
        risk_level=risk_level,
        reasons=(reason,),
    )


@pytest.mark.parametrize("hostile", HOSTILE_WIRE)
def test_the_readiness_table_shows_names_and_reasons_as_text(hostile: str) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="truecolor", width=400)
    statuses = [_status("hp-a", hostile, f"lý do: {hostile}")]
    print_readiness(statuses, province=hostile, lang="en", console=console)
    shown = rendered(out)
    assert_shown_as_text(shown)
    assert one_line(hostile) in shown  # as written, markup and all: nothing interpreted
    assert f"• lý do: {one_line(hostile)}" in shown


def test_the_readiness_footer_says_the_risk_level() -> None:
    out = io.StringIO()
    statuses = [_status("hp-a", "A", "x", risk_level=3), _status("hp-b", "B", "y", risk_level=3)]
    print_readiness(statuses, province="hp", lang="en", console=Console(file=out, width=300))
    assert "hp: 0/2 ready — disaster risk level 3 — judged at 07/09/2024 13:00:00" in out.getvalue()
    out = io.StringIO()
    calm = [_status("hp-a", "A", "x")]
    print_readiness(calm, province="hp", lang="vi", console=Console(file=out, width=300))
    assert "cấp độ rủi ro thiên tai 0 (chưa công bố)" in out.getvalue()


@pytest.mark.parametrize(
    ("province", "kind", "known", "lang", "says"),
    [
        ("hpp", "meeting_point", ["hp", "qn", "hp"], "en",
         "no meeting point in province 'hpp': "
         "check the province code; the collector knows: hp, qn"),
        ("hpp", None, [], "vi",
         "không có điểm nào ở tỉnh 'hpp': collector chưa nhận được điểm nào"),
        ("hp", "meeting_point", ["hp", "hp"], "en",
         "province 'hp' has 2 site(s), none of them a meeting point: try --kind all"),
    ],
)  # fmt: skip
def test_nothing_selected_says_why(
    province: str, kind: str | None, known: list[str], lang: str, says: str
) -> None:
    assert nothing_selected(province=province, kind=kind, known=known, lang=lang) == says  # type: ignore[arg-type]


def test_the_demo_live_table_and_log_show_text_only(capsys: pytest.CaptureFixture[str]) -> None:
    fleet = Fleet(load_scenario())
    site = fleet.sites[0].site
    display = Display(fleet, lang="en", live=False)  # log lines go to stderr
    for hostile in HOSTILE_WIRE:
        display.verdict_changed(None, _status(site, hostile, hostile), NOW)
    log = capsys.readouterr().err
    assert_shown_as_text(log)
    assert "[link=https://evil.example]bấm vào" in log  # shown, not made a link
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=400).print(
        display._render()
    )
    shown = rendered(out)
    assert_shown_as_text(shown)
    assert "clear [2J[H screen" in shown and "bidi gnp.exe isolate" in shown


def test_the_collector_log_shows_a_publisher_s_text_on_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = CollectorConfig.model_validate(
        {"broker": {"url": "mqtt://127.0.0.1:1", "username": None}, "data_dir": str(tmp_path)}
    )
    collector = Collector(config)  # never started: handle() is all this needs
    try:
        with caplog.at_level(logging.WARNING, logger="kienco"):
            collector.handle("kienco/v1/hp/\x1b]0;x\x07\nFAKE LOG LINE/report", b"{}", 0, 0)
    finally:
        collector.stop()
    (line,) = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert "bad_topic" in line and "FAKE LOG LINE" in line
    assert not FORBIDDEN.search(line), repr(line)
