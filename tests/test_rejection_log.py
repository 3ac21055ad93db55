"""The log of refused messages: each kind said once a minute per topic, none lost from the count."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from collector import rejection_log
from collector.rejection_log import RejectionLog

T0 = datetime(2024, 9, 7, 3, 15, tzinfo=UTC)
AHEAD = "kienco/v1/hn/hn-bts-cau-giay/report"


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records]
    caplog.clear()
    return lines


def test_a_topic_refused_every_interval_is_said_once_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    said = RejectionLog(logging.getLogger("test.rejections"))
    logged = [said.refused(_at(s), AHEAD, "future_timestamp", f"#{s}") for s in range(0, 130, 10)]
    # at 0, then 60 (5 not said since: 10..50) and 120 (5: 70..110)
    assert logged == [True, False, False, False, False, False, True] + [False] * 5 + [True]
    first, second, third = _lines(caplog)
    assert first == f"rejected {AHEAD}: future_timestamp: #0"
    assert second.startswith(f"rejected {AHEAD}: future_timestamp: #60 (and 5 more")
    assert "last 60 s" in second and "kept as dead letters" in second
    assert third.startswith(f"rejected {AHEAD}: future_timestamp: #120 (and 5 more")


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        pytest.param(AHEAD, "schema", id="another-reason"),
        pytest.param("kienco/v1/hn/hn-dc-tp/report", "future_timestamp", id="another-topic"),
    ],
)
def test_another_reason_or_topic_is_said_at_once(
    topic: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    said = RejectionLog(logging.getLogger("test.rejections"))
    assert said.refused(_at(0), AHEAD, "future_timestamp", "x")
    assert said.refused(_at(1), topic, reason, "y")
    assert len(_lines(caplog)) == 2


def test_text_from_the_field_stays_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    said = RejectionLog(logging.getLogger("test.rejections"))
    said.refused(_at(0), "kienco/v1/hn/x\nFAKE/report", "schema", 'bad "\x1b[31m"\r\nFAKE LINE')
    (line,) = _lines(caplog)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rejection_log, "_MAX_KEYS", 3)
    said = RejectionLog(logging.getLogger("test.rejections"))
    for n in range(3):
        said.refused(_at(0), f"t{n}", "schema", "")
    assert not said.refused(_at(1), "t0", "schema", "")  # remembered
    assert said.refused(_at(2), "t3", "schema", "")  # full: forgotten, then this one
    assert said.refused(_at(3), "t0", "schema", "")  # forgotten: said again
