"""The agent's log says when the box's clock stops or starts keeping time (agent/clock_log.py):
once per change, for the technician at the box."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.clock_log import ClockStateLog
from agent.config import SiteConfig
from agent.runner import Agent

NOT_SYNCED = "this box's clock is not synchronised to a time source"
AGAIN = "this box's clock is synchronised to a time source again"


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        pytest.param([True, True], [], id="keeps-time-nothing-said"),
        pytest.param([False, False, False], [NOT_SYNCED], id="unsynchronised-said-once"),
        pytest.param([True, False], [NOT_SYNCED], id="loses-its-source"),
        pytest.param([False, True, True], [NOT_SYNCED, AGAIN], id="and-back"),
        pytest.param([False, None, False], [NOT_SYNCED], id="not-read-changes-nothing"),
        pytest.param([None, None], [], id="never-read-nothing-said"),
    ],
)
def test_a_change_of_the_clock_state_is_said_once(
    seen: list[bool | None], said: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kienco.agent")
    state = ClockStateLog()
    for synced in seen:
        state.see(synced)
    assert [r.getMessage()[: len(s)] for r, s in zip(caplog.records, said, strict=False)] == said
    assert len(caplog.records) == len(said)
    if said and said[0] == NOT_SYNCED:
        assert caplog.records[0].levelno == logging.WARNING
        assert "NTP" in caplog.records[0].getMessage()


async def test_the_agent_says_what_its_report_says_of_this_machine_s_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real host probe and the real kernel: the agent's log says "not synchronised"
    exactly when its report does (here, a machine with no time daemon, it does)."""
    caplog.set_level(logging.INFO, logger="kienco.agent")
    config = SiteConfig.model_validate(
        {
            "site": "hp-bts-001",
            "province": "hp",
            "kind": "station",
            "name": "Trạm thử nghiệm",
            "interval_s": 60,
            "broker": {"url": "mqtt://127.0.0.1:1"},  # never connected: only polled here
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "disk_path": str(tmp_path),
        }
    )
    agent = Agent(config)
    reports = [await agent._probe(seq, datetime.now(UTC)) for seq in (1, 2)]
    host = reports[0].host
    assert host is not None and host.clock_synced is not None  # Linux: the kernel read
    said = [r for r in caplog.records if NOT_SYNCED in r.getMessage()]
    assert len(said) == (0 if host.clock_synced else 1)
