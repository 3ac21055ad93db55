"""Throughput on the agent: scheduled per site, only on paths that are up, never in a call,
stamped onto the report's links, dropped when stale; and for real through the collector's API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.bandwidth import Bandwidth
from agent.config import PathConfig, SiteConfig, ThroughputConfig
from agent.probes.throughput import SKIPPED_IN_CALL
from agent.runner import Agent
from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import LinkReading

CONFIG = ThroughputConfig(url="http://127.0.0.1:1", max_bytes=100_000, max_s=1, every_s=3600)
PATHS = tuple(
    PathConfig.model_validate(
        {"path": p, "media": "fibre", "target": {"host": "127.0.0.1", "port": 1}}
    )
    for p in ("fibre-a", "lte")
)


def links(**up: bool) -> dict[str, LinkReading]:
    return {p: LinkReading(path=p, media="fibre", up=state) for p, state in up.items()}


async def test_only_paths_that_are_up_are_tested_and_results_go_stale() -> None:
    calls: list[dict[str, Any]] = []
    now = [0.0]

    async def measure(config: ThroughputConfig, **kwargs: Any) -> tuple[float, float, None]:
        calls.append(kwargs)
        return 8.0, 20.0, None

    bandwidth = Bandwidth(CONFIG, PATHS, "hp-dc-1", measure=measure, clock=lambda: now[0])
    await bandwidth.test_paths(links(**{"fibre-a": True, "lte": False}), in_call=False)
    assert len(calls) == 1 and calls[0]["in_call"] is False
    stamped = bandwidth.stamp(tuple(links(**{"fibre-a": True, "lte": False}).values()))
    assert (stamped[0].bandwidth_up_mbps, stamped[0].bandwidth_down_mbps) == (8.0, 20.0)
    assert stamped[1].bandwidth_up_mbps is None
    now[0] = 2 * 3600 + 1  # older than twice the schedule: unknown again
    fresh = tuple(links(**{"fibre-a": True}).values())  # as the next poll measures them
    assert bandwidth.stamp(fresh)[0].bandwidth_up_mbps is None


async def test_a_failed_test_says_the_bandwidth_unknown_and_why_never_the_old_figures() -> None:
    """A path whose test now fails kept its last figures for up to twice the schedule, as
    if measured: a good 20 Mbps while the test cannot move a byte, or a low one that,
    dropped silently, would clear a real link_bandwidth_low. Now: null, and what failed."""
    answers = [
        (8.0, 20.0, None),
        (None, None, "download: no answer within 1 s; upload: no answer within 1 s"),
        (None, None, SKIPPED_IN_CALL),  # not a test: what the last one said stands
        (8.5, None, "download: no answer within 1 s"),
        (9.0, 21.0, None),
    ]
    now = [0.0]

    async def measure(
        config: ThroughputConfig, **kwargs: Any
    ) -> tuple[float | None, float | None, str | None]:
        return answers.pop(0)

    bandwidth = Bandwidth(CONFIG, PATHS[:1], "hp-dc-1", measure=measure, clock=lambda: now[0])
    up = tuple(links(**{"fibre-a": True}).values())

    async def tested(in_call: bool = False) -> tuple[float | None, float | None, str | None]:
        now[0] += 600
        await bandwidth.test_paths(links(**{"fibre-a": True}), in_call=in_call)
        (stamped,) = bandwidth.stamp(up)
        return stamped.bandwidth_up_mbps, stamped.bandwidth_down_mbps, stamped.bandwidth_error

    assert await tested() == (8.0, 20.0, None)
    failed = (None, None, "download: no answer within 1 s; upload: no answer within 1 s")
    assert await tested() == failed
    assert await tested(in_call=True) == failed  # no test in a call: the last one stands
    assert await tested() == (8.5, None, "download: no answer within 1 s")
    assert await tested() == (9.0, 21.0, None)


def test_each_site_has_its_own_stable_offset_in_the_hour() -> None:
    offsets = {Bandwidth(CONFIG, PATHS, f"hp-dc-{i}").first_delay_s() for i in range(50)}
    assert len(offsets) > 40 and all(0 <= o < 3600 for o in offsets)
    assert (
        Bandwidth(CONFIG, PATHS, "x").first_delay_s()
        == Bandwidth(CONFIG, PATHS, "x").first_delay_s()
    )


def one_path_site(tmp_path: Path, port: int, kind: str, throughput: dict[str, Any]) -> SiteConfig:
    """A site (hp-9) with one fibre path probed once at 127.0.0.1:``port``, tested against
    ``throughput``."""
    return SiteConfig.model_validate(
        {
            "site": "hp-bts-9" if kind == "station" else "hp-dc-9",
            "province": "hp",
            "kind": kind,
            "name": "Trạm 9" if kind == "station" else "Điểm cầu 9",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "disk_path": str(tmp_path),
            "outbox": {"path": str(tmp_path / "o.sqlite")},
            "paths": [
                {
                    "path": "fibre-a",
                    "media": "fibre",
                    "probes": 1,
                    "target": {"host": "127.0.0.1", "port": port},
                }
            ],
            "throughput": throughput,
        }
    )


async def test_a_real_test_through_the_collectors_api(tmp_path: Path) -> None:
    collector = Collector(
        CollectorConfig.model_validate(
            {
                "broker": {"url": "mqtt://127.0.0.1:1"},
                "influx": None,
                "data_dir": str(tmp_path / "c"),
                "http": {"port": 0},
            }
        )
    )
    collector.start()  # no broker needed for the HTTP API
    try:
        assert collector.api is not None
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        site = one_path_site(
            tmp_path,
            port,
            "station",
            {"url": collector.api.url, "max_bytes": 500_000, "max_s": 2},
        )
        agent = Agent(site)
        first = await agent._probe(0, datetime.now(UTC))
        assert first.links[0].up is True and first.links[0].bandwidth_down_mbps is None
        await agent.test_bandwidth()
        second = await agent._probe(1, datetime.now(UTC))
        server.close()
    finally:
        collector.stop()
    assert (
        second.links[0].bandwidth_down_mbps is not None and second.links[0].bandwidth_down_mbps > 1
    )
    assert second.links[0].bandwidth_up_mbps is not None and second.links[0].bandwidth_up_mbps > 1


@pytest.mark.parametrize("in_call", [True, None])
async def test_a_meeting_room_in_a_call_or_unsure_is_never_tested(
    tmp_path: Path, in_call: bool | None
) -> None:
    from contract.wire import Report, RoomReading

    site = SiteConfig.model_validate(
        {
            "site": "hp-dc-9",
            "province": "hp",
            "kind": "meeting_point",
            "name": "Điểm cầu",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "outbox": {"path": str(tmp_path / "o.sqlite")},
            "paths": [
                {"path": "fibre-a", "media": "fibre", "target": {"host": "127.0.0.1", "port": 1}}
            ],
            "room": {"pc": {"root": str(tmp_path)}},
            "throughput": {"url": "http://127.0.0.1:1"},
        }
    )
    agent = Agent(site)
    seen: list[bool | None] = []

    async def measure(config: ThroughputConfig, **kwargs: Any) -> tuple[None, None, str]:
        seen.append(kwargs["in_call"])
        return None, None, "skipped: in a call"

    assert agent.bandwidth is not None
    agent.bandwidth._measure = measure
    agent._last_report = Report(
        site="hp-dc-9",
        province="hp",
        seq=0,
        taken_at=datetime.now(UTC),
        interval_s=30,
        links=(LinkReading(path="fibre-a", media="fibre", up=True),),
        room=RoomReading(in_call=in_call),
    )
    await agent.test_bandwidth()
    assert seen == [True]


async def test_a_failed_test_goes_on_the_wire_and_the_rules_say_the_bandwidth_unknown(
    tmp_path: Path,
) -> None:
    """An up path whose test cannot reach the throughput server: the report the agent
    sends says so, the collector takes it, and the point is never ready on it."""
    from agent.runner import encode
    from collector.decode import Decoded, decode
    from contract.topics import topic
    from contract.wire import Meta, Report
    from kienco.local_services import free_port
    from rules import SiteSnapshot, evaluate, load_policy

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    throughput = {"url": f"http://127.0.0.1:{free_port()}", "max_s": 1}
    site = one_path_site(tmp_path, port, "meeting_point", throughput)
    try:
        agent = Agent(site)
        now = datetime.now(UTC)
        first = await agent._probe(0, now)
        assert first.links[0].up is True
        await agent.test_bandwidth()
        second = await agent._probe(1, now)
    finally:
        server.close()
    (link,) = second.links
    assert (link.bandwidth_up_mbps, link.bandwidth_down_mbps) == (None, None)
    assert link.bandwidth_error is not None and "download" in link.bandwidth_error
    decoded = decode(
        topic("hp", "hp-dc-9", "report"),
        encode(second),
        now=now,
        max_bytes=1_000_000,
        future_tolerance_s=60,
    )
    assert isinstance(decoded, Decoded) and isinstance(decoded.message, Report)
    report = decoded.message
    assert report.links[0].bandwidth_error == link.bandwidth_error
    meta = Meta(
        site="hp-dc-9",
        province="hp",
        site_kind="meeting_point",
        name="Điểm cầu 9",
        interval_s=60,
        agent_version="t",
        at=now,
    )
    snapshot = SiteSnapshot(site="hp-dc-9", province="hp", online=True, state_at=now)
    snapshot = snapshot.with_meta(meta).with_report(report, received_at=now)
    found = [f.code for f in evaluate(snapshot, load_policy(), now).findings]
    assert "link_bandwidth_unknown" in found
