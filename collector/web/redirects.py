"""Where a login may send a browser back to: a path on this server, never another site.

``next`` comes from a query string anyone can write (``/login?next=…``): taken as it
is, it would make the collector an open redirect (``//evil.example`` is another site
to a browser, and so are ``/\\evil.example`` and ``/<TAB>/evil.example``, since browsers
read a backslash as a slash and drop tabs and newlines from URLs). The login form
(collector/board/routes.py) and ``POST /login`` (collector/web/app.py) check it here,
the same way.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["MAX_NEXT", "local_path"]

MAX_NEXT = 2000  # characters; POST /login's form field takes no more


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path (and query) on this server, else None."""
    if not target or len(target) > MAX_NEXT:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
