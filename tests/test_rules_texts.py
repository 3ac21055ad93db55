"""The text catalogue: every code in both languages, placeholders that fill, readable units."""

from __future__ import annotations

import string
from importlib import resources

import pytest

from rules import Finding, Policy, evaluate, texts
from rules.policy import RiskStep
from rules.texts import CATALOGUE, LANGS, Lang, format_value, placeholders, render
from tests.test_rules_support import (
    NOW,
    POLICY,
    ago,
    genset,
    judge,
    link,
    room,
    snap,
    two_paths,
    ups,
)

NUMBER_SPECS = {"n", "below", "dur", "time", "at_risk"}


def _fields(template: str) -> dict[str, str]:
    return {f: spec or "" for _, f, spec, _ in string.Formatter().parse(template) if f}


def _sample(code: str) -> tuple[dict[str, float | None], dict[str, str]]:
    numbers: dict[str, float | None] = {}
    labels: dict[str, str] = {}
    for lang in LANGS:
        for name, spec in _fields(CATALOGUE[code].template(lang)).items():
            if name == "needs":  # derived: rendered from these
                labels["target"] = "station:hardened"
                numbers["required_h"] = 72.0
                numbers["tightened_at_level"] = 4.0
            elif spec in NUMBER_SPECS:
                numbers[name] = 4.0 if spec == "at_risk" else 3725.0
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


@pytest.mark.parametrize("code", sorted(CATALOGUE))
@pytest.mark.parametrize("empty", [False, True])
def test_render_writes_what_the_formatter_writes(code: str, empty: bool) -> None:
    # render() walks each template parsed once; string.Formatter is the reference.
    numbers, labels = _sample(code)
    if empty:  # unknown numbers print "?", an empty label nothing
        numbers = dict.fromkeys(numbers)
        labels = dict.fromkeys(labels, "")
    for lang in LANGS:
        values: dict[str, object] = {**numbers, **labels}
        if "needs" in _fields(CATALOGUE[code].template(lang)):
            values["needs"] = texts._needs(values, lang)
        expected = texts._FORMATTERS[lang].format(CATALOGUE[code].template(lang), **values)
        assert render(code, lang, numbers, labels) == expected


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
        pytest.param(71.98, "en", "below", "71.9", id="short-rounded-down-en"),
        pytest.param(71.98, "vi", "below", "71,9", id="short-rounded-down-vi"),
        pytest.param(7.3, "en", "below", "7.3", id="short-exact-tenth"),
        pytest.param(72.0, "en", "below", "72", id="short-whole"),
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
    assert placeholders("power_down") == frozenset()
    assert placeholders("paths_one_independent_shared") == {
        "path_a",
        "path_b",
        "srlg",
        "required",
        "tightened_at_level",
    }
    # {needs} is derived: a finding gives what it is rendered from
    assert placeholders("on_battery_generator_stopped") == {
        "dark_in_s",
        "target",
        "required_h",
        "tightened_at_level",
    }


# --- every reason names the problem and, where a threshold applies, the threshold
# (issue 8). Each code is listed in one of the two tables: a new code must choose.

THRESHOLDS: dict[str, set[str]] = {
    "no_recent_report": {"stale_after_s"},
    "report_backlog": {"stale_after_s"},
    "clock_behind": {"behind_s"},
    "clock_corrected": {"behind_s"},
    "clock_ahead": {"future_tolerance_s"},
    "clock_ahead_refused": {"future_tolerance_s"},
    "on_battery_generator_stopped": {"required_h"},
    "on_battery_no_generator": {"required_h"},
    "on_battery": {"required_h"},
    "on_generator": {"required_h"},
    "backup_hours_short": {"required_h"},
    "backup_hours_critical": {"critical_h", "required_h"},
    "generator_autonomy_unknown": {"required_h"},
    "battery_estimate_optimistic": {"ratio_pct"},
    "paths_unknown": {"required"},
    "paths_one_independent": {"required"},
    "paths_one_independent_shared": {"required"},
    "paths_too_few": {"required"},
    "paths_one_media": {"preferred_media"},
    "link_rtt_high": {"max_rtt_ms"},
    "link_jitter_high": {"max_jitter_ms"},
    "link_loss_high": {"max_loss_pct"},
    "link_backup_unfit": {"backup_max_loss_pct", "required"},
    "link_bandwidth_low": {"min_up_mbps", "min_down_mbps"},
    "link_bandwidth_unknown": {"min_up_mbps", "min_down_mbps"},
    "generator_autonomy_short": {"required_h"},
    "generator_not_started": {"required_h"},
    "generator_not_started_no_battery": {"required_h"},
    "generator_not_started_no_fuel": {"required_h"},
    "generator_not_started_no_battery_no_fuel": {"required_h"},
    "no_generator": {"required_h"},
    "no_second_independent_path": {"required"},
    "no_second_independent_path_shared": {"required"},
    "silent": {"stale_after_s"},
    "rehearsal_missing": {"max_age_s"},
    "rehearsal_stale": {"max_age_s"},
    "rehearsal_stale_at_start": {"max_age_s"},
    "meeting_power_short": {"needed_s", "margin_pct"},
    "meeting_power_runs_out": {"needed_s", "margin_pct"},
    "meeting_power_unknown": {"needed_s"},
    "meeting_ups_bridge_short": {"bridge_s"},
    "meeting_ups_bridge_unknown": {"bridge_s"},
}
# A state or fault with no number to hold it to; or hours that are unknown, where the
# reason is what is missing and how to fix it.
NO_THRESHOLD = {
    "no_report_yet",
    "agent_offline",
    "meta_missing",
    "power_down",
    "power_down_input_failed",  # the devices are labels; a state, no threshold
    "power_output_off",  # the device is a label; a state
    "ups_on_bypass",  # counted 0 h: the hours' own finding says the threshold
    "link_call_on_primary",  # beside the primary's own findings, which say the limits
    "on_battery_runtime_unknown",
    "on_battery_generator_stopped_runtime_unknown",
    "on_battery_no_model",
    "on_generator_fuel_unknown",
    "power_source_unknown",  # which source carries the site: unknown, so are its hours
    "backup_hours_unknown",
    "backup_hours_unknown_no_model",
    "backup_hours_partial",  # the hours the known batteries give; a state, no threshold
    "backup_hours_partial_no_model",
    "on_battery_partial",
    "runtime_untrusted",
    "runtime_untrusted_no_charge",
    "battery_model_missing",
    "power_probe_error",
    "path_all_down",
    "path_down",
    "path_lossy",  # its loss and the usable limit are labels, with its name
    "path_unprobed",  # no probe: nothing measured, no threshold
    "link_quality_unknown",
    "no_fibre_path",  # "a hardened station needs one": the rule is the threshold
    "silent_offline",
    "never_reported",
    "not_declared_hardened",
    "not_in_inventory",
    "rehearsal_failed",
    "meeting_power_ups_only",
    "room_unknown",
    "room_error",
    "room_devices_unknown",
    "codec_unreachable",
    "codec_not_registered",
    "camera_fault",
    "microphone_fault",
    "speaker_fault",
    "display_fault",
}
# Thresholds a risk step can raise (policy ``risk``): their texts say the level then.
RISK_RAISED = {
    "no_recent_report",
    "report_backlog",
    "on_battery_generator_stopped",
    "on_battery_no_generator",
    "on_battery",
    "on_generator",
    "backup_hours_short",
    "backup_hours_critical",
    "generator_autonomy_unknown",
    "paths_unknown",
    "paths_one_independent",
    "paths_one_independent_shared",
    "paths_too_few",
    "link_backup_unfit",
    "meeting_power_short",
    "meeting_power_runs_out",
}


def test_every_code_is_placed_in_one_table() -> None:
    assert not set(THRESHOLDS) & NO_THRESHOLD
    assert set(CATALOGUE) == set(THRESHOLDS) | NO_THRESHOLD
    assert set(THRESHOLDS) >= RISK_RAISED


@pytest.mark.parametrize("code", sorted(THRESHOLDS))
def test_a_reason_with_a_threshold_says_it_in_both_languages(code: str) -> None:
    assert THRESHOLDS[code] <= placeholders(code)
    numbers, labels = _sample(code)
    for name in THRESHOLDS[code]:
        # each threshold on its own: 7,777 / 7.777, or as a duration 2 h 10 min
        marked = {**numbers, name: 7777.0}
        for lang in LANGS:
            text = render(code, lang, marked, labels)
            shown = {format_value(7777.0, spec, lang) for spec in ("n", "dur")}
            assert any(value in text for value in shown), (name, text)


@pytest.mark.parametrize("code", sorted(RISK_RAISED))
def test_a_threshold_raised_by_the_risk_level_says_the_level(code: str) -> None:
    assert "tightened_at_level" in placeholders(code)
    numbers, labels = _sample(code)
    raised = {
        lang: render(code, lang, {**numbers, "tightened_at_level": 4}, labels) for lang in LANGS
    }
    assert raised["en"].count("at risk level 4") == 1, raised["en"]
    assert raised["vi"].count("khi rủi ro thiên tai ở cấp độ 4") == 1, raised["vi"]
    plain = render(code, "en", {**numbers, "tightened_at_level": None}, labels)
    assert "risk level" not in plain and "?" not in plain, plain


@pytest.mark.parametrize(
    ("code", "hours", "shown"),
    [
        ("backup_hours_short", 7.96, "7.9 h of backup power, an ordinary station needs 8 h"),
        ("backup_hours_short", 7.9999, "7.9 h of backup power, an ordinary station needs 8 h"),
        ("backup_hours_short", 6.0, "6 h of backup power, an ordinary station needs 8 h"),
        ("backup_hours_critical", 3.96, "only 3.9 h of backup power, under the 4 h minimum"),
    ],
)
def test_hours_short_of_a_target_never_read_as_meeting_it(
    code: str, hours: float, shown: str
) -> None:
    """7.96 h read "8 h of backup power, an ordinary station needs 8 h": rounded down."""
    numbers = {
        "backup_h": hours,
        "required_h": 8.0,
        "critical_h": 4.0,
        "tightened_at_level": None,
    }
    assert render(code, "en", numbers, {"target": "station:ordinary"}).startswith(shown)


def test_no_target_no_clause() -> None:
    """A meeting point's power state names no target: the meeting rule judges the hours."""
    numbers: dict[str, float | None] = {
        "dark_in_s": 600.0,
        "generator_s": 36_000.0,
        "required_h": 4.0,
        "tightened_at_level": None,
    }
    text = render("on_generator", "en", numbers, {"target": ""})
    assert text == "mains lost: on generator, fuel for 10 h, 10 min in total"


# --- through evaluate(): the risk level a verdict was judged under, where it counted


def _tightening_policy() -> Policy:
    step = RiskStep(min_level=4, stale_intervals=2, meeting_margin_pct=50, required_paths=3)
    return POLICY.model_copy(update={"risk": (*POLICY.risk, step)})


def test_an_ordinary_station_held_to_the_hardened_target_at_level_4() -> None:
    s = snap(power=[ups()], links=two_paths())
    assert judge(s, risk_level=3).findings == ()
    (finding,) = judge(s, risk_level=4).findings
    assert finding.text_en == "10 h of backup power, an ordinary station needs 72 h at risk level 4"
    assert finding.text_vi == (
        "điện dự phòng đủ 10 giờ, trạm thường cần 72 giờ khi rủi ro thiên tai ở cấp độ 4"
    )


def test_a_hardened_station_is_held_to_72h_whatever_the_level() -> None:
    s = snap(power=[ups()], links=two_paths(), site_class="hardened")
    (finding,) = judge(s, risk_level=4).findings
    assert finding.text_en == "10 h of backup power, a hardened station needs 72 h"


def test_stale_window_shortened_by_the_risk_level() -> None:
    s = snap(power=[ups()], links=two_paths(), at=ago(150))
    e = evaluate(s, _tightening_policy(), NOW, risk_level=4)
    assert e.findings[0].text_en == "no report for 2 min (stale after 2 min at risk level 4)"
    assert evaluate(s, _tightening_policy(), NOW, risk_level=3).verdict != "unknown"


def test_meeting_margin_raised_by_the_risk_level() -> None:
    point = snap(
        "meeting_point",
        power=[ups(battery_runtime_s=1200), genset(fuel_l=10, fuel_burn_l_per_h=10)],
        links=(*two_paths(), link("lte", "cellular", "tower-c")),
        room_reading=room(),
    )
    e = evaluate(point, _tightening_policy(), NOW, risk_level=4, meeting_duration_s=3600)
    (finding,) = [f for f in e.findings if f.rule == "meeting"]
    assert finding.text_en.endswith("(incl. 50 % margin at risk level 4)"), finding.text_en
    assert finding.numbers["needed_s"] == 5400
