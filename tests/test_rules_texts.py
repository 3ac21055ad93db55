"""The text catalogue: every code in both languages, placeholders that fill, readable units."""

from __future__ import annotations

import string
from importlib import resources

import pytest

from rules import Finding
from rules.texts import CATALOGUE, LANGS, Lang, format_value, placeholders, render

NUMBER_SPECS = {"n", "dur", "time"}


def _fields(template: str) -> dict[str, str]:
    return {f: spec or "" for _, f, spec, _ in string.Formatter().parse(template) if f}


def _sample(code: str) -> tuple[dict[str, float | None], dict[str, str]]:
    numbers: dict[str, float | None] = {}
    labels: dict[str, str] = {}
    for lang in LANGS:
        for name, spec in _fields(CATALOGUE[code].template(lang)).items():
            if spec in NUMBER_SPECS:
                numbers[name] = 3725.0
            elif spec == "risk":
                labels[name] = "tower-hp12"
            else:
                labels[name] = "fibre"
    return numbers, labels


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_code_has_both_languages_and_fills(code: str) -> None:
    text = CATALOGUE[code]
    assert text.vi.strip() and text.en.strip()
    assert text.vi != text.en
    assert any(ord(c) > 127 for c in text.vi), "Vietnamese without diacritics?"
    assert _fields(text.vi).keys() == _fields(text.en).keys(), "languages use different fields"
    numbers, labels = _sample(code)
    for lang in LANGS:
        out = render(code, lang, numbers, labels)
        assert "{" not in out and "}" not in out and "?" not in out, out
    finding = Finding("meeting", "site-1", "info", code, numbers, labels)
    assert finding.to_reason().text_vi == render(code, "vi", numbers, labels)


def test_every_code_is_used_by_a_rule() -> None:
    sources = "".join(
        f.read_text("utf-8")
        for f in resources.files("rules").iterdir()
        if f.name.endswith(".py") and f.name != "texts.py"
    )
    unused = [code for code in CATALOGUE if f'"{code}"' not in sources]
    assert unused == []


def test_finding_refuses_unknown_code_and_missing_numbers() -> None:
    with pytest.raises(ValueError, match="no text"):
        Finding("freshness", "s", "info", "no_such_code")
    with pytest.raises(ValueError, match="age_s"):
        Finding("freshness", "s", "warning", "no_recent_report")


@pytest.mark.parametrize(
    ("template_value", "lang", "spec", "expected"),
    [
        pytest.param(45, "vi", "dur", "45 giây", id="45s-vi"),
        pytest.param(45, "en", "dur", "45 s", id="45s-en"),
        pytest.param(2280, "vi", "dur", "38 phút", id="38min-vi"),
        pytest.param(2280, "en", "dur", "38 min", id="38min-en"),
        pytest.param(3600, "vi", "dur", "1 giờ", id="1h-vi"),
        pytest.param(37_800, "en", "dur", "10 h 30 min", id="10h30-en"),
        pytest.param(47 * 3600, "en", "dur", "47 h", id="47h-en"),
        pytest.param(72 * 3600, "vi", "dur", "3 ngày", id="3-days-vi"),
        pytest.param(50 * 3600, "en", "dur", "2 d 2 h", id="50h-en"),
        pytest.param(10.46, "vi", "n", "10,5", id="decimal-comma-vi"),
        pytest.param(10.46, "en", "n", "10.5", id="decimal-point-en"),
        pytest.param(65_535, "vi", "n", "65.535", id="thousands-vi"),
        pytest.param(65_535, "en", "n", "65,535", id="thousands-en"),
        pytest.param(72.0, "en", "n", "72", id="whole"),
        pytest.param(1_725_688_800, "vi", "time", "07/09 13:00", id="vietnam-time"),
        pytest.param(1_725_688_829.9, "en", "time", "07/09 13:00", id="time-to-the-minute"),
        pytest.param(None, "vi", "dur", "?", id="unknown"),
        pytest.param("microwave", "vi", "media", "viba", id="media-vi"),
        pytest.param("cellular", "en", "media", "cellular", id="media-en"),
        pytest.param("fo1", "vi", "media", "fo1", id="path-id-passes"),
        pytest.param("tower-hp12", "vi", "risk", "cột", id="tower-vi"),
        pytest.param("pole.line-7", "en", "risk", "the same pole line", id="pole-en"),
        pytest.param("x9", "en", "risk", "shared-risk group x9", id="unknown-group"),
    ],
)
def test_units_read_naturally(template_value: object, lang: Lang, spec: str, expected: str) -> None:
    assert format_value(template_value, spec, lang) == expected


def test_placeholders_cover_both_languages() -> None:
    assert placeholders("on_battery_generator_stopped") == {"dark_in_s"}
    assert placeholders("paths_one_independent_shared") == {"path_a", "path_b", "srlg"}
