"""The collector looked at from inside, for its alerts about itself (collector/system_alerts.py).

:class:`SystemWatch` reads what /healthz says — its problems, each with since when
(collector/health.py: the broker not heard, InfluxDB not taking writes, a loop dead or
stuck), and why the broker connection fails — and the brokers' drops and bridges
(collector/broker_watch.py). One account of the collector's health serves /healthz, the
board's banner and these alerts. Called from the alert sender's thread; each source it
reads is a value replaced whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from collector.backlog import Late
from collector.broker_watch import BrokerWatch
from collector.config import SystemAlertsConfig
from collector.connection_log import Failing
from collector.health import NO_REPORTS, Health
from collector.system_alerts import SystemAlert, SystemView, Trouble, system_alerts

__all__ = ["Sources", "SystemWatch"]


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the collector's state is read (collector/service.py gives its own)."""

    health: Callable[[], Health]  # what /healthz answers
    failing: Callable[[], Failing | None]  # why the broker connection fails, and the fix
    brokers: BrokerWatch
    stopping: Callable[[], bool]  # a clean stop: its loops end, its connection closes
    late: Callable[[], Mapping[str, Late]] = lambda: MappingProxyType({})  # collector/backlog.py


class SystemWatch:
    """``alerts(now)``: the collector's alerts about itself that should fire now."""

    def __init__(
        self, name: str, config: SystemAlertsConfig, sources: Sources, started_at: datetime
    ) -> None:
        self.name = name
        self.config = config
        self.sources = sources
        self.started_at = started_at

    def view(self, now: datetime) -> SystemView:
        src = self.sources
        health = src.health()
        failing = src.failing()
        loops = health.body.get("threads", {})
        down = influx = None
        threads: list[Trouble] = []
        for problem in health.problems:
            since = problem.since or now  # each problem of /healthz says since when
            if problem.code in NO_REPORTS:
                down = since
            elif problem.code == "influx_unreachable":
                influx = since
            elif problem.thread is not None:
                error = loops.get(problem.thread, {}).get("last_error")
                threads.append(
                    Trouble(problem.thread, problem.text_vi, problem.text_en, since, error)
                )
        return SystemView(
            collector=self.name,
            started_at=self.started_at,
            disconnected_since=down,
            broker_cause=failing.cause if failing is not None and down else None,
            broker_fix=failing.fix if failing is not None and down else None,
            influx_down_since=influx,
            drops=src.brokers.runs,
            drops_unwatched_since=src.brokers.unwatched_since,
            bridges=src.brokers.bridges,
            late=src.late(),
            threads=tuple(threads),
        )

    def alerts(self, now: datetime) -> list[SystemAlert]:
        """What should fire now; nothing once the collector stops (its loops ending and its
        connection closing are no trouble, and the heartbeat ends: it stopped)."""
        if self.sources.stopping():
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
