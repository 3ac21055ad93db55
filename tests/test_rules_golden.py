"""Verdicts held to the byte: a storm over a varied fleet, judged as the collector judges it.

A fleet of 60 sites in 3 provinces (kienco/fleet/fleet.py's storm: mains lost, batteries
draining, generators starting, a fibre duct cut, sites going dark and coming back) with
every site given something of its own to be judged on: a vendor's capped runtime, a load
too low to trust, a DC plant, probe errors, links slow, unmeasured, sharing a duct or all
down, a meeting room with faults, no power readings, a clock ahead, an outbox replaying
its backlog, no meta, a site not in the inventory, a province's risk level raised and
lowered. 48 rounds of 30 s; each report is decoded, folded (``SiteStates``) and judged
(``Verdicts.evaluate``: rules, hysteresis, ``Status`` and its JSON, the verdict points),
and the silence sweep judges the sites due. Every few rounds each site is also judged
by ``rules.evaluate`` alone at other risk levels and for planned meetings.

What is compared: each judgement's status JSON, its verdict points in line protocol and
what the hysteresis holds; each pure evaluation's findings (codes, numbers, labels,
both texts) and status JSON. Recorded from main before the rules were made cheaper
(tests/fixtures/rules-golden.json: a short hash per site and round; the first (round,
site) that differs is printed in full on failure). Recorded again when the silence sweep
stopped judging sites that had reported since (2026-12-06): 742 of its 1 065 judgements
went; every report, meta, state and risk judgement kept its verdict, station state and
reason codes, and 14 of the 9 256 differ only in the numbers of the status shown while a
change waits out its hold (the shown judgement is the report's, not a later sweep's).
Recorded again when a report heard live counted as taken no later than it was heard
(2026-12-07, rules/freshness.py ``newest_taken_by``): of 6 480 statuses none changed
its verdict or reason codes; the site whose clock is 90 s ahead says so (``ahead_s``
90.5, "2 min"; it said what was left of it when judged, 60.5, "1 min"), and its
silences' ages count from its reports' arrivals, 90 s longer ("4 min", was "3 min").
Recorded again when a change's hold came to run from when the site first differed from
what is shown, however it was worded since (2026-12-07, rules/hysteresis.py): the old
hold restarted at each new wording and never ended, so 7 sites showed a verdict long
gone (hp-bts-000025 "degraded, backup short" for 11 min while two of its paths were down
and it was not_ready; hp-dc-000049 showed a stale verdict in 34 of its rounds); of the last
statuses per round and site, 75 differ (54 in their verdict: 22 unknown -> not_ready,
18 degraded -> not_ready, 14 not_ready -> unknown), each now the site's judgement of at
most one hold before.
Recorded again when the backup hours short of a target were said rounded down
(2026-12-07, rules/texts.py ``{backup_h:below}``: 7.96 h read "8 h of backup power, an
ordinary station needs 8 h"): of the 9 525 records 76 differ, in their texts only (the
status's, the findings' and the points'): "60,5 giờ" for 60.57 h, was "60,6"; no
verdict, code, number or label changed.

Only when a verdict, a text or the status itself changes on purpose, record again:

    KIENCO_GOLDEN_WRITE=1 .venv/bin/pytest tests/test_rules_golden.py
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import collector.decode as decode_module
from collector.decode import Decoded, decode
from collector.line_protocol import encode_many
from collector.readiness import Verdicts
from collector.state import SiteStates
from contract.wire import Meta, Report, State
from kienco.fleet.fleet import Site, Storm, meta_payload, report_payload, state_payload, utc_iso
from rules import evaluate, load_policy, to_status
from tests.support.garbage import cyclic_garbage

GOLDEN = Path(__file__).parent / "fixtures" / "rules-golden.json"
PROVINCES = ("hn", "hp", "qn")
SITES = 60
ROUNDS = 48
INTERVAL_S = 30.0
START = datetime(2024, 9, 7, 6, 0, tzinfo=UTC)  # Yagi's landfall in Quảng Ninh and Hải Phòng
RISK_PROVINCE, RISK_FROM, RISK_TO = "qn", 16, 32
SILENT = range(18, 26)  # an outbox's site is silent then, and replays these rounds after
PURE_EVERY = 4

# Sticky per site: what its hardware or configuration gives the rules to judge.
VARIANTS = (
    "plain",
    "ups_cap",  # the UPS says 65 535 s: a known vendor cap
    "low_load",  # a load below what runtimes can be trusted at
    "slow_links",  # every up path over the RTT, jitter and loss limits
    "unmeasured",  # paths up, no RTT or loss measured
    "shared_duct",  # fibre and microwave in one duct
    "links_down",  # every path down
    "dc_plant",  # a DC plant's capacity and current
    "probe_error",  # the generator's probe failed
    "room",  # a meeting room with a camera fault and a codec not registered
    "no_power",  # no power reading at all
    "clock_ahead",  # the agent's clock 90 s ahead
    "outbox",  # silent, then replaying its backlog
    "no_meta",  # never sends its meta
    "no_burn",  # the generator does not report its burn rate
    "weak_battery",  # a short battery, depleted once on battery
)


def make_fleet() -> list[Site]:
    sites = []
    for index in range(SITES):
        province = PROVINCES[index % len(PROVINCES)]
        meeting = index % 5 == 4
        name = f"{province}-{'dc' if meeting else 'bts'}-{index:06d}"
        # half the stations of a province, and two meeting points in three, have a generator
        hardened = index % 3 != 0 if meeting else (index // len(PROVINCES)) % 2 == 0
        sites.append(
            Site(index, province, name, "meeting_point" if meeting else "station", hardened)
        )
    return sites


def variant(site: Site) -> str:
    """Every variant among the stations and among the meeting points."""
    return VARIANTS[(site.index // 5 + (site.index % 5) * 3) % len(VARIANTS)]


def mutate(report: dict[str, Any], site: Site, round_: int) -> dict[str, Any]:
    """The report as this site's variant makes it (the storm's report otherwise)."""
    kind = variant(site)
    power, links = report["power"], report["links"]
    if kind == "ups_cap":
        power[0]["battery_runtime_s"] = 65_535.0
    elif kind == "low_load":
        power[0]["load_pct"] = 3.0
    elif kind == "slow_links":
        for link in links:
            if link.get("up"):
                link.update(rtt_ms=900.0 + round_, jitter_ms=80.0, loss_pct=7.5)
    elif kind == "unmeasured":
        for link in links:
            for key in ("rtt_ms", "jitter_ms", "loss_pct"):
                link.pop(key, None)
    elif kind == "shared_duct":
        links[1]["srlg"] = [f"duct-{site.province}"]
        if round_ % 2:  # then one independent path left
            _down(links[2])
    elif kind == "links_down":
        for link in links if round_ % 3 != 2 else links[1:]:  # or the fibre alone
            _down(link)
    elif kind == "dc_plant":
        power[0].update(battery_capacity_ah=400.0, dc_load_a=-35.0 - round_ % 5)
        power[0].pop("battery_runtime_s", None)
    elif kind == "probe_error" and len(power) > 1:
        power[1] = {"device": "gen1", "error": "modbus: no answer from unit 1"}
    elif kind == "weak_battery":
        ups = power[0]
        ups.update(battery_charge_pct=min(ups["battery_charge_pct"], 20.0))
        ups.update(battery_runtime_s=1200.0)
        if ups["on_battery"]:
            ups.update(battery_status="depleted", battery_charge_pct=0.0, battery_runtime_s=0.0)
    if kind == "room" or (site.kind == "meeting_point" and round_ % 4 == 1):
        report["room"] = {
            "codec_reachable": True,
            "codec_registered": None if round_ % 8 == 5 else False,
            "camera_ok": round_ % 3 != 0,
            "microphone_ok": True,
            "speaker_ok": None,
            "display_ok": True,
        }
    if kind == "no_power":
        report["power"] = []
    elif kind == "no_burn" and len(power) > 1:
        power[1].pop("fuel_burn_l_per_h", None)
    return report


def _down(link: dict[str, Any]) -> None:
    link.update(up=False, loss_pct=100.0)
    link.pop("rtt_ms", None)
    link.pop("jitter_ms", None)


def taken_at(site: Site, round_: int) -> datetime:
    at = START + timedelta(seconds=round_ * INTERVAL_S, milliseconds=site.index * 37)
    return at + timedelta(seconds=90) if variant(site) == "clock_ahead" else at


def report_message(site: Site, round_: int, storm: Storm) -> tuple[str, bytes]:
    at = taken_at(site, round_)
    f = round_ / ROUNDS
    payload = report_payload(site, round_, utc_iso(at.timestamp()), INTERVAL_S, storm, f)
    body = mutate(json.loads(payload), site, round_)
    return site.topic("report"), json.dumps(body).encode()


def describe_evaluation(evaluation: Any) -> str:
    lines = [
        f"{evaluation.verdict} {evaluation.station_state} risk={evaluation.risk_level} "
        f"backup_h={evaluation.backup_hours!r} dark_in_s={evaluation.dark_in_s!r} "
        f"paths_up={evaluation.independent_paths_up!r}"
    ]
    for f in evaluation.findings:
        lines.append(
            f"  {f.rule} {f.code} {f.severity} {f.impact} "
            f"{sorted(f.numbers.items())!r} {sorted(f.labels.items())!r}"
        )
        lines.append(f"    vi: {f.text_vi}")
        lines.append(f"    en: {f.text_en}")
    return "\n".join(lines)


@functools.cache
def storm_records() -> tuple[tuple[int, str, str], ...]:
    """Every output of the run, in order: (round, site, what was judged and said)."""
    policy = load_policy()
    storm = Storm.over(PROVINCES)
    sites = make_fleet()
    risk: dict[str, int] = {}
    states = SiteStates(clock=lambda: START)
    verdicts = Verdicts(
        states,
        policy,
        risk_level=lambda province: risk.get(province, 0),
        listed=lambda site: not site.endswith("3"),  # sites the inventory does not list
    )
    records: list[tuple[int, str, str]] = []

    def record(round_: int, site: str, text: str) -> None:
        records.append((round_, site, text))

    def judge(round_: int, site: str, now: datetime, why: str) -> None:
        judged = verdicts.evaluate(site, now)
        if judged is None:
            record(round_, site, f"{why}: not held")
            return
        _, changed, points = judged
        saved = verdicts.saved_of(site)
        assert saved is not None
        held = saved[0]
        pending = None if held.pending is None else describe_evaluation(held.pending)
        record(
            round_,
            site,
            f"{why} changed={changed}\n{verdicts.json_of(site)!r}\n{encode_many(points)}\n"
            f"pending since {held.pending_since}: {pending}",
        )

    def fold(round_: int, topic: str, payload: bytes, now: datetime) -> None:
        result = decode(topic, payload, now=now, max_bytes=65_536, future_tolerance_s=300)
        assert isinstance(result, Decoded), (topic, payload, result)
        message = result.message
        if isinstance(message, Report):
            changed = states.apply_report(message, received_at=now)
        elif isinstance(message, Meta):
            changed = states.apply_meta(message)
        else:
            assert isinstance(message, State)
            changed = states.apply_state(message)
        if changed:
            judge(round_, message.site, now, message.kind)
        else:
            record(round_, message.site, f"{message.kind}: verdict inputs unchanged")

    dark: set[str] = set()
    for round_ in range(ROUNDS):
        now = START + timedelta(seconds=round_ * INTERVAL_S + 1)
        f = round_ / ROUNDS
        if round_ == 0:
            for site in sites:
                if variant(site) != "no_meta":
                    fold(0, site.topic("meta"), meta_payload(site, INTERVAL_S, START), now)
        if round_ == RISK_FROM:
            risk[RISK_PROVINCE] = 4
        if round_ == RISK_TO:
            risk[RISK_PROVINCE] = 0
        if round_ in (RISK_FROM, RISK_TO):
            for site in sites:
                if site.province == RISK_PROVINCE and states.get(site.site) is not None:
                    judge(round_, site.site, now, "risk")
        for site in sites:
            if storm.dark(site, f):
                if site.site not in dark:
                    dark.add(site.site)
                    fold(round_, site.topic("state"), state_payload(site, "offline", now), now)
                continue
            if site.site in dark:
                dark.discard(site.site)
                fold(round_, site.topic("state"), state_payload(site, "online", now), now)
            if variant(site) == "outbox" and round_ in SILENT:
                continue
            if variant(site) == "outbox" and SILENT.stop <= round_ < SILENT.stop + len(SILENT):
                backlog = SILENT.start + round_ - SILENT.stop  # one old report a round
                fold(round_, *report_message(site, backlog, storm), now)
                continue
            if variant(site) == "no_power" and round_ < 3:
                continue  # a meta, no report yet: nothing to judge
            fold(round_, *report_message(site, round_, storm), now)
        for site_id in verdicts.due(now + timedelta(seconds=INTERVAL_S - 2)):
            judge(round_, site_id, now + timedelta(seconds=INTERVAL_S - 2), "silence")
        if round_ % PURE_EVERY == 0:
            for site in sites:
                snapshot = states.get(site.site)
                if snapshot is None:
                    continue
                for level in (0, 3, 5):
                    for duration, starts in ((None, None), (7200.0, 3600.0), (600.0, -300.0)):
                        at = None if starts is None else now + timedelta(seconds=starts)
                        evaluation = evaluate(
                            snapshot,
                            policy,
                            now,
                            risk_level=level,
                            meeting_duration_s=duration,
                            meeting_starts_at=at,
                        )
                        status = to_status(evaluation, snapshot)
                        record(
                            round_,
                            site.site,
                            f"pure risk={level} meeting={duration}@{starts}\n"
                            f"{describe_evaluation(evaluation)}\n"
                            f"{status.model_dump_json(exclude_none=True)}",
                        )
    return tuple(records)


def case_hashes(records: tuple[tuple[int, str, str], ...]) -> dict[str, str]:
    """Per site, a short hash of what it was judged each round ("-": nothing that round)."""
    said: dict[tuple[str, int], list[str]] = defaultdict(list)
    for round_, site, text in records:
        said[site, round_].append(text)
    sites = sorted({site for _, site, _ in records})
    return {
        site: " ".join(
            hashlib.sha256("\n".join(said[site, r]).encode()).hexdigest()[:10]
            if (site, r) in said
            else "-"
            for r in range(ROUNDS)
        )
        for site in sites
    }


def test_storm_verdicts_unchanged() -> None:
    records = storm_records()
    hashes = case_hashes(records)
    if os.environ.get("KIENCO_GOLDEN_WRITE"):
        GOLDEN.write_text(json.dumps(hashes, indent=0, sort_keys=True) + "\n")
    golden: dict[str, str] = json.loads(GOLDEN.read_text())
    if hashes == golden:
        return
    assert set(golden) == set(hashes), f"sites added or gone: {sorted(set(golden) ^ set(hashes))}"
    differ = sorted(
        (r, site)
        for site in golden
        for r, (was, now) in enumerate(zip(golden[site].split(), hashes[site].split(), strict=True))
        if was != now
    )
    round_, site = differ[0]
    said = "\n".join(t for r, s, t in records if (r, s) == (round_, site))
    raise AssertionError(
        f"verdicts changed in {len(differ)} (round, site) cases, against "
        f"tests/fixtures/rules-golden.json; the first: round {round_}, {site}, which now gives:\n"
        f"{said}"
    )


def test_the_storm_leaves_no_reference_cycle_in_our_code() -> None:
    """``collector run`` freezes what survives each garbage collection (collector/heap.py):
    a cycle alive at one is never freed. So decoding, folding and judging the storm (its
    first message of each kind included) must make none: no closure that calls itself
    (the SRLG search, the decoder's model walk), no object that holds itself."""
    decode_module._NESTED.clear()  # the decoder's per-model walk, made again
    with cyclic_garbage("collector", "rules", "contract", "kienco", "plumbing") as found:
        storm_records.__wrapped__()
    assert found == []


def test_the_storm_exercises_the_rules() -> None:
    """The golden run is only worth its hashes if the rules do real work in it."""
    text = "\n".join(t for _, _, t in storm_records())
    for code in (
        "backup_hours_short",
        "on_battery",
        "on_generator",
        "path_down",
        "path_all_down",
        "paths_one_independent_shared",
        "link_rtt_high",
        "link_quality_unknown",
        "runtime_untrusted",
        "power_probe_error",
        "camera_fault",
        "room_devices_unknown",
        "meeting_power_ups_only",
        "meeting_power_runs_out",
        "codec_not_registered",
        "backup_hours_critical",
        "paths_one_independent",
        "on_generator_fuel_unknown",
        "on_battery_generator_stopped",
        "battery_estimate_optimistic",
        "generator_autonomy_unknown",
        "no_report_yet",
        "down_transport",
        "down_power",
        "up_battery",
        "up_generator",
        "backup_hours_unknown",
        "clock_ahead",
        "report_backlog",
        "no_recent_report",
        "agent_offline",
        "meta_missing",
        "not_in_inventory",
        "power_down",
        "at risk level",
        "pending since 2024",
    ):
        assert code in text, code
