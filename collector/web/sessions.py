"""Board sessions: a login with a token gives a browser a random session id in a cookie.

The id is 32 random bytes; the collector keeps only its SHA-256 (in memory and in
``sessions.sqlite`` under the data dir), with the token's name and role, so a
collector restarted in a storm keeps its wall screens logged in, and a copy of
the file lets nobody in. A session ends at its expiry (sliding: each use moves
it, written at most once a minute), at logout, or when its token is removed
from the config or given another role (checked on every use).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from collector.web.roles import Role, parse_role
from plumbing.durable import DurableStore

__all__ = ["Session", "SessionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    id_sha256 TEXT PRIMARY KEY,
    token_name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""
MAX_SESSIONS = 10_000  # the oldest go first beyond it: a login loop cannot grow the file
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Session:
    token_name: str
    role: Role
    created_at: datetime
    expires_at: datetime


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore(DurableStore):
    """Thread-safe; ``lifetime`` is how long an unused session lasts."""

    SCHEMA = _SCHEMA

    def __init__(self, path: Path, *, lifetime: timedelta, clock: Callable[[], datetime]) -> None:
        super().__init__(path)
        self.lifetime = lifetime
        self.clock = clock
        now = clock()
        self._db.execute("DELETE FROM session WHERE expires_at <= ?", (now.isoformat(),))
        self._sessions: dict[str, Session] = {}
        self._written: dict[str, datetime] = {}
        for key, name, role, created, expires in self._db.execute(
            "SELECT id_sha256, token_name, role, created_at, expires_at FROM session"
        ):
            try:
                parsed = parse_role(role)
            except ValueError:
                continue
            self._sessions[key] = Session(
                name, parsed, datetime.fromisoformat(created), datetime.fromisoformat(expires)
            )

    def open(self, token_name: str, role: Role) -> str:
        """A new session; its id (for the cookie), never stored."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(token_name, role, now, now + self.lifetime)
        key = _key(session_id)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].created_at)
                self._drop(oldest)
            self._sessions[key] = session
            self._written[key] = now
            self._db.execute(
                "INSERT INTO session VALUES (?, ?, ?, ?, ?)",
                (key, token_name, str(role), now.isoformat(), session.expires_at.isoformat()),
            )
        return session_id

    def get(self, session_id: str) -> Session | None:
        """The live session of this id (its expiry moved on), or None."""
        key = _key(session_id)
        now = self.clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if session.expires_at <= now:
                self._drop(key)
                return None
            session = replace(session, expires_at=now + self.lifetime)
            self._sessions[key] = session
            if now - self._written.get(key, session.created_at) >= _TOUCH_EVERY:
                self._written[key] = now
                self._db.execute(
                    "UPDATE session SET expires_at = ? WHERE id_sha256 = ?",
                    (session.expires_at.isoformat(), key),
                )
        return session

    def alive(self, session_id: str) -> bool:
        """Whether the session is live now, without counting as a use (an open stream asks)."""
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
        return session is not None and session.expires_at > self.clock()

    def close_session(self, session_id: str) -> None:
        with self._lock:
            self._drop(_key(session_id))

    def _drop(self, key: str) -> None:
        self._sessions.pop(key, None)
        self._written.pop(key, None)
        self._db.execute("DELETE FROM session WHERE id_sha256 = ?", (key,))

    def __len__(self) -> int:
        return len(self._sessions)
