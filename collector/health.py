"""What /healthz answers: is the collector doing its job, and if not, what is wrong.

Healthy means all of: connected to the broker, InfluxDB taking writes (not
spooling), and every loop alive and beating (collector/supervision.py). Each
problem is named with a code and a text in Vietnamese and English, so a probe
can alert on the code and a person can read the text. While the broker connection
fails, ``broker_failure`` says why (collector/connection_log.py): text from the
network, in JSON only. Connected is not receiving: until the broker grants the
subscriptions (its SUBACK) the problem is ``broker_subscribing``, or
``broker_subscription_refused`` with the fix; ``broker_failure`` is never null while
``broker_connected`` is false.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.connection_log import Failing
from collector.supervision import LoopHealth

__all__ = ["Health", "Problem", "assess", "loop_problem"]

_TEXTS: dict[str, tuple[str, str]] = {
    "broker_disconnected": (
        "mất kết nối tới broker MQTT: không nhận được báo cáo",
        "disconnected from the MQTT broker: no reports come in",
    ),
    "broker_subscribing": (
        "đã kết nối broker MQTT, đang chờ broker chấp nhận đăng ký nhận tin: chưa có báo cáo",
        "connected to the MQTT broker, waiting for it to accept the subscriptions: no reports yet",
    ),
    "broker_subscription_refused": (
        "broker MQTT từ chối đăng ký nhận tin của bộ thu: không nhận được báo cáo",
        "the MQTT broker refused the collector's subscriptions: no reports come in",
    ),
    "influx_unreachable": (
        "InfluxDB không nhận ghi: đang lưu tạm vào đĩa ({spooled} lô chờ)",
        "InfluxDB is not taking writes: spooling to disk ({spooled} batches waiting)",
    ),
    "thread_dead": (
        "luồng {thread} đã dừng",
        "thread {thread} is dead",
    ),
    "thread_silent": (
        "luồng {thread} bị treo: không có nhịp trong {seconds} s",
        "thread {thread} is stuck: no heartbeat for {seconds} s",
    ),
    "thread_busy": (
        "luồng {thread} bị treo: một bước đã chạy {seconds} s",
        "thread {thread} is stuck: one step has run for {seconds} s",
    ),
}


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    text_vi: str
    text_en: str

    @classmethod
    def of(cls, code: str, **values: object) -> Problem:
        vi, en = _TEXTS[code]
        return cls(code, vi.format(**values), en.format(**values))


@dataclass(frozen=True, slots=True)
class Health:
    problems: tuple[Problem, ...]
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems


def loop_problem(loop: LoopHealth) -> Problem | None:
    """What is wrong with a loop, if anything (its alert says the same)."""
    if not loop.alive:
        return Problem.of("thread_dead", thread=loop.name)
    if loop.stuck and loop.periodic:
        return Problem.of("thread_silent", thread=loop.name, seconds=f"{loop.heartbeat_age_s:.0f}")
    if loop.stuck:
        return Problem.of("thread_busy", thread=loop.name, seconds=f"{loop.busy_s:.0f}")
    return None


# Connected, not yet receiving: said as such, not as disconnected.
_BROKER_PROBLEM: dict[str | None, str] = {
    "subscribing": "broker_subscribing",
    "subscription_refused": "broker_subscription_refused",
}


def _failure(failing: Failing | None) -> dict[str, Any] | None:
    if failing is None:
        return None
    return {
        "cause": failing.cause,
        "fix": failing.fix,
        "failed_attempts": failing.attempts,
        "state": failing.state,
        "since": datetime.fromtimestamp(failing.since, UTC),  # written as the API's times
    }


def assess(
    *,
    broker_connected: bool,
    broker_failure: Failing | None,
    influx_configured: bool,
    influx_down: bool,
    spooled_batches: int,
    loops: list[LoopHealth],
) -> Health:
    problems: list[Problem] = []
    state = broker_failure.state if broker_failure is not None else None
    if not broker_connected:
        problems.append(Problem.of(_BROKER_PROBLEM.get(state, "broker_disconnected")))
    if influx_down:
        problems.append(Problem.of("influx_unreachable", spooled=spooled_batches))
    problems += [p for p in map(loop_problem, loops) if p is not None]
    body: dict[str, Any] = {
        "ok": not problems,
        "problems": [
            {"code": p.code, "text_vi": p.text_vi, "text_en": p.text_en} for p in problems
        ],
        "broker_connected": broker_connected,
        "broker_failure": _failure(broker_failure),
        "influx": {
            "configured": influx_configured,
            "taking_writes": influx_configured and not influx_down,
            "spooled_batches": spooled_batches,
        },
        "threads": {
            loop.name: {
                "alive": loop.alive,
                "stuck": loop.stuck,
                "heartbeat_age_s": round(loop.heartbeat_age_s, 3),
                "busy_s": round(loop.busy_s, 3),
                "errors": loop.errors,
                "last_error": loop.last_error,
            }
            for loop in loops
        },
    }
    return Health(tuple(problems), body)
