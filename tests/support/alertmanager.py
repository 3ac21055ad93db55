"""pytest plugin: a real Prometheus Alertmanager with the shipped config, and a webhook.

``webhook`` is a loopback HTTP server that records every notification Alertmanager
sends (the receiver is the last path segment: the shipped receivers post to
``…/notify/<receiver>``). ``alertmanager`` starts Debian's ``prometheus-alertmanager``
from ``firmware-configs/alertmanager/alertmanager.yml`` with its receivers pointed at
the webhook and its group timings shortened to seconds; a missing binary fails the
test with the command that installs it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from kienco.local_services import Alertmanager, ServiceError, alertmanager_config


@dataclass(frozen=True)
class Notification:
    receiver: str
    body: dict[str, Any]
    at: float  # monotonic

    @property
    def status(self) -> str:
        return str(self.body["status"])

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.body["alerts"])

    @property
    def group(self) -> dict[str, str]:
        return dict(self.body["groupLabels"])


@dataclass
class Webhook:
    """What Alertmanager's webhook receivers sent, in order."""

    server: ThreadingHTTPServer
    received: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def notifications(
        self, receiver: str | None = None, where: Callable[[Notification], bool] | None = None
    ) -> list[Notification]:
        with self.lock:
            found = list(self.received)
        return [
            n
            for n in found
            if (receiver is None or n.receiver == receiver) and (where is None or where(n))
        ]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()


def _start_webhook() -> Webhook:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            receiver = self.path.rstrip("/").rsplit("/", 1)[-1]
            with hook.lock:
                hook.received.append(Notification(receiver, body, time.monotonic()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook = Webhook(server)
    threading.Thread(target=server.serve_forever, name="webhook", daemon=True).start()
    return hook


class AlertmanagerServer(Alertmanager):
    """The product's local Alertmanager, with the test's helpers."""

    def start(self, timeout_s: float = 20.0) -> None:
        try:
            super().start(timeout_s)
        except ServiceError as exc:
            pytest.fail(str(exc))

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds as active (not resolved)."""
        response = httpx.get(f"{self.url}/api/v2/alerts", params=filters, timeout=10)
        response.raise_for_status()
        return list(response.json())

    def restart(self, down_for_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for_s)
        self.start()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = _start_webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[AlertmanagerServer]:
    """The shipped config, receivers on the webhook, groups flushed within a second or two."""
    text = alertmanager_config(
        f"{webhook.url}", group_wait="2s", group_interval="1s", repeat_interval="1h"
    )
    try:
        server = AlertmanagerServer(tmp_path / "alertmanager", text)
    except ServiceError as exc:
        pytest.fail(str(exc))
    server.start()
    yield server
    server.stop()
