"""``kienco demo``: the whole system on one machine, with no set-up, through a storm.

An MQTT broker (Mosquitto when installed, else amqtt embedded in this process),
the real collector (rules, status topics, readiness API), and one real agent
per simulated site: each agent stores its reports in its own disk outbox and
publishes them over MQTT exactly as on an edge box; only the readings come
from the simulator (kienco/demo/simulator.py) instead of probes.
InfluxDB is used for history when ``influxd`` is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import SiteConfig
from agent.runner import Agent
from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Meta, Report, Status
from kienco import admin_token
from kienco.demo.display import Display
from kienco.demo.scenario import load_scenario
from kienco.demo.simulator import Fleet, SimulatedSite
from kienco.labels import Lang
from kienco.local_services import Influxd, Mosquitto, ServiceError, find_binary, free_port
from rules import Policy, load_policy

log = logging.getLogger("kienco.demo")
HELD_RULES = ("backup_power", "multipath", "link_quality", "meeting")


def demo_policy() -> Policy:
    """The shipped policy without hold times: the demo runs an hour of storm per second,
    so a 60 s hold against flapping would hide two and a half days of it."""
    data = load_policy().model_dump()
    for section in HELD_RULES:
        data[section]["hold_s"] = 0
    return Policy.model_validate(data)


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 60.0
    json: bool = False
    lang: Lang = "vi"
    scenario: Path | None = None
    interval_s: float = 1.0
    broker: str = "auto"  # auto | mosquitto | amqtt
    influx: str = "auto"  # auto | on | off
    http_port: int = 0


@dataclass
class _Services:
    broker_url: str
    protocol: int
    influx_url: str | None
    notes: list[str] = field(default_factory=list)
    stoppers: list[Callable[[], Any]] = field(default_factory=list)


async def _start_services(options: DemoOptions, workdir: Path) -> _Services:
    use_mosquitto = options.broker == "mosquitto" or (
        options.broker == "auto" and find_binary("mosquitto") is not None
    )
    if use_mosquitto:
        mosquitto = Mosquitto(workdir / "mosquitto")
        await asyncio.to_thread(mosquitto.start)
        services = _Services(mosquitto.url, 5, None, [f"broker: Mosquitto {mosquitto.url}"])
        services.stoppers.append(mosquitto.stop)
    else:
        from amqtt.broker import Broker

        port = free_port()
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        url = f"mqtt://127.0.0.1:{port}"
        services = _Services(url, 4, None, [f"broker: amqtt (embedded, MQTT 3.1.1) {url}"])
        services.stoppers.append(broker.shutdown)
    if options.influx != "off" and (options.influx == "on" or find_binary("influxd")):
        influxd = await asyncio.to_thread(Influxd.start, workdir / "influxdb")
        services.influx_url = influxd.url
        services.notes.append(f"history: InfluxDB {influxd.url} (database kienco)")
        services.stoppers.append(influxd.stop)
    else:
        services.notes.append(
            "history: none (influxd not installed; verdicts only — apt-get install -y influxdb)"
        )
    return services


def _agent(site: SimulatedSite, services: _Services, workdir: Path, interval_s: float) -> Agent:
    config = SiteConfig.model_validate(
        {
            "site": site.site,
            "province": site.province,
            "kind": site.kind,
            "name": site.spec.name,
            "interval_s": interval_s,
            "broker": {
                "url": services.broker_url,
                "protocol": services.protocol,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 2.0,
            },
            "outbox": {"path": str(workdir / "outbox" / f"{site.site}.sqlite")},
        }
    )

    async def measure(seq: int, now: datetime) -> Report:
        return site.report(seq, now, interval_s)

    def meta(now: datetime) -> Meta:
        return site.meta(now, interval_s)

    return Agent(config, measure=measure, meta=meta)


async def run_demo(options: DemoOptions) -> list[Status | None]:
    """Run the storm; return the final verdict of every site, in scenario order."""
    scenario = load_scenario(options.scenario)
    # Fit the whole timeline into the run, leaving the last tenth to watch the recovery.
    minutes_per_second = scenario.duration_min / max(options.duration_s * 0.9, 1.0)
    fleet = Fleet(scenario, minutes_per_second=minutes_per_second)
    # The one from the environment if set, so `kienco risk set` in another terminal works.
    token = os.environ.get(admin_token.DEFAULT_ENV) or secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="kienco-demo-") as tmp:
        workdir = Path(tmp)
        services = await _start_services(options, workdir)
        display = Display(fleet, lang=options.lang, live=not options.json)
        for note in services.notes:
            display.note(note, stamp=False)
        statuses: dict[str, Status] = {}
        lock = threading.Lock()

        def on_status(status: Status) -> None:
            with lock:
                previous = statuses.get(status.site)
                statuses[status.site] = status
            display.verdict_changed(previous, status, fleet.sim_time)

        collector = Collector(
            CollectorConfig.model_validate(
                {
                    "broker": {
                        "url": services.broker_url,
                        "protocol": services.protocol,
                        "username": None,
                        "client_id": "kienco-demo-collector",
                    },
                    "influx": {"url": services.influx_url} if services.influx_url else None,
                    "data_dir": str(workdir / "collector"),
                    # Changes need a token even here: the demo makes one and says it.
                    "http": {"port": options.http_port, "admin_token": {"value": token}},
                    "status": {"sweep_s": 0.5},
                }
            ),
            policy=demo_policy(),
            risk_level=lambda province: fleet.risk_levels.get(province, 0),
            on_status=on_status,
        )
        collector.start()
        try:
            await asyncio.to_thread(collector.wait_connected, 15)
            if collector.api is not None:
                display.note(f"API: {collector.api.url}/api/v1/readiness", stamp=False)
                display.note(
                    f"board: {collector.api.url}/ (sign in with the admin token)", stamp=False
                )
                display.note(f"admin token: export {admin_token.DEFAULT_ENV}={token}", stamp=False)
            await _storm(fleet, services, workdir, options, display)
        finally:
            await asyncio.to_thread(collector.stop)
            for stop in reversed(services.stoppers):
                result = stop()
                if asyncio.iscoroutine(result):
                    await result
            display.close()
        with lock:
            return [statuses.get(site.site) for site in fleet.sites]


async def _storm(
    fleet: Fleet, services: _Services, workdir: Path, options: DemoOptions, display: Display
) -> None:
    agents = {s.site: _agent(s, services, workdir, options.interval_s) for s in fleet.sites}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop, poll=False)) for a in agents.values()]
    started = time.monotonic()
    try:
        with display:
            while (elapsed := time.monotonic() - started) < options.duration_s:
                for note in fleet.advance_to(elapsed):
                    display.note(note, stamp=False)  # the simulator stamps its own events
                for site in fleet.sites:
                    if not site.is_dark:  # a dark site's agent has no power: silence
                        await agents[site.site].poll_and_store()
                display.refresh()
                next_tick = started + (int(elapsed / options.interval_s) + 1) * options.interval_s
                await asyncio.sleep(
                    max(0.0, min(next_tick, started + options.duration_s) - time.monotonic())
                )
            # Let the last reports and verdicts through before the final picture.
            await asyncio.sleep(min(2.0, options.interval_s * 2))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)


def check_services_or_explain(options: DemoOptions) -> str | None:
    """A reason the demo cannot run as asked, or None."""
    if options.broker == "mosquitto" and find_binary("mosquitto") is None:
        return "Mosquitto is not installed: apt-get install -y mosquitto (or --broker amqtt)"
    if options.influx == "on" and find_binary("influxd") is None:
        return "InfluxDB is not installed: apt-get install -y influxdb (or --influx off)"
    return None


__all__ = ["DemoOptions", "ServiceError", "check_services_or_explain", "run_demo"]
