"""What /healthz answers: is the collector doing its job, and if not, what is wrong.

Healthy means all of: connected to the broker, InfluxDB taking writes (not
spooling), every loop alive and beating (collector/supervision.py), and not stopping
(``stopping`` while a stop flushes and disconnects, which may take a minute), and no
province's reports read late (``reports_late``: a backlog worked off, collector/backlog.py). Each
problem is named with a code and a text in Vietnamese and English, so a probe
can alert on the code and a person can read the text. While the broker connection
fails, ``broker_failure`` says why (collector/connection_log.py): text from the
network, in JSON only. Connected is not receiving: until the broker grants the
subscriptions (its SUBACK) the problem is ``broker_subscribing``, or
``broker_subscription_refused`` with the fix; ``broker_failure`` is never null while
``broker_connected`` is false. Each problem also says since when (``since``, UTC) and,
for a loop, which one (``thread``): what the board's banner says
(collector/board/trust.py), which never reads ``body``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.backlog import Late
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
    "stopping": (
        "bộ thu đang dừng: ghi nốt những gì đang chờ rồi ngắt kết nối; trạng thái ngừng cập nhật",
        "the collector is stopping: it writes what is pending, then disconnects; verdicts "
        "stop changing",
    ),
    "reports_late": (
        "báo cáo tới chậm: {provinces} đang đọc báo cáo cũ {minutes} phút (xử lý tồn đọng sau "
        "khi cầu nối hoặc bộ thu mất kết nối); điểm của tỉnh có thể hiện im lặng cho tới khi "
        "đọc hết",
        "reports arrive late: {provinces} read {minutes} min behind (a backlog worked off "
        "after a bridge or collector outage); the province's sites may look silent until "
        "it is read",
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
    since: datetime | None = None  # when it began, as far as the collector knows
    thread: str | None = None  # the loop's name, for a thread_* problem
    provinces: tuple[str, ...] = ()  # the provinces late, for reports_late

    @classmethod
    def of(
        cls,
        code: str,
        *,
        since: float | None = None,
        thread: str | None = None,
        provinces: tuple[str, ...] = (),
        **values: object,
    ) -> Problem:
        vi, en = _TEXTS[code]
        if thread is not None:
            values["thread"] = thread
        if provinces:
            values["provinces"] = ", ".join(provinces)
        at = None if since is None else datetime.fromtimestamp(since, UTC)
        return cls(code, vi.format(**values), en.format(**values), at, thread, provinces)


@dataclass(frozen=True, slots=True)
class Health:
    problems: tuple[Problem, ...]
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems


def loop_problem(loop: LoopHealth, now: float) -> Problem | None:
    """What is wrong with a loop, if anything (its alert says the same); ``now`` in
    seconds since the epoch."""
    # A dead loop's last beat is the nearest to its death the collector knows.
    beat = now - loop.heartbeat_age_s
    if not loop.alive:
        return Problem.of("thread_dead", thread=loop.name, since=beat)
    if loop.stuck and loop.periodic:
        seconds = f"{loop.heartbeat_age_s:.0f}"
        return Problem.of("thread_silent", thread=loop.name, since=beat, seconds=seconds)
    if loop.stuck:
        seconds = f"{loop.busy_s:.0f}"
        return Problem.of("thread_busy", thread=loop.name, since=now - loop.busy_s, seconds=seconds)
    return None


# Connected, not yet receiving: said as such, not as disconnected.
_BROKER_PROBLEM: dict[str | None, str] = {
    "subscribing": "broker_subscribing",
    "subscription_refused": "broker_subscription_refused",
}
NO_REPORTS = frozenset({"broker_disconnected", *_BROKER_PROBLEM.values()})
"""The problems that mean no report comes in: every verdict frozen (the board's banner,
the collector's CollectorDisconnected alert)."""


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


def _problem_body(p: Problem) -> dict[str, Any]:
    body: dict[str, Any] = {"code": p.code, "text_vi": p.text_vi, "text_en": p.text_en}
    body["since"] = p.since  # a datetime: written as the API's times (collector/api_json.py)
    if p.thread is not None:
        body["thread"] = p.thread
    if p.provinces:
        body["provinces"] = list(p.provinces)
    return body


def assess(
    *,
    broker_connected: bool,
    broker_failure: Failing | None,
    influx_configured: bool,
    influx_down: bool,
    spooled_batches: int,
    loops: list[LoopHealth],
    broker_lost_at: float | None = None,
    influx_down_since: float | None = None,
    stopping_since: float | None = None,
    late: Mapping[str, Late] | None = None,
    now: float | None = None,
) -> Health:
    """``broker_lost_at``, ``influx_down_since``, ``stopping_since`` (a stop under way)
    and ``now``: seconds since the epoch; ``late``: the provinces whose reports arrive
    late (collector/backlog.py)."""
    wall = time.time() if now is None else now
    problems: list[Problem] = []
    if stopping_since is not None:  # first: a probe must not route to it any more
        problems.append(Problem.of("stopping", since=stopping_since))
    state = broker_failure.state if broker_failure is not None else None
    if not broker_connected:
        # The run of failures began when the connection was lost, or at the first failed
        # attempt; before either (starting, or connected and not yet subscribed): our own.
        since = broker_failure.since if broker_failure is not None else broker_lost_at
        problems.append(Problem.of(_BROKER_PROBLEM.get(state, "broker_disconnected"), since=since))
    if late:
        since = min(entry.since for entry in late.values())
        minutes = f"{max(entry.behind_s for entry in late.values()) / 60:.0f}"
        problems.append(
            Problem.of("reports_late", since=since, provinces=tuple(late), minutes=minutes)
        )
    if influx_down:
        problems.append(
            Problem.of("influx_unreachable", since=influx_down_since, spooled=spooled_batches)
        )
    problems += [p for p in (loop_problem(loop, wall) for loop in loops) if p is not None]
    body: dict[str, Any] = {
        "ok": not problems,
        "problems": [_problem_body(p) for p in problems],
        "broker_connected": broker_connected,
        "broker_failure": _failure(broker_failure),
        "reports_late": {
            province: {
                "behind_s": round(entry.behind_s, 1),
                "since": datetime.fromtimestamp(entry.since, UTC),
            }
            for province, entry in (late or {}).items()
        },
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
