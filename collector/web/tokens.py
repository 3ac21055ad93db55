"""Role tokens: kept in the collector's config as hashes, compared in constant time.

Two ways to keep a token (``kienco token new`` and ``kienco token hash`` write them):

- ``sha256: <64 hex>``: for tokens ``kienco token new`` made (32 random bytes):
  nobody can search a space that large, so one fast hash is enough, and a
  bearer call costs a microsecond.
- ``pbkdf2: pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64): for a token a
  person chose; slow on purpose. A token once verified is remembered by its
  SHA-256 (in memory), so only its first use pays.

Only hashes are stored: a config file that leaks gives no way in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from collector.web.roles import Principal, Role

__all__ = [
    "MIN_TOKEN_CHARS",
    "PBKDF2_ITERATIONS",
    "KeptToken",
    "TokenBook",
    "new_token",
    "parse_pbkdf2",
    "pbkdf2_hash",
    "sha256_digest",
    "sha256_hex",
]

MIN_TOKEN_CHARS = 16  # a token anyone can guess protects nothing
PBKDF2_ITERATIONS = 200_000
_PBKDF2_PREFIX = "pbkdf2_sha256"
_REMEMBERED = 1024  # verified pbkdf2 tokens kept by their sha256


def new_token() -> str:
    """32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sha256_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def pbkdf2_hash(
    token: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None
) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), salt, iterations)
    b64 = base64.urlsafe_b64encode
    return f"{_PBKDF2_PREFIX}${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def parse_pbkdf2(text: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest); ValueError saying the expected form."""
    try:
        prefix, iterations, salt, digest = text.split("$")
        if prefix != _PBKDF2_PREFIX or int(iterations) < 10_000:
            raise ValueError
        return (
            int(iterations),
            base64.urlsafe_b64decode(salt),
            base64.urlsafe_b64decode(digest),
        )
    except ValueError:
        raise ValueError(
            "not a pbkdf2 hash: expected pbkdf2_sha256$<iterations ≥ 10000>$<salt>$<hash> "
            "as `kienco token hash` writes it"
        ) from None


@dataclass(frozen=True, slots=True)
class KeptToken:
    """One token as the config keeps it: a name, a role, and one hash."""

    name: str
    role: Role
    sha256: bytes | None = None  # the digest itself, not hex
    pbkdf2: tuple[int, bytes, bytes] | None = None

    def matches(self, token: str, token_sha256: bytes) -> bool:
        if self.sha256 is not None:
            return hmac.compare_digest(self.sha256, token_sha256)
        assert self.pbkdf2 is not None
        iterations, salt, digest = self.pbkdf2
        given = hashlib.pbkdf2_hmac("sha256", token.encode(), salt, iterations)
        return hmac.compare_digest(digest, given)


class TokenBook:
    """The configured tokens; ``principal(token)`` says whose it is. Thread-safe."""

    def __init__(self, tokens: Iterable[KeptToken]) -> None:
        self.tokens = tuple(tokens)
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("two tokens share a name")
        self._by_name = {t.name: t for t in self.tokens}
        self._remembered: dict[bytes, KeptToken] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.tokens)

    def principal(self, token: str, *, via: str = "bearer") -> Principal | None:
        """Whose token this is, or None. Every fast hash is compared (no early exit)."""
        given = hashlib.sha256(token.encode()).digest()
        with self._lock:
            remembered = self._remembered.get(given)
        if remembered is not None:
            return Principal(remembered.name, remembered.role, via=via)  # type: ignore[arg-type]
        found: KeptToken | None = None
        for kept in self.tokens:
            if kept.sha256 is not None and kept.matches(token, given) and found is None:
                found = kept
        if found is None:
            for kept in self.tokens:
                if kept.pbkdf2 is not None and kept.matches(token, given):
                    found = kept
                    with self._lock:
                        if len(self._remembered) >= _REMEMBERED:
                            self._remembered.clear()
                        self._remembered[given] = kept
                    break
        if found is None:
            return None
        return Principal(found.name, found.role, via=via)  # type: ignore[arg-type]

    def still_valid(self, name: str, role: Role) -> bool:
        """A session made with token ``name`` holds while that token keeps its role."""
        kept = self._by_name.get(name)
        return kept is not None and kept.role == role
