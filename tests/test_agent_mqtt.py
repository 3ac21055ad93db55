"""The agent on a real Mosquitto: birth, meta, Will, the per-site ACL, the outbox in an outage."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from agent.config import SiteConfig
from agent.runner import Agent
from tests.support.mosquitto import Broker
from tests.support.subscriber import Subscriber

REPO = Path(__file__).resolve().parents[1]


def site_config(
    tmp_path: Path,
    broker: Broker,
    *,
    site: str = "hp-bts-001",
    province: str = "hp",
    username: str | None = None,
    password: str | None = None,
) -> SiteConfig:
    broker_cfg: dict[str, object] = {
        "url": broker.url,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    if username:
        broker_cfg["username"] = username
    if password:
        broker_cfg["password"] = {"value": password}
    return SiteConfig.model_validate(
        {
            "site": site,
            "province": province,
            "kind": "station",
            "name": "Trạm thử nghiệm",
            "interval_s": 60,
            "broker": broker_cfg,
            "outbox": {"path": str(tmp_path / f"{site}-outbox.sqlite")},
            "disk_path": str(tmp_path),
        }
    )


async def _wait(predicate: object, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def test_birth_meta_and_reports_arrive(tmp_path: Path, mosquitto: Broker) -> None:
    sub = Subscriber(mosquitto.port, "kienco/v1/hp/hp-bts-101/#", client_id="t-birth")
    started = time.time()
    agent = Agent(site_config(tmp_path, mosquitto, site="hp-bts-101"))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await _wait(lambda: len(sub.received(lambda t: t.endswith("/report"))) >= 1)
        for _ in range(3):
            await agent.poll_and_store()
        await _wait(lambda: len(sub.received(lambda t: t.endswith("/report"))) >= 4)
    finally:
        stop.set()
        await task
        sub.close()
    kinds = [t.rsplit("/", 1)[1] for t, _ in sub.received()]
    assert kinds[:2] == ["state", "meta"]
    state = json.loads(sub.received(lambda t: t.endswith("/state"))[0][1])
    assert state["state"] == "online"
    meta = json.loads(sub.received(lambda t: t.endswith("/meta"))[0][1])
    assert meta["name"] == "Trạm thử nghiệm" and meta["site_kind"] == "station"
    seqs = [json.loads(p)["seq"] for _, p in sub.received(lambda t: t.endswith("/report"))]
    # A new outbox numbers from the clock (agent/outbox.py), then one by one.
    assert abs(seqs[0] - started) <= 2 and seqs == list(range(seqs[0], seqs[0] + 4))
    assert agent.outbox.depth() == 0


def test_will_marks_the_site_offline_when_the_agent_dies(tmp_path: Path, mosquitto: Broker) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "hp-bts-102",
                "province": "hp",
                "kind": "station",
                "name": "Trạm 102",
                "interval_s": 60,
                "broker": {"url": mosquitto.url},
                "outbox": {"path": str(tmp_path / "o.sqlite")},
                "disk_path": str(tmp_path),
            },
            allow_unicode=True,
        )
    )
    sub = Subscriber(mosquitto.port, "kienco/v1/hp/hp-bts-102/state", client_id="t-will")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kienco.cli", "agent", "run", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        got = sub.wait_for(1, lambda t: True, timeout_s=20)
        assert json.loads(got[0][1])["state"] == "online"
        os.kill(proc.pid, signal.SIGKILL)
        got = sub.wait_for(2, lambda t: True, timeout_s=10)
        assert json.loads(got[-1][1])["state"] == "offline"
    finally:
        proc.kill()
        proc.wait()
        sub.close()


async def test_acl_refuses_a_report_for_another_site_and_the_outbox_keeps_it(
    tmp_path: Path, acl_broker: Broker
) -> None:
    watcher = Subscriber(
        acl_broker.port,
        "kienco/v1/#",
        client_id="collector-test",
        username="collector",
        password="collector-secret",
    )
    # Logged in as hp/hp-bts-001, but claiming to be qn-bts-002: the ACL must refuse it.
    impostor = Agent(
        site_config(
            tmp_path,
            acl_broker,
            site="qn-bts-002",
            province="qn",
            username="hp/hp-bts-001",
            password="s1",
        )
    )
    honest = Agent(site_config(tmp_path, acl_broker, site="hp-bts-001", password="s1"))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop)) for a in (impostor, honest)]
    try:
        await _wait(lambda: impostor.refused_total >= 2 and honest.published_total >= 1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        watcher.close()
    assert impostor.published_total == 0
    assert impostor.outbox.depth() >= 1, "a refused report must stay in the outbox"
    topics = {t for t, _ in watcher.received()}
    assert "kienco/v1/hp/hp-bts-001/report" in topics
    assert not any(t.startswith("kienco/v1/qn/") for t in topics)


async def test_backlog_survives_a_broker_outage_and_drains_in_order(
    tmp_path: Path, fresh_broker: Broker
) -> None:
    sub = Subscriber(fresh_broker.port, "kienco/v1/hp/hp-bts-103/report", client_id="t-outage")
    agent = Agent(site_config(tmp_path, fresh_broker, site="hp-bts-103"))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await _wait(lambda: len(sub.received()) >= 1)
        first = json.loads(sub.received()[0][1])["seq"]  # a new outbox's: from the clock
        fresh_broker.stop()
        await _wait(lambda: not agent.connected)
        for _ in range(120):  # an hour of reports at 30 s while the link is down
            await agent.poll_and_store()
        assert agent.outbox.depth() >= 120
        await asyncio.to_thread(fresh_broker.start)
        await _wait(lambda: len(sub.received()) >= 121, timeout_s=30)
        await _wait(lambda: agent.outbox.depth() == 0)
    finally:
        stop.set()
        await task
        sub.close()
    seqs = [json.loads(p)["seq"] - first for _, p in sub.received()]
    assert sorted(seqs) == list(range(121)), "every report arrives, none twice"
    assert seqs[1] == 120, "the newest goes first: it is the site's present"
    assert seqs == [0, 120, *range(1, 120)], "then the backlog, oldest first"
