"""The fleet simulator: what it sends is the wire contract; over a real Mosquitto with the
shipped ACL each site logs in as itself and every report arrives, in sequence; its storm
makes the collector's rules turn sites from the grid to battery and dark."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Meta, Report, State, Status
from kienco.cli import main as kienco_main
from kienco.credentials import create
from kienco.fleet.fleet import Storm, make_sites, meta_payload, report_payload, state_payload
from kienco.fleet.fleet import utc_iso as iso
from tests.support.mosquitto import Broker
from tests.support.subscriber import Subscriber

STORM = Storm.over(("sma", "smb", "smc"))  # sma loses mains, sma and smb their fibre


def test_what_it_sends_is_the_wire_contract() -> None:
    sites = make_sites(120, ("sma", "smb", "smc"))
    now = datetime.now(UTC)
    seen_dark, seen_generator, seen_cut = 0, 0, 0
    for f in (0.0, 0.19, 0.21, 0.3, 0.45, 0.55, 0.79, 0.81, 1.0):
        for site in sites:
            if STORM.dark(site, f):
                seen_dark += 1
                assert site.province == "sma" and not site.hardened and 0.5 <= f < 0.8
                continue
            report = Report.model_validate_json(
                report_payload(site, 3, iso(now.timestamp()), 30, STORM, f)
            )
            assert (report.site, report.province, report.seq) == (site.site, site.province, 3)
            ups = report.power[0]
            assert ups.mains_present is STORM.mains(site.province, f)
            fibre = report.links[0]
            assert fibre.up is STORM.fibre(site.province, f)
            seen_cut += not fibre.up
            if len(report.power) > 1:
                seen_generator += bool(report.power[1].generator_running)
                assert site.hardened
    assert seen_dark and seen_generator and seen_cut
    site = sites[0]
    meta = Meta.model_validate_json(meta_payload(site, 30, now))
    assert meta.site == site.site and meta.devices[0].battery is not None
    assert State.model_validate_json(state_payload(site, "offline", now)).state == "offline"
    assert iso(0.5) == "1970-01-01T00:00:00.500000Z"


def _seqs(sub: Subscriber) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for topic, payload in sub.received(lambda t: t.endswith("/report")):
        seqs[topic.split("/")[3]].append(json.loads(payload)["seq"])
    return seqs


def test_each_site_logs_in_as_itself_and_every_report_arrives_in_sequence(
    tmp_path: Path, acl_broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped ACL: one site per connection, as <province>/<site>, with the password
    kienco credentials made for it."""
    provinces = ("smd", "sme")
    sites = make_sites(30, provinces)
    secrets = tmp_path / "credentials"
    create([s.username for s in sites], tmp_path / "unused.passwd", secrets)
    # The broker's own password file gets the same accounts (it was written at start).
    accounts = {s.username: (secrets / f"{s.username}.password").read_text().strip() for s in sites}
    broker = Broker(tmp_path / "broker", users={"collector": "collector-secret", **accounts})
    broker.start()
    watcher = Subscriber(
        broker.port,
        "kienco/v1/#",
        client_id="sim-watcher",
        username="collector",
        password="collector-secret",
    )
    try:
        code = kienco_main(
            ["simulate", "--sites", "30", "--interval", "0.5", "--duration", "4",
             "--province", "smd", "--province", "sme", "--broker", broker.url,
             "--secrets-dir", str(secrets), "--json", "--seqs", "--drain", "10",
             "--scenario", "calm"]
        )  # fmt: skip
        summary = json.loads(capsys.readouterr().out)
        assert code == 0 and summary["unacked_at_end"] == 0 and summary["refused_connects"] == 0
        assert summary["connections"] == 30 and summary["connections_held"] == 30
        last = summary["last_seq"]
        # Every tick of the schedule is made, late or not: 4 s / 0.5 s = 8 reports per site.
        assert last == {s.site: 8 for s in sites}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(map(len, _seqs(watcher).values())) < sum(
            last.values()
        ):
            time.sleep(0.1)
        got = _seqs(watcher)
        for site, final in last.items():
            assert sorted(set(got[site])) == list(range(1, final + 1)), site
        metas = watcher.received(lambda t: t.endswith("/meta"))
        assert {t.split("/")[3] for t, _ in metas} == set(last)
    finally:
        watcher.close()
        broker.stop()


def test_the_storm_makes_the_rules_work(
    tmp_path: Path, mosquitto: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    provinces = ("sma", "smb")
    config = CollectorConfig.model_validate(
        {
            "provinces": list(provinces),
            "broker": {"url": mosquitto.url, "username": None, "client_id": "sim-storm"},
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
        }
    )
    statuses: list[Status] = []
    collector = Collector(config, on_status=statuses.append)
    collector.start(serve_http=False)
    try:
        assert collector.wait_connected(10)
        # The default storm darkens the first province given: sma.
        code = kienco_main(
            ["simulate", "--sites", "40", "--connections", "4", "--interval", "0.5",
             "--duration", "10", "--province", "sma", "--province", "smb",
             "--broker", mosquitto.url, "--json", "--drain", "10"]
        )  # fmt: skip
        summary = json.loads(capsys.readouterr().out)
        assert code == 0 and summary["connections"] == 4 and summary["sites_dark_at_peak"] > 0
        time.sleep(1.0)
    finally:
        collector.stop()
    by_state = {(s.province, s.station_state) for s in statuses}
    # sma lost mains: its sites went to battery, hardened ones to their generator.
    assert ("sma", "up_battery") in by_state and ("sma", "up_generator") in by_state
    assert ("smb", "up_commercial") in by_state
    assert not any(s.province == "smb" and s.station_state == "up_battery" for s in statuses)
    assert any(s.province == "sma" and s.verdict != "ready" for s in statuses)
