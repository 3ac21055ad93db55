"""The collector's HTTP server: uvicorn in the collector's process, in a thread that cannot die.

The application (the API, the board, /metrics, /healthz) is collector/web/app.py;
this module serves it:

- The listening socket is bound here, at construction: port 0 picks a free port,
  known at once as ``Api.port`` and ``Api.url``, and connections made before the
  server runs wait in the backlog instead of being refused.
- uvicorn runs as a long-lived loop of the supervisor (collector/supervision.py):
  should it ever stop while the collector runs, that is logged, counted as an
  error of the ``api`` loop, and it is started again on the same socket.
  /healthz shows its state (``http``: serving, restarts, connections).
- Bounds: at most ``max_connections`` connections answered (503 beyond); a
  connection must finish its request's headers within :data:`HEADERS_TIMEOUT_S`
  (no slow-loris holding it open); an idle keep-alive connection closes after
  :data:`KEEP_ALIVE_S`; a body left unread behind an answer is drained for at
  most :data:`LINGER_S`; each request has its timeout (collector/web/guard.py)
  and waits for one of a bounded number of worker threads
  (collector/web/workers.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from collector.supervision import Loop, Supervisor
from collector.web.guard import ASGIApp

__all__ = ["HEADERS_TIMEOUT_S", "KEEP_ALIVE_S", "LINGER_S", "Api"]

log = logging.getLogger("kienco.collector.http")

HEADERS_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
LINGER_S = 2.0
BACKLOG = 1024
_STOP_WAIT_S = 10.0


class _BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 with the two timeouts it lacks: headers, and a body left unread."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADERS_TIMEOUT_S)

    def handle_events(self) -> None:
        super().handle_events()
        if self.transport.is_closing():
            return
        theirs, ours = self.conn.their_state, self.conn.our_state
        if theirs is h11.IDLE:
            self._arm(HEADERS_TIMEOUT_S)  # waiting for (the rest of) a request's headers
        elif theirs is h11.SEND_BODY and ours is h11.DONE:
            self._arm(LINGER_S)  # answered; the rest of the body is read and dropped a while
        else:
            self._disarm()  # a request is being worked on: the app's own timeout holds

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        theirs, ours = self.conn.their_state, self.conn.our_state
        if theirs is h11.IDLE or (theirs is h11.SEND_BODY and ours is h11.DONE):
            self.transport.close()


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class Api:
    """Serves ``app`` on ``host:port`` as the supervisor's ``loop``; ``port`` 0 picks one."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        supervisor: Supervisor,
        loop: Loop,
        host: str = "127.0.0.1",
        port: int = 9108,
        max_connections: int = 500,
    ) -> None:
        self.app = app
        self.host = host
        self.max_connections = max_connections
        self._socket = _listen(host, port)
        self.port = int(self._socket.getsockname()[1])
        self._loop = loop
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._runs = 0
        self._thread = supervisor.spawn(loop, self._serve, daemon=True)
        self.web: Any = None  # the FastAPI application inside the Guard, once made
        self.on_stop: list[Callable[[], None]] = []  # what the server's parts close

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def state(self) -> dict[str, Any]:
        """What /healthz shows of the server."""
        server = self._server
        running = server is not None and server.started and not server.should_exit
        return {
            "url": self.url,
            "serving": bool(running and self.alive),
            "restarts": max(0, self._runs - 1),
            "connections": len(server.server_state.connections) if server else 0,
            "max_connections": self.max_connections,
        }

    def _serve(self) -> bool:
        """One run of uvicorn; True to run it again (it stopped while the collector runs)."""
        config = uvicorn.Config(
            self.app,
            http=_BoundedH11,
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=self.max_connections,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=5,
            # X-Forwarded-Proto from a TLS proxy on this machine marks the request https
            # (so the session cookie is Secure); from anywhere else it is ignored.
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1,::1",
        )
        server = uvicorn.Server(config)
        self._server = server
        self._runs += 1
        if self._stopping.is_set():
            return False
        try:
            # A duplicate of the socket: uvicorn closes what it is given when it stops.
            server.run(sockets=[self._socket.dup()])
        except SystemExit as exc:  # uvicorn exits on a failed start-up: not in our thread
            raise RuntimeError(f"the HTTP server could not start (exit {exc.code})") from None
        if self._stopping.is_set():
            return False
        raise RuntimeError("the HTTP server stopped while the collector runs; started again")

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_STOP_WAIT_S)
        self._socket.close()
        for close in self.on_stop:
            close()
