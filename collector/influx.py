"""A small synchronous client for InfluxDB's v1 HTTP API (``/write``, ``/query``, ``/ping``).

It is the API every InfluxDB generation serves (1.x natively, 2.x and 3.x
through their v1 compatibility endpoints) and the only one Debian's 1.6 has.
The collector's writer runs in a thread, so this is a plain ``httpx.Client``.

Errors::

    InfluxError
     ├── InfluxUnavailable    not (surely) stored; send again later (connection,
     │                        timeout, 5xx, bad credentials, a database that is
     │                        missing and cannot be created: an operator can fix
     │                        those without losing the data)
     ├── InfluxBatchTooLarge  413: the body exceeds the server's max-body-size
     └── InfluxQueryError     an InfluxQL statement was refused

A ``400`` on ``/write`` is not an exception: InfluxDB stored the valid lines
and refused the others, which ``WriteResult`` reports. Resending it would only
be refused again.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from collector.acyclic_http import AcyclicClient

__all__ = [
    "InfluxBatchTooLarge",
    "InfluxError",
    "InfluxQueryError",
    "InfluxUnavailable",
    "InfluxV1Client",
    "WriteResult",
    "go_duration_s",
    "quote_identifier",
]

_DROPPED = re.compile(r"dropped=(\d+)")
_PARSE_ERROR = "unable to parse '"
# What InfluxDB 1.x says of points older than its retention policy keeps (a 400).
BEYOND_RETENTION = "points beyond retention policy"
_HTTP_TO_HTTPS = "Client sent an HTTP request to an HTTPS server"


class InfluxError(Exception):
    """Base of the errors of this module."""


class InfluxUnavailable(InfluxError):
    """InfluxDB did not (surely) take the batch: send it again. ``status`` if it answered.

    A timeout may come after part of the batch was stored; resending is safe, as
    a point with the same series and timestamp is stored once.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InfluxBatchTooLarge(InfluxError):
    """InfluxDB refused the body as too large (413): send it in smaller pieces."""


class InfluxQueryError(InfluxError):
    """InfluxDB refused an InfluxQL statement."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What InfluxDB did with a batch: all stored (``ok``) or a partial write.

    ``refused`` counts the lines InfluxDB says it dropped plus the lines it could
    not parse. (1.6 leaves parse errors out of the message when a batch also has
    a type conflict, so it can be an undercount; it is never an overcount.)
    """

    ok: bool
    partial: bool = False
    refused: int = 0
    error: str | None = None


def quote_identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_GO_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def go_duration_s(text: str) -> float | None:
    """A duration as InfluxDB prints a retention policy's (Go's ``840h0m0s``; ``0s`` is
    for ever), in seconds; None if it is not one."""
    match = _GO_DURATION.fullmatch(text)
    if not text or match is None:
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _partial(response: httpx.Response) -> WriteResult:
    try:
        error = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        error = response.text
    dropped = sum(int(n) for n in _DROPPED.findall(error))
    return WriteResult(
        ok=False, partial=True, refused=dropped + error.count(_PARSE_ERROR), error=error
    )


class InfluxV1Client:
    """InfluxDB v1 HTTP API for one database (and optionally one retention policy)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
        retention_policy: str | None = None,
        create_missing_database: bool = True,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """``verify``: the TLS context for an https url (plumbing.tls.client_context); None
        is httpx's own verifying default. Never a switch to turn verification off."""
        self.url = url.rstrip("/")
        self.create_missing_database = create_missing_database
        self.database = database
        self.username = username
        self.retention_policy = retention_policy
        self.timeout_s = timeout_s
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._has_password = password is not None
        self._http = AcyclicClient(
            base_url=self.url,
            timeout=timeout_s,
            auth=auth,
            verify=True if verify is None else verify,
        )

    def __repr__(self) -> str:
        password = "<secret>" if self._has_password else None
        return (
            f"InfluxV1Client(url={self.url!r}, database={self.database!r}, "
            f"username={self.username!r}, password={password!r}, "
            f"retention_policy={self.retention_policy!r})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InfluxV1Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:  # connection refused, reset, timeouts, TLS refused
            raise InfluxUnavailable(f"{method} {self.url}{path}: {error!r}") from error
        # Go's answer to plain http on an HTTPS port: a 400 that is no partial write (nothing
        # was read), so the batch must wait for the operator's fix, not be dead-lettered.
        if response.status_code == 400 and response.text.startswith(_HTTP_TO_HTTPS):
            raise InfluxUnavailable(
                f"{method} {self.url}{path}: InfluxDB serves HTTPS on this port. Fix: "
                "influx.url https://… and influx.ca_file (the CA of its certificate)",
                status=400,
            )
        return response

    def ping(self) -> bool:
        """True when the server answers ``/ping`` with 204."""
        try:
            return self._request("GET", "/ping").status_code == 204
        except InfluxUnavailable:
            return False

    def create_database(self) -> None:
        """Create the database; a no-op when it exists."""
        self.query(f"CREATE DATABASE {quote_identifier(self.database)}")

    def write(self, lines: str) -> WriteResult:
        """POST a line-protocol batch with nanosecond timestamps.

        With ``create_missing_database`` a 404 "database not found" (InfluxDB was
        down when the collector started, or was reinstalled) creates the
        database and sends the batch once more.
        """
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy is not None:
            params["rp"] = self.retention_policy
        body = lines.encode()
        response = self._request("POST", "/write", params=params, content=body)
        if response.status_code == 404 and self.create_missing_database:
            try:
                self.create_database()
            except InfluxQueryError as error:  # e.g. a user without the privilege
                raise InfluxUnavailable(f"write: {error}", status=404) from error
            response = self._request("POST", "/write", params=params, content=body)
        status = response.status_code
        if 200 <= status < 300:
            return WriteResult(ok=True)
        if status == 400:
            return _partial(response)
        if status == 413:
            raise InfluxBatchTooLarge(f"{len(lines)} characters: {response.text.strip()}")
        raise InfluxUnavailable(f"write: HTTP {status}: {response.text.strip()}", status=status)

    def retention_s(self) -> float | None:
        """How long the retention policy written to (``retention_policy``, else the
        database's default) keeps points, in seconds; None: for ever, or no such policy.
        Raises as :meth:`query` does."""
        rows = self.query(f"SHOW RETENTION POLICIES ON {quote_identifier(self.database)}")
        for row in rows:
            wanted = row.get("default") if self.retention_policy is None else None
            if wanted or row.get("name") == self.retention_policy:
                return go_duration_s(str(row.get("duration", ""))) or None
        return None

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL against the database; one dict per row, the series' tags merged in.

        ``time`` comes back in epoch nanoseconds.
        """
        data = {"q": influxql, "db": self.database, "epoch": "ns"}
        response = self._request("POST", "/query", data=data)
        if response.status_code >= 500:
            raise InfluxUnavailable(
                f"query: HTTP {response.status_code}: {response.text.strip()}",
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError as error:
            raise InfluxQueryError(f"HTTP {response.status_code}: {response.text!r}") from error
        if "error" in body:
            raise InfluxQueryError(f"{body['error']} (in {influxql!r})")
        rows: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxQueryError(f"{result['error']} (in {influxql!r})")
            for series in result.get("series", []):
                tags = series.get("tags") or {}
                columns = series["columns"]
                for values in series.get("values", []):
                    row = dict(zip(columns, values, strict=True))
                    row.update(tags)
                    rows.append(row)
        return rows
