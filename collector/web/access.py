"""Who a request speaks for, and whether it may: for every route, page and stream.

A request carries a role token as ``Authorization: Bearer <token>`` (the CLI,
scripts), or a session cookie a login with a token set (the board). Neither:
it is anonymous, which may read only when ``http.anonymous_read`` is true.
Being on the collector's machine is no credential (a reverse proxy on that host
would make every one of its clients whatever loopback is).

A change asked with the session cookie must come from our own pages: the
cookie is ``SameSite=Strict``, and the request's ``Origin`` (or, without one,
its ``Referer``) must be this server's own, else 403. A bearer token is never
sent by a browser on its own, so a bearer call needs no such check.

Use in a route: ``who: Principal = Depends(reader)`` for a read,
``Depends(changer)`` for a change; ``Depends(maybe_reader)`` gives None
instead of refusing (a page that sends the visitor to the login form).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from collector.web.roles import ANONYMOUS, Principal
from collector.web.sessions import SessionStore
from collector.web.tokens import TokenBook

__all__ = [
    "SESSION_COOKIE",
    "Access",
    "Refused",
    "changer",
    "maybe_reader",
    "reader",
]

SESSION_COOKIE = "kienco_session"
NO_TOKENS = (
    "this collector takes no changes: no token is configured. Fix: add a token of role admin "
    "to http.tokens (`kienco token new --name ops --role admin`), or set http.admin_token "
    "(e.g. {env: KIENCO_ADMIN_TOKEN}) / collector chưa cấu hình mã nào: không nhận thay đổi"
)
TOKEN_MISSING = (
    "changes need a token: send 'Authorization: Bearer <token>' (the kienco CLI sends "
    "$KIENCO_TOKEN or $KIENCO_ADMIN_TOKEN, or --token-file), or log in on the board / "
    "thay đổi cần mã truy cập"
)
READ_TOKEN_MISSING = (
    "reading needs a token here (http.anonymous_read is false): send 'Authorization: Bearer "
    "<token>' (the kienco CLI sends $KIENCO_TOKEN or $KIENCO_ADMIN_TOKEN, or --token-file), "
    "or log in on the board / cần mã truy cập để xem"
)
TOKEN_WRONG = "the token is not one this collector knows / mã truy cập không đúng"
CROSS_SITE = (
    "refused: a change sent with the board's cookie must come from the board's own pages "
    "(Origin or Referer of this server) / từ chối yêu cầu từ trang khác"
)


class Refused(HTTPException):
    """An HTTP refusal answered as ``{"error": ...}`` (collector/web/app.py)."""

    def __init__(self, status_code: int, message: str) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="kienco"'} if status_code == 401 else None
        super().__init__(status_code, message, headers=headers)


class Access:
    """The tokens, the sessions, and the read switch of one collector."""

    def __init__(self, book: TokenBook, sessions: SessionStore, *, anonymous_read: bool) -> None:
        self.book = book
        self.sessions = sessions
        self.anonymous_read = anonymous_read

    async def principal(self, request: Request) -> Principal | None:
        """Whose request this is; None when anonymous. Refused(403) for an unknown token."""
        given = request.headers.get("authorization")
        if given is not None:
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Refused(403, TOKEN_WRONG)
            # A pbkdf2 token costs ~0.1 s the first time: not on the event loop.
            found = await anyio.to_thread.run_sync(self.book.principal, token.strip())
            if found is None:
                raise Refused(403, TOKEN_WRONG)
            return found
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            session = self.sessions.get(session_id)
            if session is not None and self.book.still_valid(session.token_name, session.role):
                return Principal(session.token_name, session.role, via="session")
        return None

    async def reader(self, request: Request) -> Principal:
        found = await self.principal(request)
        if found is not None:
            return found
        if self.anonymous_read:
            return ANONYMOUS
        raise Refused(401, READ_TOKEN_MISSING)

    async def changer(self, request: Request) -> Principal:
        found = await self.principal(request)
        if found is None:
            raise Refused(403, NO_TOKENS) if len(self.book) == 0 else Refused(401, TOKEN_MISSING)
        if found.via == "session":
            check_same_origin(request)
        return found

    def still_reads(self, request: Request, who: Principal) -> Callable[[], bool]:
        """For an open stream: does ``who``, found for ``request`` when it opened, still read?

        A session can end while the stream is open (a logout in another tab, unused past
        its lifetime); asking is no use of it. A bearer token or anonymous reads cannot
        end within the process: the config is read at its start.
        """
        session_id = request.cookies.get(SESSION_COOKIE)
        if who.via != "session" or not session_id:
            return lambda: True
        return lambda: self.sessions.alive(session_id)

    # --- the board's login -------------------------------------------------------------

    async def open_session(self, request: Request, token: str) -> tuple[Principal, str] | None:
        """A new session for a known token: (who, the session id for the cookie), or None."""
        check_same_origin(request)  # no login forced on a browser by another site
        found = await anyio.to_thread.run_sync(self.book.principal, token.strip())
        if found is None:
            return None
        return Principal(found.name, found.role, via="session"), self.sessions.open(
            found.name, found.role
        )

    def set_cookie(self, request: Request, response: Response, session_id: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=int(self.sessions.lifetime / timedelta(seconds=1)),
            path="/",
            httponly=True,
            samesite="strict",
            # Behind a TLS proxy (X-Forwarded-Proto from a trusted address): never sent in clear.
            secure=request.url.scheme == "https",
        )

    def renew_cookie(self, request: Request, response: Response, who: Principal) -> None:
        """Set a session's cookie again, for its whole lifetime from now.

        The session slides with each use (sessions.py) but a browser drops a cookie at
        its max-age whatever the server thinks: set once at login, a wall screen polling
        all night was signed out ``http.session_hours`` after its login.
        """
        session_id = request.cookies.get(SESSION_COOKIE)
        if who.via == "session" and session_id:
            self.set_cookie(request, response, session_id)

    def logout(self, request: Request, response: Response) -> None:
        check_same_origin(request)
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.sessions.close_session(session_id)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}".lower()


def check_same_origin(request: Request) -> None:
    """Refused(403) unless the request says it comes from this server's own pages."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Refused(403, CROSS_SITE)
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        if origin.lower().rstrip("/") != own_origin(request):
            raise Refused(403, CROSS_SITE)
        return
    referer = request.headers.get("referer")
    if referer is None:
        raise Refused(403, CROSS_SITE)
    parts = urlsplit(referer)
    if f"{parts.scheme}://{parts.netloc}".lower() != own_origin(request):
        raise Refused(403, CROSS_SITE)


# --- dependencies (FastAPI) -----------------------------------------------------------

# Declared so the OpenAPI document says how to authenticate; the checks are Access's.
_bearer = HTTPBearer(auto_error=False, description="a role token (kienco token new)")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="after POST /login")
_Documented = tuple[HTTPAuthorizationCredentials | None, str | None]


def _documented(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> _Documented:
    return bearer, cookie


def access_of(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


async def reader(request: Request, _: Annotated[_Documented, Depends(_documented)]) -> Principal:
    """Who reads: a token's principal, or anonymous where reads are open; else 401."""
    return await access_of(request).reader(request)


async def changer(request: Request, _: Annotated[_Documented, Depends(_documented)]) -> Principal:
    """Who changes: a token's principal (cookie ones from our own pages only); else 401/403."""
    return await access_of(request).changer(request)


async def maybe_reader(request: Request) -> Principal | None:
    """For pages: who reads, or None (send them to the login form) instead of a 401."""
    try:
        return await access_of(request).reader(request)
    except Refused:
        return None
