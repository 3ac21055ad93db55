"""What the collector says about its broker connection: why an attempt failed, and the fix.

paho retries a connection on its own and says why it failed only to a logger the collector
never enables (enabling it costs a formatted log call per packet): a wrong CA file was
retried in silence, a client certificate the broker refused showed as "Unspecified error".
``CollectorClient`` (collector/mqtt_client.py) keeps the error each attempt met; this
module turns it into one line that names the cause and, for the common cases, the key to
fix (``broker.ca_file``, ``broker.cert_file``...), and keeps a broker that stays refused
from filling the log: see :class:`ConnectionLog`. The run of failures as it stands,
:class:`Failing`, is what /healthz shows (collector/health.py). Connected is not yet
receiving: from the broker's CONNACK to its SUBACK the collector waits for its
subscriptions, and a SUBACK may refuse them (an ACL that denies the collector's account);
until they are granted, :class:`Failing` says which (``state``).

Errors: :class:`ClosedByBroker` (a ``ConnectionError``) stands for a connection the broker
closed: paho reads no bytes, raises nothing and says "Unspecified error"; with it, that
case is told like the others.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "REPEAT_EVERY_S",
    "SUBSCRIPTION_FIX",
    "BrokerState",
    "ClosedByBroker",
    "ConnectionLog",
    "Failing",
    "hint",
]

# A reason already logged in a run of failed attempts is logged again at most this often,
# with the count: one line a minute still tells someone watching the log that it goes on
# (the client retries every 1-2 s: ~40 lines a minute without it), and a night of a
# broker down is ~500 lines, not ~20 000.
REPEAT_EVERY_S = 60.0
# Distinct reasons remembered in one run of failures: a cause that alternates (an alert on
# one attempt, a reset on the next) is logged once each, not at every change.
MAX_REASONS = 16


class ClosedByBroker(ConnectionError):
    """The broker closed the connection (it sent nothing to say why)."""

    def __init__(self) -> None:
        super().__init__("the broker closed the connection")


# What an SSL error's reason means here (``ssl.SSLError.reason``: OpenSSL's name for it).
# Reached with the collector's config keys (collector/config.py, plumbing/mqtt_endpoint.py).
TLS_HINTS: dict[str, str] = {
    "CERTIFICATE_VERIFY_FAILED": "check broker.ca_file names the CA that signed the "
    "broker's certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate: set "
    "broker.cert_file and broker.key_file",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the broker ended the handshake; if it requires a client "
    "certificate, set broker.cert_file and broker.key_file",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust this collector's certificate: "
    "broker.cert_file must be issued by the CA the broker's cafile names",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused this collector's certificate: "
    "broker.cert_file must be issued by the CA the broker trusts, for client use, and in date",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "this collector's certificate (broker.cert_file) has "
    "expired: renew it",
    "WRONG_VERSION_NUMBER": "this port does not speak TLS: point broker.url at the broker's "
    "TLS listener (usually 8883), or use mqtt:// without broker.ca_file",
}
# OpenSSL's verify codes that CERTIFICATE_VERIFY_FAILED says more precisely (x509_vfy.h).
VERIFY_HINTS: dict[int, str] = {
    9: "the broker's certificate is not valid yet: check this machine's clock",
    10: "the broker's certificate has expired: renew it on the broker (or check this "
    "machine's clock)",
    62: "the broker's certificate does not name the host in broker.url: use a name it "
    "holds, or reissue it with this one",
}
# The other errors an attempt meets, the first that matches.
OS_HINTS: tuple[tuple[type[OSError] | tuple[type[OSError], ...], str], ...] = (
    (ConnectionRefusedError, "check the broker runs and listens on broker.url's port"),
    (socket.gaierror, "check the host name in broker.url"),
    (TimeoutError, "no answer: check the network path and firewall to broker.url"),
    # Mosquitto resets or closes a connection whose first bytes are not what its listener
    # speaks: TLS on a plain port, plain MQTT on a TLS one.
    (
        (ConnectionResetError, ClosedByBroker),
        "check broker.url's mqtt:// or mqtts:// matches the broker's listener; its log says why",
    ),
)
# The broker's CONNACK refusals (paho's reason names, MQTT 3.1.1 and 5).
REFUSAL_HINTS: dict[str, str] = {
    "Not authorized": "check broker.username and broker.password against the broker's "
    "password file and ACL",
    "Bad user name or password": "check broker.username and broker.password against the "
    "broker's password file",
    "Client identifier not valid": "check broker.client_id",
}


# A SUBACK that refuses a filter: what the broker wants. Mosquitto's acl_file grants every
# subscription and filters at delivery (nothing arrives, nothing is said); the dynamic-
# security plugin refuses in the SUBACK: "Not authorized" on MQTT 5, a bare 0x80 on 3.1.1.
SUBSCRIPTION_FIX = (
    "the broker's ACL must grant the collector's account (broker.username) read on its "
    "filters: the 'user collector' block of firmware-configs/mosquitto/kienco.acl, or a "
    "dynamic-security role that allows subscribing to them and receiving from them"
)

BrokerState = Literal["connecting", "disconnected", "subscribing", "subscription_refused"]
"""Why no reports come in: no connection yet (first attempt under way), the connection
lost or refused, connected and waiting for the SUBACK, the SUBACK refused."""


@dataclass(frozen=True, slots=True)
class Failing:
    """Why no reports come in (``state``): the current run of failures (why the latest
    attempt failed, the fix, how long), or, connected, the subscriptions not yet granted.

    /healthz shows it and needs no token: the broker's url is left out. The cause is text
    from OpenSSL, the OS and paho about what the peer did: shown JSON-encoded only, never
    put in a page.
    """

    cause: str  # "cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED] ...", "refused: ..."
    fix: str | None
    attempts: int  # failed attempts in the run: 0 when a connection was just lost
    since: float  # when the run (or the wait) began, seconds since the epoch
    state: BrokerState = "disconnected"


def hint(error: BaseException) -> str | None:
    """What to check for this connection error, when it is a common one."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_code in VERIFY_HINTS:
        return VERIFY_HINTS[error.verify_code]
    if isinstance(error, ssl.SSLError):
        return TLS_HINTS.get(error.reason or "")
    for kind, text in OS_HINTS:
        if isinstance(error, kind):
            return text
    return None


def _cause(error: BaseException | None) -> str:
    if error is None:
        return "no error was reported"
    return str(error) or type(error).__name__


def _is_config(error: BaseException | None) -> bool:
    """TLS said no: a file or key to fix, not an outage to wait out (logged as an error)."""
    transient = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    return isinstance(error, ssl.SSLError) and not isinstance(error, transient)


class ConnectionLog:
    """The collector's log lines about its broker connection, from paho's callbacks.

    A *run* of failures starts with a lost connection or the first failed attempt and ends
    at the next accepted connection. In a run, a reason not yet logged is logged at once
    (a TLS or refusal problem as an error, the rest as a warning); a reason already logged
    is logged again at most every ``repeat_every_s``, with the attempts so far and when the
    run began. A lost connection is always logged. All calls come from paho's thread
    (:meth:`connecting` before it starts);
    :attr:`failing` is read from any: a new :class:`Failing` replaces the last, never
    changed in place. ``on_failure`` is called at each failed attempt (a counter in
    /metrics).
    """

    def __init__(
        self,
        logger: logging.Logger,
        broker: str,
        retry_s: tuple[float, float],
        *,
        clock: Callable[[], float] = time.time,
        repeat_every_s: float = REPEAT_EVERY_S,
        on_failure: Callable[[], object] = lambda: None,
    ) -> None:
        self.log = logger
        self.broker = broker
        self.retry = f"retrying every {retry_s[0]:g}-{retry_s[1]:g} s"
        self.clock = clock
        self.repeat_every_s = repeat_every_s
        self.on_failure = on_failure
        self.failing: Failing | None = None  # the current run of failures, None when none
        self.attempts = 0  # failed attempts in the current run
        self._since: float | None = None  # when the current run began
        self._said: set[str] = set()  # reasons logged in the current run
        self._last_said = 0.0
        self._up = False  # the broker accepted the connection (CONNACK)
        self._refused = False  # this attempt's CONNACK said no: logged already

    def connecting(self) -> None:
        """The first attempt is under way: nothing has failed, nothing comes in yet."""
        if self.failing is None and not self._up:
            waiting = "connecting: the broker has not answered yet"
            self.failing = Failing(waiting, None, 0, self.clock(), "connecting")

    def connected(self) -> None:
        """The broker accepted the connection (CONNACK): the run of failures, if any, is
        over; the subscriptions are yet to be granted (:meth:`subscribed`)."""
        if self.attempts:
            self.log.info(
                "connected to the broker at %s after %d failed attempt%s since %s",
                self.broker,
                self.attempts,
                "" if self.attempts == 1 else "s",
                self._clock_time(self._since),
            )
        self._up, self._refused = True, False
        self._new_run(None)
        self.failing = Failing(
            "connected, waiting for the broker to accept the subscriptions (SUBACK)",
            None,
            0,
            self.clock(),
            "subscribing",
        )

    def subscribed(self) -> None:
        """The broker granted the subscriptions (or kept them in the session): reports
        come in, nothing to say."""
        if self._up:
            self.failing = None

    def subscription_refused(self, filters: str, refusals: str, retry_in_s: float) -> None:
        """The SUBACK refused ``filters`` (``refusals``: its reason codes, as text).
        Nothing comes in until the broker grants them: the collector asks again in
        ``retry_in_s`` (collector/subscription_retry.py) and at each reconnection. The
        first refusal is logged, a repeated one every ``repeat_every_s``."""
        now = self.clock()
        before = self.failing
        again = before is not None and before.state == "subscription_refused"
        attempts = before.attempts + 1 if again and before is not None else 1
        since = before.since if before is not None else now
        cause = f"subscription to {filters} refused: {refusals}"
        self.failing = Failing(cause, SUBSCRIPTION_FIX, attempts, since, "subscription_refused")
        # A clock set back counts as due, as for the connection's failures.
        if again and self._last_said <= now < self._last_said + self.repeat_every_s:
            return
        self._last_said = now
        line = f"broker at {self.broker} refused the subscription to {filters}: {refusals}"
        text = f"{line}; {SUBSCRIPTION_FIX}; asking again in {retry_in_s:g} s"
        if attempts > 1:
            text += f" ({attempts} refusals since {self._clock_time(since)})"
        self.log.error("%s", text)

    def connect_failed(self, error: BaseException | None) -> None:
        """An attempt failed before MQTT began (TCP, TLS handshake): paho's on_connect_fail."""
        self._refused = False
        self._failed(error)

    def refused(self, reason: str) -> None:
        """The broker answered the CONNECT with a refusal."""
        self._refused = True
        line = f"broker at {self.broker} refused the connection: {reason}"
        shown = f"refused: {reason}"
        self._failed_line(reason, line, shown, REFUSAL_HINTS.get(reason), logging.ERROR)

    def disconnected(self, reason: str, error: BaseException | None) -> None:
        """paho's on_disconnect: a connection lost, or an attempt that ended before the
        broker accepted it (a client certificate it refused shows here, after TLS)."""
        if self._up:
            self._up = False
            since = self.clock()
            self._new_run(since)
            # No hint: they are about a connection that could not be made; this one was.
            lost = reason if error is None else f"{reason} ({_cause(error)})"
            self.failing = Failing(f"disconnected: {lost}", None, 0, since)
            self.log.warning("disconnected from the broker: %s; reconnecting", lost)
        elif self._refused:  # paho closes after a refusal: that attempt was logged
            self._refused = False
        else:
            self._failed(error)

    # --- the run of failures --------------------------------------------------------

    def _new_run(self, since: float | None) -> None:
        self.attempts = 0
        self._since = since
        self._said.clear()
        self._last_said = since or 0.0
        self.failing = None

    def _failed(self, error: BaseException | None) -> None:
        cause = _cause(error)
        level = logging.ERROR if _is_config(error) else logging.WARNING
        fix = hint(error) if error is not None else None
        line = f"cannot connect to the broker at {self.broker}: {cause}"
        self._failed_line(cause, line, f"cannot connect: {cause}", fix, level)

    def _failed_line(self, reason: str, line: str, shown: str, fix: str | None, level: int) -> None:
        now = self.clock()
        if self._since is None:
            self._since = now
        self.attempts += 1
        self.failing = Failing(shown, fix, self.attempts, self._since)
        self.on_failure()
        if reason not in self._said and len(self._said) < MAX_REASONS:
            self._said.add(reason)
        # A clock set back counts as due: never silent for longer than it should be.
        elif self._last_said <= now < self._last_said + self.repeat_every_s:
            return
        self._last_said = now
        text = f"{line}; {fix}; {self.retry}" if fix else f"{line}; {self.retry}"
        if self.attempts > 1:
            text += f" ({self.attempts} attempts since {self._clock_time(self._since)})"
        self.log.log(level, "%s", text)

    def _clock_time(self, at: float | None) -> str:
        # Local time, as the log's own timestamps (kienco/cli.py's format).
        return time.strftime("%H:%M:%S", time.localtime(at if at is not None else self.clock()))
