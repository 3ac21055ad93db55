"""What the collector logs about its broker connection (collector/connection_log.py): the
cause and the fix of a failed attempt, once, then at most once a minute with the count; a
lost connection always; its return with the count; the run of failures as /healthz shows
it. On a clock of our own; the same on a real Mosquitto: tests/test_tls.py,
tests/test_collector_faults.py."""

from __future__ import annotations

import logging
import socket
import ssl
import time

import pytest

from collector.connection_log import (
    REFUSAL_HINTS,
    SUBSCRIPTION_FIX,
    ClosedByBroker,
    ConnectionLog,
    Failing,
    hint,
)

BROKER = "mqtts://broker.example:8883"
LOGGER = "tests.connection_log"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _verify_failed(code: int = 20) -> ssl.SSLCertVerificationError:
    """The error a handshake with an untrusted broker certificate raises."""
    error = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006)"
    )
    error.reason, error.verify_code = "CERTIFICATE_VERIFY_FAILED", code
    return error


def _alert(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()} (_ssl.c:2580)")
    error.reason = reason
    return error


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def said(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def _log(clock: Clock) -> ConnectionLog:
    return ConnectionLog(logging.getLogger(LOGGER), BROKER, (1, 2), clock=clock)


def _hhmmss(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def test_a_failure_is_logged_with_its_fix_then_at_most_once_a_minute_with_the_count(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    connection = _log(clock)
    began = clock.now
    connection.connect_failed(_verify_failed())
    assert _said(said) == [
        (
            logging.ERROR,
            f"cannot connect to the broker at {BROKER}: [SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed (_ssl.c:1006); check broker.ca_file names the CA that "
            "signed the broker's certificate; retrying every 1-2 s",
        )
    ]
    for _ in range(29):  # a retry every 2 s for the rest of the minute: nothing more
        clock.now += 2
        connection.connect_failed(_verify_failed())
    assert len(_said(said)) == 1 and connection.attempts == 30
    clock.now = began + 60
    connection.connect_failed(_verify_failed())
    level, line = _said(said)[-1]
    assert level == logging.ERROR and len(_said(said)) == 2
    assert line.startswith(f"cannot connect to the broker at {BROKER}: [SSL: CERTIFICATE_V")
    assert line.endswith(f"retrying every 1-2 s (31 attempts since {_hhmmss(began)})")
    clock.now += 59
    connection.connect_failed(_verify_failed())
    assert len(_said(said)) == 2
    clock.now += 1
    connection.connect_failed(_verify_failed())
    assert len(_said(said)) == 3 and "(33 attempts since" in _said(said)[-1][1]


def test_a_new_reason_is_logged_at_once_and_one_that_comes_back_waits(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    connection = _log(clock)
    connection.connect_failed(ConnectionRefusedError(111, "Connection refused"))
    clock.now += 2
    connection.disconnected("Unspecified error", _alert("TLSV13_ALERT_CERTIFICATE_REQUIRED"))
    clock.now += 2  # back to the first: already said in this run
    connection.connect_failed(ConnectionRefusedError(111, "Connection refused"))
    lines = _said(said)
    assert [level for level, _ in lines] == [logging.WARNING, logging.ERROR]
    assert lines[0][1].endswith(
        "[Errno 111] Connection refused; check the broker runs and listens on broker.url's "
        "port; retrying every 1-2 s"
    )
    assert lines[1][1] == (
        f"cannot connect to the broker at {BROKER}: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] "
        "tlsv13_alert_certificate_required (_ssl.c:2580); the broker requires a client "
        "certificate: set broker.cert_file and broker.key_file; retrying every 1-2 s "
        f"(2 attempts since {_hhmmss(clock.now - 4)})"
    )


def test_a_lost_connection_is_always_logged_and_its_return_counted(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    connection = _log(clock)
    lost_at = []
    for _ in range(2):  # a flapping link: each loss is said (benchmarks/fleet.py counts them)
        connection.connected()
        clock.now += 1
        lost_at.append(clock.now)
        connection.disconnected("Unspecified error", ClosedByBroker())
        for _ in range(3):
            clock.now += 2
            connection.connect_failed(ConnectionRefusedError(111, "Connection refused"))
    connection.connected()
    lines = [line for _, line in _said(said)]
    lost = "disconnected from the broker: Unspecified error (the broker closed the connection)"
    assert lines == [
        f"{lost}; reconnecting",
        f"cannot connect to the broker at {BROKER}: [Errno 111] Connection refused; check "
        "the broker runs and listens on broker.url's port; retrying every 1-2 s",
        f"connected to the broker at {BROKER} after 3 failed attempts since {_hhmmss(lost_at[0])}",
        f"{lost}; reconnecting",
        lines[1],
        f"connected to the broker at {BROKER} after 3 failed attempts since {_hhmmss(lost_at[1])}",
    ]
    # A first connection, no failure before it: nothing to say.
    said.clear()
    fresh = _log(clock)
    fresh.connected()
    assert _said(said) == []
    fresh.disconnected("Keep alive timeout", None)
    fresh.connect_failed(TimeoutError("timed out"))
    fresh.connected()
    assert [line for _, line in _said(said)] == [
        "disconnected from the broker: Keep alive timeout; reconnecting",
        f"cannot connect to the broker at {BROKER}: timed out; no answer: check the network "
        "path and firewall to broker.url; retrying every 1-2 s",
        f"connected to the broker at {BROKER} after 1 failed attempt since {_hhmmss(clock.now)}",
    ]


def test_a_refusal_is_logged_once_for_its_attempt_with_its_fix(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    """paho closes the connection after the broker's refusal: that on_disconnect is the same
    attempt, not a second failure."""
    connection = _log(clock)
    connection.refused("Not authorized")
    connection.disconnected("Unspecified error", None)
    assert _said(said) == [
        (
            logging.ERROR,
            f"broker at {BROKER} refused the connection: Not authorized; check "
            "broker.username and broker.password against the broker's password file and ACL; "
            "retrying every 1-2 s",
        )
    ]
    assert connection.attempts == 1
    clock.now += 2
    connection.disconnected("Unspecified error", _alert("TLSV1_ALERT_UNKNOWN_CA"))
    assert connection.attempts == 2 and len(_said(said)) == 2  # the next attempt: its own


def test_failing_is_the_latest_cause_of_the_run_and_is_gone_once_connected(
    clock: Clock,
) -> None:
    """What /healthz shows (collector/health.py): replaced at each attempt, never changed."""
    failures: list[float] = []
    connection = ConnectionLog(
        logging.getLogger(LOGGER),
        BROKER,
        (1, 2),
        clock=clock,
        on_failure=lambda: failures.append(clock.now),
    )
    assert connection.failing is None
    began = clock.now
    connection.connect_failed(_verify_failed())
    first = connection.failing
    assert first == Failing(
        "cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006)",
        "check broker.ca_file names the CA that signed the broker's certificate",
        1,
        began,
    )
    clock.now += 2
    connection.refused("Not authorized")
    connection.disconnected("Unspecified error", None)  # paho's close after it: one attempt
    assert connection.failing == Failing(
        "refused: Not authorized", REFUSAL_HINTS["Not authorized"], 2, began
    )
    assert connection.failing is not first and first.attempts == 1  # a reader's copy holds
    assert failures == [began, began + 2]
    connection.connected()
    connection.subscribed()
    assert connection.failing is None
    clock.now += 60
    lost_at = clock.now
    connection.disconnected("Keep alive timeout", ConnectionResetError(104, "reset by peer"))
    assert connection.failing == Failing(
        "disconnected: Keep alive timeout ([Errno 104] reset by peer)", None, 0, lost_at
    )
    assert len(failures) == 2, "a lost connection is not a failed attempt"
    clock.now += 1
    connection.connect_failed(ConnectionRefusedError(111, "Connection refused"))
    assert connection.failing == Failing(
        "cannot connect: [Errno 111] Connection refused",
        "check the broker runs and listens on broker.url's port",
        1,
        lost_at,
    )
    assert BROKER not in repr(connection.failing), "/healthz needs no token: no broker url"
    connection.connected()
    connection.subscribed()
    assert connection.failing is None and len(failures) == 3


def test_a_clock_set_back_does_not_silence_the_repeats(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    connection = _log(clock)
    connection.connect_failed(TimeoutError("timed out"))
    clock.now -= 3600
    connection.connect_failed(TimeoutError("timed out"))
    assert len(_said(said)) == 2


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (_verify_failed(), "check broker.ca_file names the CA"),
        (_verify_failed(10), "the broker's certificate has expired"),
        (_verify_failed(62), "does not name the host in broker.url"),
        (_alert("TLSV13_ALERT_CERTIFICATE_REQUIRED"), "set broker.cert_file and broker.key_file"),
        (_alert("TLSV1_ALERT_UNKNOWN_CA"), "broker.cert_file must be issued by the CA"),
        (_alert("SSLV3_ALERT_BAD_CERTIFICATE"), "refused this collector's certificate"),
        (_alert("WRONG_VERSION_NUMBER"), "this port does not speak TLS"),
        (ConnectionRefusedError(111, "Connection refused"), "listens on broker.url's port"),
        (ConnectionResetError(104, "Connection reset by peer"), "mqtt:// or mqtts://"),
        (ClosedByBroker(), "mqtt:// or mqtts://"),
        (socket.gaierror(-2, "Name or service not known"), "host name in broker.url"),
        (TimeoutError("timed out"), "network path and firewall"),
        (_alert("SOMETHING_ELSE"), None),
        (OSError(5, "Input/output error"), None),
    ],
)
def test_common_errors_name_their_fix(error: OSError, fix: str | None) -> None:
    found = hint(error)
    assert found is None if fix is None else found is not None and fix in found


def _state(connection: ConnectionLog) -> str | None:
    return None if connection.failing is None else connection.failing.state


def test_until_the_subscriptions_are_granted_failing_says_why_nothing_comes_in(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    """Start, CONNACK, SUBACK: never None before the broker has granted the subscriptions."""
    connection = _log(clock)
    started = clock.now
    connection.connecting()
    assert connection.failing == Failing(
        "connecting: the broker has not answered yet", None, 0, started, "connecting"
    )
    clock.now += 0.5
    connection.connected()  # CONNACK
    waiting = Failing(
        "connected, waiting for the broker to accept the subscriptions (SUBACK)",
        None,
        0,
        started + 0.5,
        "subscribing",
    )
    assert connection.failing == waiting
    clock.now += 3
    connection.subscription_refused("kienco/v1/hp/#", "Not authorized (0x87)", 5)
    assert connection.failing == Failing(
        "subscription to kienco/v1/hp/# refused: Not authorized (0x87)",
        SUBSCRIPTION_FIX,
        1,
        started + 0.5,  # nothing has come in since the CONNACK
        "subscription_refused",
    )
    assert "read on its filters" in SUBSCRIPTION_FIX and "kienco.acl" in SUBSCRIPTION_FIX
    assert _said(said) == [
        (
            logging.ERROR,
            f"broker at {BROKER} refused the subscription to kienco/v1/hp/#: Not authorized "
            f"(0x87); {SUBSCRIPTION_FIX}; asking again in 5 s",
        )
    ]
    # Asked again and refused again: counted, said again only once a minute.
    said.clear()
    for _ in range(3):
        clock.now += 20
        connection.subscription_refused("kienco/v1/hp/#", "Not authorized (0x87)", 60)
    assert connection.failing is not None and connection.failing.attempts == 4
    assert connection.failing.since == started + 0.5
    refused_again = (
        f"broker at {BROKER} refused the subscription to kienco/v1/hp/#: Not authorized "
        f"(0x87); {SUBSCRIPTION_FIX}; asking again in 60 s (4 refusals since "
        f"{time.strftime('%H:%M:%S', time.localtime(started + 0.5))})"
    )
    assert _said(said) == [(logging.ERROR, refused_again)]
    # The connection is lost, and the next one's SUBACK grants them.
    clock.now += 10
    connection.disconnected("Keep alive timeout", None)
    assert _state(connection) == "disconnected"
    connection.connected()
    assert _state(connection) == "subscribing"
    connection.subscribed()
    assert connection.failing is None
    connection.connecting()  # a stray call changes nothing once subscribed
    assert connection.failing is None
