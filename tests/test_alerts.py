"""Alerts from verdicts (collector/alerts.py): one per root cause per site, tables of cases.

Statuses come from the real rules (``evaluate`` on snapshots folded the collector's way,
tests/test_rules_support.py), so the texts and numbers are the ones operators get.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.alerts import (
    Alert,
    MeetingInfo,
    SiteLinks,
    local_time,
    meeting_alerts,
    site_alerts,
)
from collector.config import CollectorConfig
from contract.wire import Reason, Status
from plumbing.config_errors import ConfigError, parse_yaml_model
from plumbing.untrusted import one_line
from rules import Policy, PolicyError, SiteSnapshot, evaluate, load_policy, to_status
from rules.alert_policy import AlertPolicy
from rules.compliance import station_compliance
from rules.rehearsal import for_meeting
from tests.test_rules_support import (
    NOW,
    PROVINCE,
    SITE,
    clock_behind,
    genset,
    link,
    meta,
    on_battery,
    snap,
    two_paths,
    ups,
)

REPO = Path(__file__).resolve().parents[1]
RULES = Policy.model_validate({"meeting": {"devices": []}})  # rooms not monitored here
POLICY = RULES.alerts  # dark soon: station 2 h, meeting point 4 h; clears 25 % above
DOWN: dict[str, Any] = {"up": False, "rtt_ms": None, "jitter_ms": None, "loss_pct": 100.0}
AGE_S = 30  # snap()'s report is 30 s old at NOW


def judged(s: SiteSnapshot, now: Any = NOW, **kwargs: Any) -> Status:
    return to_status(evaluate(s, RULES, now, **kwargs), s)


def alerts_for(
    status: Status,
    previous: Sequence[Alert] = (),
    now: Any = NOW,
    **kwargs: Any,
) -> list[Alert]:
    return site_alerts(
        status,
        meta=kwargs.pop("site_meta", meta(status.site_kind or "station")),
        previous=previous,
        policy=kwargs.pop("policy", POLICY),
        now=now,
        **kwargs,
    )


def names(alerts: Sequence[Alert]) -> list[str]:
    return [a.name for a in alerts]


def reason(status: Status, code: str) -> Reason:
    return next(r for r in status.reasons if r.code == code)


def battery(left_s: float, kind: Any = "station") -> Status:
    """On battery (no generator) with ``left_s`` to go at NOW."""
    return judged(snap(kind, power=[on_battery(runtime_s=left_s + AGE_S)], links=two_paths()))


def test_on_battery_is_one_alert_with_its_labels_numbers_and_link() -> None:
    status = battery(3 * 3600 + 20 * 60)
    [alert] = alerts_for(status)
    assert alert.labels == {
        "alertname": "SiteOnBattery",
        "severity": "warning",
        "province": PROVINCE,
        "site": SITE,
        "kind": "station",
        "operator": "unknown",  # the meta names none
        "cause": "power",
    }
    said = reason(status, "on_battery_no_generator")
    notes = alert.annotations(SiteLinks("https://noc.example.vn/").site_url(SITE))
    assert notes["summary"] == f"Trạm Đồ Sơn: {said.text_vi}"
    assert notes["summary_en"] == f"Trạm Đồ Sơn: {said.text_en}"
    assert "còn 3 giờ 20 phút" in notes["summary"] and "không có máy phát" in notes["summary"]
    assert "3 h 20 min left" in notes["summary_en"] and "no generator" in notes["summary_en"]
    assert notes["site_url"] == f"https://noc.example.vn/sites/{SITE}"
    assert notes["dark_at"] == (NOW + timedelta(hours=3, minutes=20)).isoformat()
    assert notes["dark_at_local"] == "16:20 07/09"  # Vietnam time
    assert alert.started_at == NOW


@pytest.mark.parametrize(
    ("left_h", "previous", "expected"),
    [
        (2.5, None, "SiteOnBattery"),
        (1.9, None, "SiteDarkSoon"),
        (1.9, "SiteOnBattery", "SiteDarkSoon"),
        # once short, it clears only 25 % above the 2 h line: no paging on a wobble
        (2.3, "SiteDarkSoon", "SiteDarkSoon"),
        (2.6, "SiteDarkSoon", "SiteOnBattery"),
    ],
)
def test_dark_soon_under_the_kind_threshold_without_flapping(
    left_h: float, previous: str | None, expected: str
) -> None:
    before = alerts_for(battery(3600 if previous == "SiteDarkSoon" else 3 * 3600))
    assert previous is None or names(before) == [previous]
    now = alerts_for(battery(left_h * 3600), before if previous else [])
    assert names(now) == [expected]
    assert now[0].labels["severity"] == ("critical" if expected == "SiteDarkSoon" else "warning")
    if expected == "SiteDarkSoon":
        # when, in Vietnam time: the "… left" after it is the judgement's, and ages
        at = local_time(NOW + timedelta(hours=left_h))
        assert now[0].summary_vi.startswith(f"sắp mất nguồn, lúc {at}: mất điện lưới")


def test_the_threshold_is_per_kind_from_the_policy(tmp_path: Path) -> None:
    point = battery(3 * 3600, kind="meeting_point")
    assert names(alerts_for(point)) == ["SiteDarkSoon"]  # a meeting point: 4 h
    path = tmp_path / "p.yaml"
    path.write_text("alerts:\n  dark_soon_below_h: {meeting_point: 1}\n")
    policy = load_policy(path).alerts
    found = site_alerts(point, meta=None, previous=[], policy=policy, now=NOW)
    assert names(found) == ["SiteOnBattery"]
    assert found[0].labels["operator"] == "unknown"  # no meta yet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alerts:\n  dark_soon_below_h: {station: 0}\n", "alerts.dark_soon_below_h.station = 0"),
        ("alerts:\n  dark_soon_below_h: {stations: 2}\n", "did you mean 'station'?"),
        ("alerts:\n  dark_soon_clear_pct: -1\n", "alerts.dark_soon_clear_pct = -1"),
    ],
)
def test_bad_alert_policy_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match="fix:") as info:
        load_policy(path)
    assert expected in str(info.value)


def on_generator(fuel_h: float) -> Status:
    """Mains gone, the generator running with ``fuel_h`` of fuel, a 30 min UPS behind it."""
    fed_ups = ups(mains_present=False, on_battery=False, battery_runtime_s=1800.0)
    running = genset(
        generator_running=True, on_generator=True, fuel_l=fuel_h, fuel_burn_l_per_h=1.0
    )
    return judged(snap(power=[fed_ups, running], links=two_paths()))


def test_a_generator_with_fuel_is_no_alert_and_one_short_of_fuel_is() -> None:
    assert alerts_for(on_generator(60)) == []
    short = on_generator(1)
    [alert] = alerts_for(short)
    assert alert.name == "SiteDarkSoon"
    assert alert.dark_at is not None
    at = local_time(alert.dark_at)
    assert alert.summary_en == f"going dark soon, at {at}: " + reason(short, "on_generator").text_en
    assert "fuel for 1 h" in alert.summary_en


def test_a_dark_site_pages_for_its_power_only() -> None:
    down_links = (link("fo1", "fibre", "duct-a", **DOWN), link("mw1", "microwave", "t", **DOWN))
    dark = judged(
        snap(power=[on_battery(runtime_s=0, battery_status="depleted")], links=down_links)
    )
    [alert] = alerts_for(dark)
    assert (alert.name, alert.cause, alert.labels["severity"]) == ("SiteDark", "power", "critical")
    assert alert.summary_en == reason(dark, "power_down").text_en


def test_a_ups_flat_beside_mains_pages_with_its_failed_input() -> None:
    dark = judged(snap(power=[on_battery("ups2", runtime_s=0), ups("ups1")]))
    [alert] = alerts_for(dark)
    assert (alert.name, alert.cause, alert.labels["severity"]) == ("SiteDark", "power", "critical")
    assert alert.summary_en == reason(dark, "power_down_input_failed").text_en
    assert "check ups2's input" in alert.summary_en


def test_a_ups_with_its_output_off_pages_as_dark_with_the_mains_present() -> None:
    dark = judged(snap(power=[ups("ups1"), ups("ups2", output_off=True)]))
    [alert] = alerts_for(dark)
    assert (alert.name, alert.cause, alert.labels["severity"]) == ("SiteDark", "power", "critical")
    assert alert.summary_en == reason(dark, "power_output_off").text_en
    assert alert.summary_en.startswith("ups2 says its output is off")


def three_paths(*down: str) -> tuple[Any, ...]:
    paths = (("fo1", "fibre", "duct-a"), ("mw1", "microwave", "tower-b"), ("vs1", "vsat", "sky"))
    return tuple(link(p, m, g, **(DOWN if p in down else {})) for p, m, g in paths)


def test_a_transport_cut_is_one_alert_not_one_per_path() -> None:
    lost = judged(snap(power=[ups()], links=three_paths("fo1", "mw1", "vs1")))
    [alert] = alerts_for(lost)
    assert (alert.name, alert.cause) == ("TransportLost", "transport")
    assert alert.summary_vi == reason(lost, "path_all_down").text_vi
    assert "3/3" in alert.summary_vi

    some = judged(snap(power=[ups()], links=three_paths("fo1", "mw1")))
    [alert] = alerts_for(some)
    assert alert.name == "PathLost"
    assert alert.summary_en == "path fo1 (fibre) is down; path mw1 (microwave) is down"
    assert alert.details_en[-1] == reason(some, "paths_one_independent").text_en


def test_a_path_losing_most_of_its_probes_is_a_path_lost() -> None:
    links = (link("fo1", "fibre", "duct-a"), link("mw1", "microwave", "tower-b", loss_pct=90))
    lossy = judged(snap(power=[ups()], links=links))
    [alert] = alerts_for(lossy)
    assert (alert.name, alert.cause) == ("PathLost", "transport")
    assert alert.summary_en == reason(lossy, "path_lossy").text_en


def test_on_battery_and_cut_off_are_two_root_causes() -> None:
    links = three_paths("fo1", "mw1", "vs1")
    both = judged(snap(power=[on_battery(runtime_s=5 * 3600)], links=links))
    assert both.station_state == "down_transport"
    assert names(alerts_for(both)) == ["SiteOnBattery", "TransportLost"]


def test_an_alert_keeps_its_start_while_it_lasts() -> None:
    first = alerts_for(battery(5 * 3600))
    later = alerts_for(battery(4 * 3600), first, now=NOW + timedelta(hours=1))
    assert later[0].started_at == NOW
    assert later[0].key == first[0].key  # same labels: same Alertmanager alert
    assert not later[0].same_firing(first[0])  # new numbers: re-sent with them


def silent(after: timedelta = timedelta(minutes=10), **kwargs: Any) -> Status:
    return judged(snap(power=[ups()], links=two_paths(), **kwargs), now=NOW + after)


def test_a_silent_site_keeps_its_alerts_and_goes_dark_when_its_time_runs_out() -> None:
    before = alerts_for(battery(30 * 60))  # 30 min left at 13:00
    assert names(before) == ["SiteDarkSoon"]
    ten_past = NOW + timedelta(minutes=10)
    quiet = alerts_for(silent(), before, now=ten_past)
    assert names(quiet) == ["SiteDarkSoon", "SiteSilent"]
    kept = quiet[0]
    assert kept.key == before[0].key and kept.started_at == NOW
    assert kept.annotations("u")["summary_en"].endswith(
        "(as of 12:59 07/09; the site stopped reporting)"  # its last report
    )
    half_past = NOW + timedelta(minutes=31)
    dark = alerts_for(silent(timedelta(minutes=31)), quiet, now=half_past)
    assert names(dark) == ["SiteDark"]  # the power explains the silence
    assert dark[0].started_at == NOW + timedelta(minutes=30)
    assert dark[0].summary_vi == (
        "không còn báo cáo; theo số liệu cuối, đã hết điện lúc 13:30 07/09"
    )
    # it reports again, on mains: everything clears
    assert alerts_for(judged(snap(power=[ups()], links=two_paths())), dark, now=half_past) == []


@pytest.mark.parametrize(
    ("case", "before", "figure_en", "figure_vi"),
    [
        ("on battery", lambda: battery(3 * 3600), "3 h left", "còn 3 giờ"),
        ("dark soon", lambda: battery(90 * 60), "1 h 30 min left", "còn 1 giờ 30 phút"),
        (
            "a path lost",
            lambda: judged(snap(power=[ups()], links=three_paths("mw1"))),
            "mw1 (microwave) is down",
            "mw1",
        ),
    ],
    ids=["on battery", "dark soon", "a path lost"],
)
def test_a_silent_site_s_kept_alert_says_as_of_when_in_its_description_too(
    case: str, before: Any, figure_en: str, figure_vi: str
) -> None:
    """The description is what most receivers show (SMS, chat): a silent site's last
    figures there must not read as the site's word now."""
    [kept, _] = alerts_for(silent(), alerts_for(before()), now=NOW + timedelta(minutes=10))
    notes = kept.annotations("u")
    assert figure_en in notes["description_en"] and figure_vi in notes["description"]
    assert notes["description_en"].endswith("(as of 12:59 07/09; the site stopped reporting)")
    assert notes["description"].endswith("(số liệu lúc 12:59 07/09, trạm không còn báo cáo)")
    # while it reports, its figures are its word now: no "as of"
    fresh = alerts_for(before())[0].annotations("u")
    assert "12:59" not in fresh["description_en"] and "12:59" not in fresh["description"]


def test_silence_alone_is_site_silent_and_a_cut_off_site_is_not_also_silent() -> None:
    [alert] = alerts_for(silent(online=False))
    assert (alert.name, alert.cause) == ("SiteSilent", "silence")
    cut = alerts_for(judged(snap(power=[ups()], links=three_paths("fo1", "mw1", "vs1"))))
    assert names(alerts_for(silent(), cut)) == ["TransportLost"]


def test_a_site_whose_reports_are_refused_for_its_clock_ahead_pages_as_silent_saying_so() -> None:
    """Its box 7 h ahead (collector/decode.py refuses every report): nothing of it can be
    judged, as a silent site's; the page says why, so nobody drives out to a link that
    works."""
    site = snap(power=[ups()], links=two_paths(), at=NOW - timedelta(minutes=10))
    refused = judged(site.with_refused_ahead(NOW - timedelta(seconds=5), 25_200.0, 300.0))
    [alert] = alerts_for(refused)
    assert (alert.name, alert.cause) == ("SiteSilent", "silence")
    assert alert.details_en == (reason(refused, "clock_ahead_refused").text_en,)
    assert "7 h ahead" in alert.details_en[0] and "nhanh 7 giờ" in alert.details_vi[0]


def test_while_the_collector_hears_nothing_a_silence_is_its_own() -> None:
    before = alerts_for(battery(3 * 3600))
    deaf = alerts_for(silent(), before, listening=False)  # its broker connection is down
    assert deaf == before  # kept as they were: no SiteSilent, no "as of" either
    assert names(alerts_for(silent(), listening=False)) == []
    assert names(alerts_for(silent(), before)) == ["SiteOnBattery", "SiteSilent"]


def test_nothing_known_since_the_collector_started_changes_nothing() -> None:
    before = alerts_for(battery(3 * 3600))
    fresh = SiteSnapshot(site=SITE, province=PROVINCE).with_meta(meta())
    unknown = judged(fresh)
    assert [r.code for r in unknown.reasons] == ["no_report_yet"]
    assert alerts_for(unknown, before) == before
    assert alerts_for(unknown) == []


def test_a_meeting_point_not_ready_for_its_own_reason_pages_and_one_explained_does_not() -> None:
    slow = (link("fo1", "fibre", "duct-a", rtt_ms=631.5), link("mw1", "microwave", "t", rtt_ms=640))
    point = judged(snap("meeting_point", power=[ups()], links=slow))
    assert point.verdict == "not_ready"
    [alert] = alerts_for(point)
    assert alert.name == "MeetingPointNotReady"
    assert alert.cause == "link_quality"  # its first reason's
    assert alert.details_vi == tuple(r.text_vi for r in point.reasons if r.severity != "info")
    assert alert.summary_vi.startswith("điểm cầu chưa sẵn sàng: ")
    # Mains lost and 2 h left: the power alert says it; the point's verdict adds nothing.
    power = battery(2 * 3600, kind="meeting_point")
    assert power.verdict == "not_ready"
    assert names(alerts_for(power)) == ["SiteDarkSoon"]


def test_an_agent_whose_clock_is_wrong_pages_for_it_and_its_verdict_holds() -> None:
    right = battery(5 * 3600)
    behind = judged(clock_behind(snap(power=[on_battery(runtime_s=5 * 3600 + AGE_S)],
                                      links=two_paths()), 3 * 3600))  # fmt: skip
    assert behind.verdict == right.verdict
    fired = alerts_for(behind)
    assert names(fired) == ["SiteOnBattery", "SiteClockWrong"]
    assert fired[0].summary_en == alerts_for(right)[0].summary_en  # its power as it is
    clock = fired[1]
    assert (clock.severity, clock.cause) == ("warning", "clock")
    assert clock.summary_en.startswith("the agent's clock is 3 h behind")
    assert "chỉnh giờ (NTP)" in clock.summary_vi
    # Ahead past the policy's tolerance: the same alert, its own words.
    ahead = judged(snap(power=[ups()], links=two_paths(), at=NOW + timedelta(minutes=5)))
    [alert] = alerts_for(ahead)
    assert (alert.name, alert.summary_en) == (
        "SiteClockWrong",
        reason(ahead, "clock_ahead").text_en,
    )
    # A meeting point not ready for its links: that is what its alert says, not the clock.
    slow = (link("fo1", "fibre", "duct-a", rtt_ms=631.5), link("mw1", "microwave", "t", rtt_ms=640))
    point = judged(clock_behind(snap("meeting_point", power=[ups()], links=slow), 600))
    assert point.verdict == "not_ready" and point.reasons[0].code == "clock_corrected"
    ready, clock = alerts_for(point)
    assert (ready.name, ready.cause, clock.name) == (
        "MeetingPointNotReady",
        "link_quality",
        "SiteClockWrong",
    )
    assert "clock" not in " ".join(ready.details_en)
    # Its clock set right: the alert ends.
    assert alerts_for(right, fired) == alerts_for(right)


def test_a_hardened_station_failing_criteria_pages_once_for_all_of_them() -> None:
    links = (link("mw1", "microwave", "tower-b"), link("vs1", "vsat", "sky"))
    station = snap(hardened=True, site_class="hardened", power=[ups()], links=links)
    compliance = station_compliance(station, None, RULES, NOW)
    assert compliance.status == "non_compliant"
    [alert] = alerts_for(judged(station), compliance=compliance)
    assert (alert.name, alert.cause) == ("HardenedStationNonCompliant", "compliance")
    # every failed criterion but the inventory's own bookkeeping, in the rules' words
    failed = [c for c in compliance.failed if c.code != "not_in_inventory"]
    assert {c.code for c in failed} == {"no_generator", "no_fibre_path"}
    assert alert.details_en == tuple(c.text("en") for c in failed)
    assert alert.summary_vi == "trạm kiên cố không đạt chuẩn: " + failed[0].text("vi")


def test_a_planned_meeting_at_risk_names_the_meeting() -> None:
    meeting = MeetingInfo("m-20240907-abc123", "Họp khẩn ứng phó bão số 3", NOW, 3 * 3600)
    assert meeting.watched(NOW - timedelta(hours=1, minutes=59), within_h=2)
    assert not meeting.watched(NOW - timedelta(hours=2, minutes=1), within_h=2)
    assert not meeting.watched(NOW + timedelta(hours=3, minutes=1), within_h=2)
    one_path = snap(
        "meeting_point",
        power=[ups(), genset(fuel_burn_l_per_h=2.0)],
        generator_declared=True,
        links=(link("fo1", "fibre", "duct-a"),),
    )
    evaluation = evaluate(one_path, RULES, NOW, meeting_duration_s=3 * 3600)
    for_it = for_meeting(evaluation, None, now=NOW, starts_at=NOW, max_age_s=86_400)
    point = to_status(for_it, one_path)
    assert point.verdict == "not_ready"
    [alert] = meeting_alerts(meeting, point, meta=None, previous=[], now=NOW)
    assert alert.labels["meeting"] == "m-20240907-abc123"
    labels = (alert.name, alert.cause, alert.labels["severity"])
    assert labels == ("MeetingAtRisk", "transport", "critical")
    first = reason(point, "paths_one_independent")
    assert alert.summary_en == (
        f"meeting «Họp khẩn ứng phó bão số 3» at 13:00 07/09: this point will not hold — "
        f"{first.text_en}"
    )
    ready = judged(snap("meeting_point", power=[ups()], links=two_paths()))
    assert ready.verdict != "not_ready"
    assert meeting_alerts(meeting, ready, meta=None, previous=[alert], now=NOW) == []


def test_texts_from_the_field_reach_annotations_as_one_plain_line() -> None:
    cut = judged(snap(power=[ups()], links=three_paths("fo1", "mw1", "vs1")))
    named = cut.model_copy(update={"name": "Trạm\n\x1b[2JGiả mạo\u202e"})
    [alert] = alerts_for(named)
    notes = alert.annotations("u")
    assert notes["summary"].startswith("Trạm [2JGiả mạo:")
    assert all(value.isprintable() for value in notes.values())


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("   ", None),
        ("\n\t\r\n", None),
        ("\u200f\u200e\u202e", None),  # bidi marks and an override: nothing to see
        ("\u200b\u200c\u200d\u2060\ufeff", None),  # zero-width characters alone
        ("\x1b\x00\x7f", None),
        ("Trạm Đồ Sơn", "Trạm Đồ Sơn"),
        ("\u200bTrạm\u200b", "\u200bTrạm\u200b"),  # something shows: kept, the sinks clean it
        ("-", "-"),
    ],
)
def test_a_site_named_with_nothing_visible_is_named_by_its_id(name: str, shown: str | None) -> None:
    """An agent's name of blanks, bidi marks or zero-width characters alone would make the
    alert's summary ": mains lost..." and the board's link empty: whose site is it?"""
    site = snap(power=[on_battery(runtime_s=3 * 3600.0)], links=two_paths())
    assert site.meta is not None
    status = judged(site.with_meta(site.meta.model_copy(update={"name": name})))
    assert status.name == shown
    [alert] = alerts_for(status)
    summary = alert.annotations("u")["summary_en"]
    assert summary.startswith(f"{SITE}: " if shown is None else one_line(f"{shown}: "))


def test_the_policy_default_is_the_shipped_one() -> None:
    assert load_policy().alerts == AlertPolicy()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'alerts: {alertmanagers: ["http://127.0.0.1:9093", "am:9093"], external_url: "http://x"}',
            "alerts.alertmanagers.1: Value error, not an http(s) URL with a host; fix: write it "
            "like http://127.0.0.1:9093 (got 'am:9093')",
        ),
        (
            'alerts: {alertmanagers: [], external_url: "http://x"}',
            "alerts.alertmanagers: Tuple should have at least 1 item after validation, not 0 "
            "(got []). Fix: add at least one",
        ),
        (
            'alerts: {alertmanagers: ["http://a:9093"]}',
            "alerts.external_url: Field required. Fix: add this key",
        ),
        (
            'alerts: {alertmanagers: ["http://a:9093"], external_url: "http://x", '
            'site_path: "/sites/{id}"}',
            "alerts.site_path: Value error, must start with / and hold {site} once; fix: e.g. "
            "/sites/{site} (got '/sites/{id}')",
        ),
        (
            'alerts: {alertmanagers: ["http://a:9093", "http://a:9093/"], external_url: "http://x"}',
            "alerts.alertmanagers: Value error, an Alertmanager is listed twice; fix: list each",
        ),
        (
            'alerts: {alertmanagers: ["http://a:9093"], external_url: "http://x", resend_s: 0}',
            "alerts.resend_s: Input should be greater than 0 (got 0). Fix: use a larger value",
        ),
        (
            'alerts: {alertmanagers: ["http://a:9093"], external_url: "http://x", '
            "system: {broker_down_after_s: -5}}",
            "alerts.system.broker_down_after_s: Input should be greater than or equal to 0 "
            "(got -5)",
        ),
        (
            'alerts: {alertmanagers: ["http://a:9093"], external_url: "http://x", '
            "system: {heartbeet: false}}",
            "alerts.system.heartbeet: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_alerts_config_names_key_value_and_fix(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml_model(text, CollectorConfig, source="collector.yaml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_the_shipped_collector_config_takes_its_alerts_block() -> None:
    shipped = (REPO / "firmware-configs" / "collector.yaml").read_text()
    block = "\n".join(
        line[2:] for line in shipped.splitlines() if line.startswith(("# alerts:", "#   "))
    )
    config = parse_yaml_model(shipped + "\n" + block, CollectorConfig, source="collector.yaml")
    assert config.alerts is not None
    assert config.alerts.alertmanagers == ("http://127.0.0.1:9093",)
    links = SiteLinks(config.alerts.external_url, config.alerts.site_path)
    assert links.site_url("hp-bts-1") == "https://noc.example.vn/kienco/sites/hp-bts-1"
    assert config.alerts.system.collector == "kienco-collector-1"
    assert config.alerts.system.broker_down_after_s == 60


@pytest.mark.parametrize(
    ("left_h", "since_min", "previous", "expected"),
    [
        # 'dark in 2 h 10 min' a report interval ago (15 min): 1 h 55 min left now
        (2 + 10 / 60, 15, None, "SiteDarkSoon"),
        (2 + 10 / 60, 5, None, "SiteOnBattery"),  # 2 h 5 min now: not yet
        (2 + 10 / 60, 0, None, "SiteOnBattery"),
        # short, and the clearing line (2.5 h) passed at the judgement, not now
        (2.6, 20, "SiteDarkSoon", "SiteDarkSoon"),
        (2.6, 0, "SiteDarkSoon", "SiteOnBattery"),
        # the time that passed counts once: judged just now is its figure as it is
        (1.9, 0, None, "SiteDarkSoon"),
    ],
)
def test_dark_soon_compares_the_time_left_now_not_at_the_last_judgement(
    left_h: float, since_min: float, previous: str | None, expected: str
) -> None:
    """The sender looks at a site on battery every resend, between its reports: the time
    it has left shrinks while nobody reports it, and the page must not wait for the next
    report to say it is under the line."""
    before = alerts_for(battery(3600 if previous == "SiteDarkSoon" else 3 * 3600))
    status = battery(left_h * 3600)
    later = NOW + timedelta(minutes=since_min)
    found = alerts_for(status, before if previous else [], now=later)
    assert names(found) == [expected]
    # when it goes dark is the judgement's own figure, whenever it is looked at
    assert found[0].dark_at == status.evaluated_at + timedelta(seconds=status.dark_in_s or 0)


def test_a_generator_short_of_fuel_is_dark_soon_as_its_fuel_burns_between_reports() -> None:
    """On generator with 2 h 10 min of fuel judged 15 min ago: 1 h 55 min now."""
    fuel_h = 2 + 10 / 60
    gen = genset(generator_running=True, fuel_l=fuel_h * 10.0, fuel_burn_l_per_h=10.0)
    status = judged(snap(power=[gen], links=two_paths()))
    assert status.dark_in_s is not None and status.dark_in_s > 2 * 3600
    assert names(alerts_for(status)) == []  # fuel for longer than the line: what it is for
    assert names(alerts_for(status, now=NOW + timedelta(minutes=15))) == ["SiteDarkSoon"]


def test_a_site_back_on_mains_is_not_dark_soon_by_an_old_figure() -> None:
    """Time left is counted down only while the site is judged off mains."""
    status = judged(snap(power=[ups()], links=two_paths()))
    assert names(alerts_for(status, now=NOW + timedelta(hours=10))) == []


def listed(operator: str | None = "viettel", kind: Any = "station") -> Any:
    from collector.inventory import InventorySite

    return InventorySite(
        site=SITE, province=PROVINCE, kind=kind, operator=operator, area="do-son", hardened=False
    )


@pytest.mark.parametrize(
    ("case", "register", "first_labels"),
    [
        # no register: the first report's alert cannot know its operator
        ("unlisted", None, ("unknown", "unknown")),
        # the register knows: no label guessed 'unknown', routed right from the first page
        ("listed", "viettel", ("station", "viettel")),
    ],
)
def test_a_meta_arriving_after_the_first_report_changes_no_firing_alert_s_labels(
    case: str, register: str | None, first_labels: tuple[str, str]
) -> None:
    """Alertmanager's identity of an alert is its labels: a label that changes while it
    fires is one alert resolved (a false 'resolved') and another fired (a second page)."""
    left = 5 * 3600 + AGE_S
    bare = judged(snap(power=[on_battery(runtime_s=left)], links=two_paths(), with_meta=False))
    reg = None if register is None else listed(register)
    [first] = alerts_for(bare, site_meta=None, listed=reg)
    assert (first.labels["kind"], first.labels["operator"]) == first_labels
    said = meta().model_copy(update={"operator": "viettel"})
    known = judged(snap(power=[on_battery(runtime_s=left)], links=two_paths()))
    later = NOW + timedelta(minutes=1)
    [same] = alerts_for(known, [first], now=later, site_meta=said, listed=reg)
    assert same.key == first.key and same.started_at == first.started_at
    # it clears; the next alert of the site carries what is known now
    again = alerts_for(known, [], now=later + timedelta(hours=1), site_meta=said, listed=reg)
    assert (again[0].labels["kind"], again[0].labels["operator"]) == ("station", "viettel")


def test_a_silent_site_s_alerts_keep_their_labels_too() -> None:
    left = 5 * 3600 + AGE_S
    bare = judged(snap(power=[on_battery(runtime_s=left)], links=two_paths(), with_meta=False))
    [first] = alerts_for(bare, site_meta=None)
    said = meta().model_copy(update={"operator": "viettel"})
    quiet = alerts_for(silent(), [first], now=NOW + timedelta(minutes=10), site_meta=said)
    assert names(quiet) == ["SiteOnBattery", "SiteSilent"]
    assert quiet[0].key == first.key
    assert quiet[1].labels["operator"] == "viettel"  # a new alert: as known now


def test_a_meeting_at_risk_keeps_its_labels_while_it_fires() -> None:
    info = MeetingInfo("m-1", "Họp khẩn", NOW + timedelta(hours=1), 7200)
    bare = judged(snap("meeting_point", power=[on_battery(runtime_s=1800)], links=two_paths(),
                       with_meta=False))  # fmt: skip
    [first] = meeting_alerts(info, bare, meta=None, previous=[], now=NOW)
    said = meta("meeting_point").model_copy(update={"operator": "vnpt"})
    point = judged(snap("meeting_point", power=[on_battery(runtime_s=1800)], links=two_paths()))
    [same] = meeting_alerts(info, point, meta=said, previous=[first], now=NOW)
    assert same.key == first.key


@pytest.mark.parametrize(
    ("silent_for", "expected"),
    [
        (timedelta(minutes=10), ["SiteOnBattery", "SiteSilent"]),  # 2 h 50 min left
        # by its last figures 1 h 55 min left: as critical as had it kept reporting
        (timedelta(hours=1, minutes=5), ["SiteDarkSoon", "SiteSilent"]),
        (timedelta(hours=3, minutes=1), ["SiteDark"]),  # its time ran out
    ],
)
def test_a_silent_site_on_battery_is_dark_soon_when_its_last_figures_say_so(
    silent_for: timedelta, expected: list[str]
) -> None:
    """A station on battery with 3 h left stops reporting: an hour later, by its own last
    figures, it goes dark within the 2 h line. A warning 'on battery (as of 13:00)' there
    tells the NOC it has time it does not have."""
    before = alerts_for(battery(3 * 3600))
    later = NOW + silent_for
    found = alerts_for(silent(silent_for), before, now=later)
    assert names(found) == expected
    if expected[0] == "SiteDarkSoon":
        soon = found[0]
        assert soon.severity == "critical" and soon.dark_at == before[0].dark_at
        notes = soon.annotations("u")
        assert notes["summary_en"].startswith(
            "Trạm Đồ Sơn: going dark soon, at 16:00 07/09: mains lost"
        )
        assert notes["summary_en"].endswith("(as of 12:59 07/09; the site stopped reporting)")
        # kept as it is on the next look: its start too
        again = alerts_for(silent(silent_for), found, now=later + timedelta(minutes=1))
        assert names(again) == expected and again[0].started_at == soon.started_at


@pytest.mark.parametrize(
    ("silent_for", "expected"),
    [
        (timedelta(minutes=10), ["SiteSilent"]),  # 3 h 50 min of fuel left by its figures
        (timedelta(hours=2, minutes=5), ["SiteDarkSoon", "SiteSilent"]),  # 1 h 55 min
        (timedelta(hours=4, minutes=1), ["SiteDark"]),  # its fuel ran out at 17:00
    ],
)
def test_a_silent_site_on_generator_goes_dark_soon_then_dark_by_its_last_figures(
    silent_for: timedelta, expected: list[str]
) -> None:
    """On generator with fuel for 4 h (no alert: what a generator is for), it stops
    reporting. Four hours later, by its own last figures, it is dark: 'silent' (a
    warning) there hides a dark station from the NOC."""
    gen = genset(generator_running=True, fuel_l=40.0, fuel_burn_l_per_h=10.0)
    running = judged(snap(power=[gen], links=two_paths()))
    assert names(alerts_for(running)) == [] and running.dark_in_s is not None
    dark_at = running.evaluated_at + timedelta(seconds=running.dark_in_s)
    later = NOW + silent_for
    found = alerts_for(silent(silent_for), now=later, last_dark_at=dark_at)
    assert names(found) == expected
    if expected[0] != "SiteSilent":
        assert found[0].dark_at == dark_at and found[0].severity == "critical"
        assert found[0].labels["cause"] == "power"
    if expected[0] == "SiteDark":
        assert found[0].summary_en.startswith("no reports; by its last figures it ran out")
        assert found[0].started_at == dark_at
    if expected[0] == "SiteDarkSoon":
        assert "runs out of power at 16:59 07/09" in found[0].summary_en  # Vietnam time
        assert "sẽ hết điện lúc" in found[0].summary_vi
        # the next look carries it, then it turns dark when its time comes
        again = alerts_for(silent(silent_for), found, now=later, last_dark_at=dark_at)
        assert names(again) == expected and again[0].started_at == found[0].started_at
        dark = alerts_for(silent(timedelta(hours=5)), again, now=NOW + timedelta(hours=5),
                          last_dark_at=dark_at)  # fmt: skip
        assert names(dark) == ["SiteDark"]
