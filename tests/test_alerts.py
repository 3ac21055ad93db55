"""Alerts from verdicts (collector/alerts.py): one per root cause per site, tables of cases.

Statuses are built from the rules' own findings, so the texts are the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.alerts import Alert, MeetingInfo, SiteLinks, meeting_alerts, site_alerts
from collector.config import CollectorConfig
from contract.wire import Meta, Severity, SiteKind, StationState, Status, Verdict
from plumbing.config_errors import ConfigError, parse_yaml_model
from rules import Finding, PolicyError, load_policy, texts
from rules.alert_policy import AlertPolicy
from rules.compliance import Criterion, StationCompliance
from rules.findings import RuleName

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 9, 7, 7, 0, tzinfo=UTC)  # 14:00 in Hà Nội
POLICY = AlertPolicy()  # dark soon: station 2 h, meeting point 4 h; clears 25 % above
ALL_DOWN = {"paths_down": 2, "paths_total": 2}


def finding(
    rule: RuleName, code: str, severity: Severity = "warning", **values: float | str | None
) -> Finding:
    """Text values are the finding's labels (path, media), the rest its numbers; a number
    its texts need that the case does not care about is filled in."""
    labels = {k: v for k, v in values.items() if isinstance(v, str)}
    numbers: dict[str, float | None] = {
        name: NOW.timestamp() if name.endswith("_ts") else 1.0
        for name in texts.placeholders(code)
    }
    numbers.update({k: v for k, v in values.items() if not isinstance(v, str)})
    for name in labels:
        numbers.pop(name, None)
    return Finding(rule, "s", severity, code, numbers, labels)


def status(
    *findings: Finding,
    site: str = "hp-bts-1",
    kind: SiteKind = "station",
    verdict: Verdict = "not_ready",
    state: StationState = "up_commercial",
    dark_in_s: float | None = None,
    name: str | None = "Trạm BTS Kiến An",
    last_report_at: datetime | None = NOW,
) -> Status:
    return Status(
        site=site,
        province="hp",
        site_kind=kind,
        name=name,
        verdict=verdict,
        station_state=state,
        evaluated_at=NOW,
        dark_in_s=dark_in_s,
        last_report_at=last_report_at,
        reasons=tuple(f.to_reason() for f in findings),
    )


def meta(site: str = "hp-bts-1", kind: SiteKind = "station", operator: str = "vnpt") -> Meta:
    return Meta(
        site=site,
        province="hp",
        site_kind=kind,
        name="Trạm",
        operator=operator,
        interval_s=60,
        agent_version="t",
        at=NOW,
    )


def alerts_for(
    s: Status, previous: Sequence[Alert] = (), now: datetime = NOW, **kw: object
) -> list[Alert]:
    return site_alerts(
        s,
        meta=kw.pop("meta", meta(s.site, s.site_kind or "station")),  # type: ignore[arg-type]
        previous=previous,
        policy=POLICY,
        now=now,
        **kw,  # type: ignore[arg-type]
    )


def names(alerts: Sequence[Alert]) -> list[str]:
    return [a.name for a in alerts]


def on_battery(left_s: float, code: str = "on_battery_no_generator") -> Status:
    return status(
        finding("backup_power", code, "warning", dark_in_s=left_s),
        state="up_battery",
        dark_in_s=left_s,
    )


def test_on_battery_is_one_alert_with_its_labels_numbers_and_link() -> None:
    [alert] = alerts_for(on_battery(3 * 3600 + 20 * 60))
    assert alert.labels == {
        "alertname": "SiteOnBattery",
        "severity": "warning",
        "province": "hp",
        "site": "hp-bts-1",
        "kind": "station",
        "operator": "vnpt",
        "cause": "power",
    }
    notes = alert.annotations(SiteLinks("https://noc.example.vn/").site_url("hp-bts-1"))
    assert notes["summary"] == (
        "Trạm BTS Kiến An: đang chạy bằng ắc quy, còn 3 giờ 20 phút, không có máy phát"
    )
    assert notes["summary_en"] == "Trạm BTS Kiến An: on battery, 3 h 20 min left, no generator"
    assert notes["site_url"] == "https://noc.example.vn/api/v1/sites/hp-bts-1"
    assert notes["dark_at"] == "2024-09-07T10:20:00+00:00"
    assert notes["dark_at_local"] == "17:20 07/09"  # Vietnam time
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
    before = alerts_for(on_battery(1.0 * 3600 if previous == "SiteDarkSoon" else 3 * 3600))
    assert previous is None or names(before) == [previous]
    now = alerts_for(on_battery(left_h * 3600), before if previous else [])
    assert names(now) == [expected]
    assert now[0].labels["severity"] == ("critical" if expected == "SiteDarkSoon" else "warning")
    if expected == "SiteDarkSoon":
        assert now[0].summary_vi.startswith("sắp mất nguồn: đang chạy bằng ắc quy, còn")


def test_the_threshold_is_per_kind_from_the_policy(tmp_path: Path) -> None:
    point = status(
        finding("backup_power", "on_battery", dark_in_s=3 * 3600),
        kind="meeting_point",
        site="hp-dc-1",
        dark_in_s=3 * 3600,
    )
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


def test_a_generator_with_fuel_is_no_alert_and_one_short_of_fuel_is() -> None:
    def on_generator(left_h: float) -> Status:
        left = left_h * 3600
        code = "on_generator"
        found = finding("backup_power", code, "info", generator_s=left, dark_in_s=left)
        return status(found, state="up_generator", dark_in_s=left, verdict="ready")

    assert alerts_for(on_generator(60)) == []
    [alert] = alerts_for(on_generator(1.5))
    assert alert.name == "SiteDarkSoon"
    assert "nhiên liệu đủ 1 giờ 30 phút" in alert.summary_vi


def test_a_dark_site_pages_for_its_power_only() -> None:
    dark = status(
        finding("station_state", "power_down", "critical", battery_s=0, dark_in_s=0),
        state="down_power",
    )
    [alert] = alerts_for(dark)
    assert (alert.name, alert.cause, alert.labels["severity"]) == ("SiteDark", "power", "critical")
    assert alert.summary_en == "power down: battery depleted"


def test_a_transport_cut_is_one_alert_not_one_per_path() -> None:
    numbers = {"paths_total": 3, "paths_down": 3, "paths_up": 0, "required": 2}
    lost = status(finding("multipath", "path_all_down", "critical", **numbers))
    [alert] = alerts_for(lost)
    assert (alert.name, alert.cause) == ("TransportLost", "transport")
    assert alert.summary_vi == "mất toàn bộ đường truyền (3/3 đường)"

    some = status(
        finding("multipath", "path_down", "info", path="fibre-vt", media="fibre"),
        finding("multipath", "path_down", "info", path="mw-vt", media="microwave"),
        finding("multipath", "paths_one_independent", "warning", required=2),
        verdict="degraded",
    )
    [alert] = alerts_for(some)
    assert alert.name == "PathLost"
    assert alert.summary_en == "path fibre-vt (fibre) is down; path mw-vt (microwave) is down"
    assert alert.details_en[-1] == "only one independent path up, 2 required"


def test_on_battery_and_cut_off_are_two_root_causes() -> None:
    both = status(
        finding("backup_power", "on_battery", dark_in_s=5 * 3600),
        finding("multipath", "path_all_down", "critical", paths_down=2, paths_total=2),
        state="down_transport",
        dark_in_s=5 * 3600,
    )
    assert names(alerts_for(both)) == ["SiteOnBattery", "TransportLost"]


def test_an_alert_keeps_its_start_while_it_lasts() -> None:
    first = alerts_for(on_battery(5 * 3600))
    later = alerts_for(on_battery(4 * 3600), first, now=NOW + timedelta(hours=1))
    assert later[0].started_at == NOW
    assert later[0].key == first[0].key  # same labels: same Alertmanager alert
    assert not later[0].same_firing(first[0])  # new numbers: re-sent with them


def silent(code: str = "no_recent_report", last: datetime = NOW) -> Status:
    numbers = {"age_s": 600.0, "interval_s": 60.0, "stale_after_s": 180.0}
    found = Finding("freshness", "s", "warning", code, numbers, impact="unknown")
    return status(found, verdict="unknown", state="unknown", last_report_at=last)


def test_a_silent_site_keeps_its_alerts_and_goes_dark_when_its_time_runs_out() -> None:
    before = alerts_for(on_battery(30 * 60))  # 30 min left at 14:00
    assert names(before) == ["SiteDarkSoon"]
    ten_past = NOW + timedelta(minutes=10)
    quiet = alerts_for(silent(), before, now=ten_past)
    assert names(quiet) == ["SiteDarkSoon", "SiteSilent"]
    kept = quiet[0]
    assert kept.key == before[0].key and kept.started_at == NOW
    assert kept.annotations("u")["summary_en"].endswith(
        "(as of 14:00 07/09; the site stopped reporting)"
    )
    half_past = NOW + timedelta(minutes=31)
    dark = alerts_for(silent(), quiet, now=half_past)
    assert names(dark) == ["SiteDark"]  # the power explains the silence
    assert dark[0].started_at == NOW + timedelta(minutes=30)
    assert dark[0].summary_vi == (
        "không còn báo cáo; theo số liệu cuối, đã hết điện lúc 14:30 07/09"
    )
    # it reports again, on mains: everything clears
    assert alerts_for(status(verdict="ready"), dark, now=half_past) == []


def test_silence_alone_is_site_silent_and_a_cut_off_site_is_not_also_silent() -> None:
    [alert] = alerts_for(silent("agent_offline"))
    assert (alert.name, alert.cause) == ("SiteSilent", "silence")
    cut = alerts_for(status(finding("multipath", "path_all_down", "critical", **ALL_DOWN)))
    assert names(alerts_for(silent(), cut)) == ["TransportLost"]


def test_nothing_known_since_the_collector_started_changes_nothing() -> None:
    before = alerts_for(on_battery(3 * 3600))
    found = Finding("freshness", "s", "warning", "no_report_yet", impact="unknown")
    unknown = status(found, verdict="unknown", state="unknown", last_report_at=None)
    assert alerts_for(unknown, before) == before
    assert alerts_for(unknown) == []


def test_a_meeting_point_not_ready_for_its_own_reason_pages_and_one_explained_does_not() -> None:
    slow = status(
        finding(
            "link_quality", "link_rtt_high", "critical", rtt_ms=631.5, max_rtt_ms=100, path="vsat"
        ),
        kind="meeting_point",
        site="hp-dc-1",
    )
    [alert] = alerts_for(slow)
    assert (alert.name, alert.cause) == ("MeetingPointNotReady", "link_quality")
    assert alert.summary_vi.startswith("điểm cầu chưa sẵn sàng: độ trễ tốt nhất 631,5 ms")
    numbers = {"needed_s": 4.8 * 3600, "backup_s": 3600.0, "margin_pct": 20}
    power = status(
        finding("backup_power", "on_battery", dark_in_s=5 * 3600),
        finding("meeting", "meeting_power_runs_out", "critical", **numbers),
        kind="meeting_point",
        site="hp-dc-1",
        dark_in_s=5 * 3600,
    )
    assert names(alerts_for(power)) == ["SiteOnBattery"]  # the power alert says it


def test_a_hardened_station_failing_a_criterion_pages_once_for_all_of_them() -> None:
    compliance = StationCompliance(
        site="hp-bts-1",
        name="Trạm",
        province="hp",
        area="do-son",
        area_name=None,
        operator="vnpt",
        declared_hardened=True,
        in_inventory=True,
        status="non_compliant",
        failed=(
            Criterion("no_fibre_path"),
            Criterion("silent", {"age_s": 600.0}),
            Criterion("no_generator"),
        ),
    )
    [alert] = alerts_for(status(verdict="ready"), compliance=compliance)
    assert (alert.name, alert.cause) == ("HardenedStationNonCompliant", "compliance")
    assert alert.summary_vi == "trạm kiên cố không đạt chuẩn: không có đường truyền cáp quang"
    assert alert.details_en == ("no fibre path", "no generator")  # silence has its own alert


def test_a_planned_meeting_at_risk_names_the_meeting() -> None:
    meeting = MeetingInfo("m-20240907-abc123", "Họp khẩn ứng phó bão số 3", NOW, 3 * 3600)
    assert meeting.watched(NOW - timedelta(hours=1, minutes=59), within_h=2)
    assert not meeting.watched(NOW - timedelta(hours=2, minutes=1), within_h=2)
    assert not meeting.watched(NOW + timedelta(hours=3, minutes=1), within_h=2)
    point = status(
        finding("multipath", "paths_one_independent", "critical", required=2),
        finding("rehearsal", "rehearsal_missing", "warning"),
        kind="meeting_point",
        site="hp-dc-1",
    )
    [alert] = meeting_alerts(meeting, point, meta=meta("hp-dc-1"), previous=[], now=NOW)
    assert alert.labels["meeting"] == "m-20240907-abc123"
    assert (alert.name, alert.cause, alert.labels["severity"]) == (
        "MeetingAtRisk",
        "transport",
        "critical",
    )
    assert alert.summary_en == (
        "meeting «Họp khẩn ứng phó bão số 3» at 14:00 07/09: this point will not hold — "
        "only one independent path up, 2 required"
    )
    ready = status(kind="meeting_point", site="hp-dc-1", verdict="degraded")
    assert meeting_alerts(meeting, ready, meta=None, previous=[alert], now=NOW) == []


def test_texts_from_the_field_reach_annotations_as_one_plain_line() -> None:
    named = status(
        finding("multipath", "path_all_down", "critical", **ALL_DOWN),
        name="Trạm\n\x1b[2JGiả mạo\u202e",
    )
    [alert] = alerts_for(named)
    notes = alert.annotations("u")
    assert notes["summary"].startswith("Trạm [2JGiả mạo:")
    assert all(value.isprintable() for value in notes.values())


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
    assert links.site_url("hp-bts-1") == "https://noc.example.vn/kienco/api/v1/sites/hp-bts-1"
