"""The collector looked at from inside, for its alerts about itself (collector/system_alerts.py).

:class:`SystemWatch` reads what /healthz reads — the broker connection and why it fails,
InfluxDB taking writes, each loop alive and beating — and the brokers' drops
(collector/broker_watch.py), and remembers since when each trouble has lasted, so that
``system_alerts`` can wait out a short one and give a long one its start. Called from the
alert sender's thread; each source it reads is a flag or a value replaced whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from collector.broker_watch import BrokerWatch
from collector.config import SystemAlertsConfig
from collector.connection_log import Failing
from collector.health import loop_problem
from collector.supervision import LoopHealth
from collector.system_alerts import SystemAlert, SystemView, Trouble, system_alerts

__all__ = ["Sources", "SystemWatch"]


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the collector's state is read (collector/service.py gives its own)."""

    connected: Callable[[], bool]  # subscribed: reports come in
    failing: Callable[[], Failing | None]  # the current run of failed connections
    influx_down: Callable[[], bool]
    loops: Callable[[], list[LoopHealth]]
    brokers: BrokerWatch
    stopping: Callable[[], bool]  # a clean stop: its loops end, its connection closes


class SystemWatch:
    """``alerts(now)``: the collector's alerts about itself that should fire now."""

    def __init__(
        self, name: str, config: SystemAlertsConfig, sources: Sources, started_at: datetime
    ) -> None:
        self.name = name
        self.config = config
        self.sources = sources
        self.started_at = started_at
        self._since: dict[str, datetime] = {}  # each trouble seen, since when

    def _lasting(self, key: str, present: bool, now: datetime) -> datetime | None:
        if not present:
            self._since.pop(key, None)
            return None
        return self._since.setdefault(key, now)

    def view(self, now: datetime) -> SystemView:
        src = self.sources
        failing = src.failing()
        down = self._lasting("broker", not src.connected(), now)
        if down is not None and failing is not None:  # the failures began before it was seen
            down = min(down, datetime.fromtimestamp(failing.since, UTC))
        threads: list[Trouble] = []
        for loop in src.loops():
            problem = loop_problem(loop, now.timestamp())
            since = self._lasting("thread:" + loop.name, problem is not None, now)
            if problem is not None and since is not None:
                threads.append(
                    Trouble(loop.name, problem.text_vi, problem.text_en, since, loop.last_error)
                )
        return SystemView(
            collector=self.name,
            started_at=self.started_at,
            disconnected_since=down,
            broker_cause=failing.cause if failing is not None and down else None,
            broker_fix=failing.fix if failing is not None and down else None,
            influx_down_since=self._lasting("influx", src.influx_down(), now),
            drops=src.brokers.runs,
            drops_unwatched_since=src.brokers.unwatched_since,
            bridges=src.brokers.bridges,
            threads=tuple(threads),
        )

    def alerts(self, now: datetime) -> list[SystemAlert]:
        """What should fire now; nothing once the collector stops (its loops ending and its
        connection closing are no trouble, and the heartbeat ends: it stopped)."""
        if self.sources.stopping():
            self._since.clear()
            return []
        config = self.config
        return system_alerts(
            self.view(now),
            now,
            broker_down_after_s=config.broker_down_after_s,
            influx_down_after_s=config.influx_down_after_s,
            bridge_down_after_s=config.bridge_down_after_s,
            heartbeat=config.heartbeat,
        )
