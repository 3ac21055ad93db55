"""The collector's read-only HTTP API, its /metrics, and a health check.

    GET /api/v1/readiness[?province=hp&kind=meeting_point&verdict=not_ready]
    GET /api/v1/sites/{site}
    GET /api/v1/risk[?province=hp]      current levels and their history
    POST /api/v1/risk     {"province", "level", "reason", "set_by"}  (admin token or loopback)
    GET /metrics          Prometheus text format
    GET /healthz          200 when connected to the broker, else 503

The standard library's threading HTTP server is enough here: the answers are
assembled from JSON the verdict cache already holds.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from agent.wire import SLUG_PATTERN, utc_now
from collector.readiness import Verdicts
from collector.risk import RiskChange, RiskEntry, RiskLevels
from collector.state import SiteStates

_FILTERS = ("province", "kind", "verdict")


class Api:
    """Serves the API on ``host:port`` in a daemon thread; ``port`` 0 picks a free one."""

    def __init__(
        self,
        verdicts: Verdicts,
        states: SiteStates,
        registry: CollectorRegistry,
        *,
        healthy: Callable[[], bool],
        risk: RiskLevels,
        set_risk: Callable[[RiskChange], RiskEntry],
        admin_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 9108,
    ) -> None:
        handler = _handler(verdicts, states, registry, healthy, risk, set_risk, admin_token)
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

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    verdicts: Verdicts,
    states: SiteStates,
    registry: CollectorRegistry,
    healthy: Callable[[], bool],
    risk: RiskLevels,
    set_risk: Callable[[RiskChange], RiskEntry],
    admin_token: str | None,
) -> type[BaseHTTPRequestHandler]:
    import re

    slug = re.compile(SLUG_PATTERN)

    class Handler(BaseHTTPRequestHandler):
        server_version = "kienco"

        def log_message(self, format: str, *args: Any) -> None:
            return  # access logs would drown the collector's own log

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts == ["api", "v1", "readiness"]:
                self._readiness(parse_qs(url.query))
            elif len(parts) == 4 and parts[:3] == ["api", "v1", "sites"]:
                self._site(parts[3], slug.fullmatch(parts[3]) is not None)
            elif parts == ["api", "v1", "risk"]:
                province = parse_qs(url.query).get("province", [None])[-1]
                history = [json.loads(e.model_dump_json()) for e in risk.history(province)]
                self._json(HTTPStatus.OK, {"current": risk.current(), "history": history})
            elif parts == ["metrics"]:
                self._send(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif parts == ["healthz"]:
                ok = healthy()
                status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._json(status, {"broker_connected": ok})
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {url.path}"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path.rstrip("/") != "/api/v1/risk":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
                return
            if not self._may_write():
                self._json(
                    HTTPStatus.FORBIDDEN,
                    {
                        "error": "changing a risk level needs the admin token (Authorization: "
                        "Bearer …) or a client on the collector's machine"
                    },
                )
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                change = RiskChange.model_validate_json(self.rfile.read(min(length, 65536)))
            except ValidationError as exc:
                problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
                self._json(
                    HTTPStatus.BAD_REQUEST, {"error": "invalid risk change", "problems": problems}
                )
                return
            entry = set_risk(change)
            self._json(HTTPStatus.OK, json.loads(entry.model_dump_json()))

        def _may_write(self) -> bool:
            if admin_token is not None:
                given = self.headers.get("Authorization", "")
                return hmac.compare_digest(given, f"Bearer {admin_token}")
            return ipaddress.ip_address(self.client_address[0]).is_loopback

        def _readiness(self, query: dict[str, list[str]]) -> None:
            unknown = sorted(set(query) - set(_FILTERS))
            if unknown:
                self._json(
                    HTTPStatus.BAD_REQUEST,
                    {"error": f"unknown filter {unknown}; use {list(_FILTERS)}"},
                )
                return
            filters = {key: values[-1] for key, values in query.items()}
            selected = verdicts.select(**filters)
            counts: dict[str, int] = {}
            for status in selected:
                counts[status.verdict] = counts.get(status.verdict, 0) + 1
            head = json.dumps(
                {"generated_at": utc_now().isoformat(), "count": len(selected), "counts": counts}
            ).encode()
            body = head[:-1] + b',"sites":' + verdicts.select_json(selected) + b"}"
            self._send(HTTPStatus.OK, body, "application/json")

        def _site(self, site: str, valid: bool) -> None:
            status = verdicts.json_of(site) if valid else None
            snapshot = states.get(site) if valid else None
            if status is None or snapshot is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no site {site!r}"})
                return
            meta = snapshot.meta.model_dump_json().encode() if snapshot.meta else b"null"
            body = b'{"status":' + status + b',"meta":' + meta + b"}"
            self._send(HTTPStatus.OK, body, "application/json")

        def _json(self, status: HTTPStatus, payload: object) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
