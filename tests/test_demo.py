"""`kienco demo` as a newcomer runs it: a short storm, then every site's final verdict as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kienco.demo.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
STATES = {"ready", "degraded", "not_ready", "unknown"}


@pytest.mark.parametrize(
    "services",
    [["--broker", "amqtt", "--influx", "off"], ["--broker", "mosquitto", "--influx", "on"]],
    ids=["embedded-no-services", "mosquitto-and-influxdb"],
)
def test_demo_runs_a_storm_and_prints_every_final_verdict(services: list[str]) -> None:
    command = [sys.executable, "-m", "kienco.cli", "demo", "--duration", "20", "--json", *services]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    scenario = load_scenario()
    assert [line["site"] for line in lines] == [s.site for s in scenario.sites]
    for line in lines:
        assert line["state"] in STATES
        assert line["kind"] in {"station", "power_room", "meeting_point"}
        assert line["province"] in scenario.provinces
        for reason in line["reasons"]:
            assert reason["code"] and reason["text"]
    by_site = {line["site"]: line for line in lines}
    # Cát Hải's mast is still down when the storm is over: no path, said once.
    cat_hai = by_site["hp-dc-cat-hai"]
    assert cat_hai["state"] == "not_ready"
    assert [r["code"] for r in cat_hai["reasons"]] == ["path_all_down"]
    assert cat_hai["reasons"][0]["text"].startswith("mất truyền dẫn: mất toàn bộ đường truyền")
    # Hà Nội, barely touched, holds.
    assert by_site["hn-dc-tp"]["state"] == "ready"
    # Its power room's new edge box has no NTP and is 3 h behind: its reports are judged as
    # if its clock were right (its province's other sites come through live), not silent.
    power_room = by_site["hn-pdien-vnpt"]
    assert power_room["state"] == "ready", power_room
    assert [r["code"] for r in power_room["reasons"]] == ["clock_corrected"]
    # Cầu Giấy's spare box has its clock set by hand 7 h ahead: its reports are refused,
    # and the site says why (it talks, its clock is ahead), not that it is silent.
    cau_giay = by_site["hn-bts-cau-giay"]
    assert cau_giay["state"] == "unknown", cau_giay
    assert [r["code"] for r in cau_giay["reasons"]] == ["clock_ahead_refused"]
    assert "chạy nhanh 7 giờ" in cau_giay["reasons"][0]["text"]
    # The storm was watched: sites changed verdict on the way.
    assert "→" in done.stderr
