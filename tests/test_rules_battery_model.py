"""A battery model travels from the site config to the verdict: config → meta → collector → rules.

A UPS that reports 65 535 s on mains is judged from *its* battery's full-load runtime
when the site config gives one, and is said to have unknown hours (with the fix) when
it does not — never judged from a fleet-wide guess.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent.config import SiteConfig
from agent.meta import meta_message
from collector.decode import Decoded, decode
from collector.state import SiteStates
from contract.wire import Meta, PowerReading, Report
from rules import evaluate
from tests.test_rules_support import NOW, POLICY, ago, two_paths

UPS: dict[str, Any] = {
    "device": "ups1",
    "role": "ups",
    "protocol": "nut",
    "host": "127.0.0.1",
    "ups": "site-ups",
}


def site_config(**ups: Any) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": "hp-bts-301",
            "province": "hp",
            "kind": "station",
            "name": "Trạm Đồ Sơn 3",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "devices": [{**UPS, **ups}],
        }
    )


def through_the_collector(meta: Meta) -> SiteStates:
    """The meta and one report as the collector takes them: bytes decoded, folded in."""
    report = Report(
        site=meta.site,
        province=meta.province,
        seq=1,
        taken_at=ago(30),
        interval_s=60,
        power=(
            PowerReading(
                device="ups1",
                mains_present=True,
                on_battery=False,
                battery_charge_pct=100,
                battery_runtime_s=65_535,  # the 16-bit cap some firmware reports on mains
                load_pct=40,
            ),
        ),
        links=two_paths(),
    )
    states = SiteStates()
    for kind, message in (("meta", meta), ("report", report)):
        decoded = decode(
            f"kienco/v1/hp/hp-bts-301/{kind}",
            message.model_dump_json().encode(),
            now=NOW,
            max_bytes=65_536,
            future_tolerance_s=60,
        )
        assert isinstance(decoded, Decoded), decoded
        if isinstance(decoded.message, Meta):
            states.apply_meta(decoded.message)
        else:
            assert isinstance(decoded.message, Report)
            states.apply_report(decoded.message, received_at=NOW)
    return states


def test_the_site_configs_battery_model_reaches_the_rules() -> None:
    config = site_config(battery={"full_load_runtime_s": 7200})
    meta = meta_message(config, interval_s=60, now=ago(600))
    assert meta.devices[0].battery is not None
    assert meta.devices[0].battery.full_load_runtime_s == 7200
    snapshot = through_the_collector(meta).get("hp-bts-301")
    assert snapshot is not None
    e = evaluate(snapshot, POLICY, NOW)
    # 7200 s at full load x 100 % charge / 40 % load = 5 h: short of 8 h, above the 4 h floor
    assert e.backup_hours == pytest.approx(5.0)
    assert [f.code for f in e.findings] == ["backup_hours_short", "runtime_untrusted"]
    assert e.verdict == "degraded"
    note = e.findings[1]
    assert note.text_en == (
        "ignored the runtime ups1 reports (65,535 s), not plausible; "
        "estimated 5 h from its charge instead"
    )


def test_without_a_model_the_hours_are_unknown_and_the_fix_is_said() -> None:
    meta = meta_message(site_config(), interval_s=60, now=ago(600))
    # what an agent from before the battery model sends: no "battery" key at all
    assert "battery" not in meta.model_dump_json(exclude_none=True)
    snapshot = through_the_collector(meta).get("hp-bts-301")
    assert snapshot is not None
    e = evaluate(snapshot, POLICY, NOW)
    assert e.verdict == "unknown"
    assert e.backup_hours is None
    (finding,) = e.findings
    assert (finding.code, finding.severity, finding.effect) == (
        "backup_hours_unknown_no_model",
        "warning",
        "unknown",
    )
    assert finding.text_en == (
        "backup hours unknown: ups1 reports no trustworthy runtime and the site config gives "
        "no model of its battery; set the battery's full-load runtime in the site config "
        "(battery: full_load_runtime_s)"
    )
    assert finding.text_vi == (
        "không rõ thời gian dự phòng: ups1 không báo thời gian lưu điện tin cậy được và cấu "
        "hình trạm không có mô hình ắc quy của nó; hãy khai báo thời gian lưu điện ở tải đầy "
        "của ắc quy trong cấu hình trạm (battery: full_load_runtime_s)"
    )


def test_an_old_agents_meta_still_validates() -> None:
    old = (
        '{"kind":"meta","v":1,"site":"hp-bts-301","province":"hp","site_kind":"station",'
        '"name":"Trạm","devices":[{"device":"ups1","role":"ups","protocol":"nut"}],'
        '"interval_s":60,"agent_version":"0.1.0","at":"2024-09-07T05:00:00Z"}'
    )
    assert Meta.model_validate_json(old).devices[0].battery is None


@pytest.mark.parametrize(
    ("ups", "message"),
    [
        pytest.param({"battery": {"full_load_runtime_s": 0}}, "greater than 0", id="zero"),
        pytest.param({"battery": {"runtime": 600}}, "runtime", id="unknown-key"),
        pytest.param(
            {"role": "generator", "battery": {"full_load_runtime_s": 600}},
            "a generator has no battery",
            id="not-on-a-generator",
        ),
    ],
)
def test_a_bad_battery_model_is_refused_at_start(ups: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        site_config(**ups)
