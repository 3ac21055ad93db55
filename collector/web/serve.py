"""Put the web application together from the config's http section and the collector's parts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from collector.api import Api
from collector.board.ports import BoardParts
from collector.board.routes import LIVE_PATH, mount_board
from collector.config import HttpListen
from collector.endpoints import Endpoints
from collector.supervision import Loop, Supervisor
from collector.throughput import PATH as THROUGHPUT_PATH
from collector.web.access import Access
from collector.web.app import HealthBody, build_app
from collector.web.guard import Guard
from collector.web.ports import Desks
from collector.web.sessions import SessionStore

__all__ = ["make_api"]


def make_api(
    http: HttpListen,
    desks: Desks,
    *,
    data_dir: Path,
    registry: CollectorRegistry,
    health: HealthBody,
    supervisor: Supervisor,
    loop: Loop,
    clock: Callable[[], datetime],
    board: BoardParts | None = None,
) -> Api:
    """The server, bound and ready to ``start()``; ConfigError for a bad token config."""
    book = http.token_book()
    sessions = SessionStore(
        data_dir / "sessions.sqlite", lifetime=timedelta(hours=http.session_hours), clock=clock
    )
    access = Access(book, sessions, anonymous_read=http.anonymous_read)
    app = build_app(
        endpoints=Endpoints(desks, clock=clock),
        access=access,
        health=health,
        registry=registry,
        loop=loop,
        threads=http.handler_threads,
    )
    if board is not None:
        mount_board(app, board)
    guarded = Guard(
        app,
        loop=loop,
        timeout_s=http.request_timeout_s,
        # The throughput test and the board's live streams bound their own time.
        own_limits=lambda path: path in (THROUGHPUT_PATH, LIVE_PATH),
    )
    api = Api(
        guarded,
        supervisor=supervisor,
        loop=loop,
        host=http.host,
        port=http.port,
        max_connections=http.max_connections,
    )
    api.on_stop.append(sessions.close)
    api.web = app
    return api
