"""The collector's HTTP API, its /metrics, and a health check.

    GET  /api/v1/readiness[?province=hp&kind=meeting_point&verdict=not_ready]
    GET  /api/v1/sites/{site}
    GET  /api/v1/risk[?province=hp]          current levels and their history
    POST /api/v1/risk                        {"province", "level", "reason", "set_by"}
    GET  /api/v1/meetings                    planned meetings
    POST /api/v1/meetings                    {"title", "starts_at", "duration_s", "province", ...}
    GET  /api/v1/meetings/{id}               N of M points ready, and why not
    POST /api/v1/meetings/{id}/rehearse      ask every point to run its pre-meeting check
    GET  /api/v1/whatif/grid-off?province=hp[&at=ISO&hours=12&meeting_s=S]  who goes dark
    GET  /api/v1/throughput?bytes=N          N incompressible bytes (an agent's download test)
    POST /api/v1/throughput                  a capped upload sink: {"bytes", "seconds"}
    GET  /api/v1/deadletter[?reason=R&all=1&limit=N]  rejected messages kept, newest first
    GET  /api/v1/deadletter/{id}             one, with its payload
    POST /api/v1/deadletter/replay           {"reason", "id"}: drive kept ones through again
    GET  /metrics                            Prometheus text format
    GET  /healthz                            200 when all is well, else 503 and what is wrong

Each request is a step of the collector's ``api`` loop (collector/supervision.py):
an error is logged once per kind, counted, and answered 500 with a JSON error.
A POST needs the admin token (``Authorization: Bearer …``), always: without a
configured token the API is read-only. Being on the collector's machine is no
credential (a reverse proxy on that host would make every one of its clients an
admin). The standard library's threading HTTP server is enough: answers come
from cached JSON.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from collector.health import Health
from collector.meetings import MeetingRequest
from collector.replay import ReplayRequest
from collector.risk import RiskChange
from collector.supervision import Loop
from collector.throughput import PATH as THROUGHPUT_PATH
from collector.throughput import ThroughputHandler
from contract.wire import SLUG_PATTERN, utc_now

READINESS_FILTERS = ("province", "kind", "verdict")
WRITES_DISABLED = (
    "this collector is read-only: no admin token is configured. "
    "Fix: set http.admin_token in the collector's config (e.g. {env: KIENCO_ADMIN_TOKEN})"
)
TOKEN_MISSING = (
    "changes need the admin token: send 'Authorization: Bearer <token>' "
    "(the kienco CLI sends $KIENCO_ADMIN_TOKEN, or --token-file)"
)
TOKEN_WRONG = "the admin token is wrong"
_SLUG = re.compile(SLUG_PATTERN)
Reply = tuple[HTTPStatus, bytes]


class Backend(Protocol):
    """What the API asks of the collector (collector/service.py)."""

    def api_get(self, parts: list[str], query: dict[str, str]) -> Reply: ...
    def api_post(self, parts: list[str], body: BaseModel | None) -> Reply: ...


def json_reply(status: HTTPStatus, payload: object) -> Reply:
    return status, json.dumps(payload, ensure_ascii=False).encode()


def _not_found(path: str) -> Reply:
    return json_reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {path}"})


def readiness_reply(selected: list[Any], encoded: bytes) -> Reply:
    counts: dict[str, int] = {}
    for status in selected:
        counts[status.verdict] = counts.get(status.verdict, 0) + 1
    head = json.dumps(
        {"generated_at": utc_now().isoformat(), "count": len(selected), "counts": counts}
    ).encode()
    return HTTPStatus.OK, head[:-1] + b',"sites":' + encoded + b"}"


# POST bodies by route: validated before the backend sees them.
_BODIES: dict[tuple[str, ...], type[BaseModel]] = {
    ("risk",): RiskChange,
    ("meetings",): MeetingRequest,
    ("deadletter", "replay"): ReplayRequest,
}


class Api:
    """Serves the API on ``host:port`` in a daemon thread; ``port`` 0 picks a free one."""

    def __init__(
        self,
        backend: Backend,
        registry: Any,
        *,
        health: Callable[[], Health],
        loop: Loop,
        admin_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 9108,
    ) -> None:
        handler = _handler(backend, registry, health, loop, admin_token)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.host = host
        self._thread = threading.Thread(target=self.server.serve_forever, name="api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    backend: Backend,
    registry: Any,
    health: Callable[[], Health],
    loop: Loop,
    admin_token: str | None,
) -> type[BaseHTTPRequestHandler]:
    throughput = ThroughputHandler()

    class Handler(BaseHTTPRequestHandler):
        server_version = "kienco"

        def log_message(self, format: str, *args: Any) -> None:
            return  # access logs would drown the collector's own log

        def do_GET(self) -> None:
            self._guarded(self._get)

        def do_POST(self) -> None:
            self._guarded(self._post)

        def _guarded(self, answer: Callable[[], None]) -> None:
            """Answer as a step of the api loop; whatever raises gets a 500, not a dropped
            connection (unless the reply had already begun)."""
            self._replied = False
            error: str | None = None
            with loop.step():
                try:
                    answer()
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    raise  # the step logs and counts it
            if error is not None and not self._replied:
                failed = json_reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": error})
                loop.attempt(self._reply, failed)  # the client may be gone: counted, no more

        _replied = False

        def send_response(self, code: int, message: str | None = None) -> None:
            self._replied = True
            super().send_response(code, message)

        def _get(self) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if url.path == THROUGHPUT_PATH:  # streamed: not through the JSON replies
                throughput.get(self, url.query)
            elif parts == ["metrics"]:
                self._send(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif parts == ["healthz"]:
                now = health()
                code = HTTPStatus.OK if now.ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._reply(json_reply(code, now.body))
            elif parts[:2] == ["api", "v1"] and all(_SLUG.fullmatch(p) for p in parts[2:]):
                query = {key: values[-1] for key, values in parse_qs(url.query).items()}
                self._reply(backend.api_get(parts[2:], query))
            else:
                self._reply(
                    json_reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {url.path}"})
                )

        def _post(self) -> None:
            url = urlsplit(self.path)
            if url.path == THROUGHPUT_PATH:  # agents are not admins; it changes nothing, capped
                throughput.post(self, url.query)
                return
            parts = [p for p in url.path.split("/") if p]
            if parts[:2] != ["api", "v1"] or not all(_SLUG.fullmatch(p) for p in parts[2:]):
                self._reply(
                    json_reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
                )
                return
            refused = self._refusal()
            if refused is not None:
                self._reply(refused)
                return
            model = _BODIES.get(tuple(parts[2:]))
            body: BaseModel | None = None
            if model is not None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = model.model_validate_json(self.rfile.read(min(length, 1 << 20)))
                except ValidationError as exc:
                    problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
                    self._reply(
                        json_reply(
                            HTTPStatus.BAD_REQUEST,
                            {"error": "invalid request", "problems": problems},
                        )
                    )
                    return
            self._reply(backend.api_post(parts[2:], body))

        def _refusal(self) -> Reply | None:
            """Why this request may not change anything, or None when it may."""
            if admin_token is None:
                return json_reply(HTTPStatus.FORBIDDEN, {"error": WRITES_DISABLED})
            given = self.headers.get("Authorization")
            if given is None:
                return json_reply(HTTPStatus.UNAUTHORIZED, {"error": TOKEN_MISSING})
            if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
                return json_reply(HTTPStatus.FORBIDDEN, {"error": TOKEN_WRONG})
            return None

        def _reply(self, reply: Reply) -> None:
            self._send(reply[0], reply[1], "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == HTTPStatus.UNAUTHORIZED:
                self.send_header("WWW-Authenticate", 'Bearer realm="kienco"')
            self.end_headers()
            self.wfile.write(body)

    return Handler


__all__ = ["READINESS_FILTERS", "Api", "Backend", "Reply", "json_reply", "readiness_reply"]
