"""Who may see and do what on the collector's API and board.

Four roles (docs/design.md, "Access by role"):

- ``noc``: reads everything.
- ``province:<p>``: reads its province only, and plans and rehearses its own
  meetings. Another province's sites, meetings and levels do not exist for it:
  lists leave them out, a direct read answers 404, an action is refused.
- ``ministry``: reads everything (the compliance report is its page).
- ``admin``: everything, and alone sets risk levels and replays dead letters.

A :class:`Principal` is who a request speaks for: a named token and its role,
or ``anonymous`` (reads only, and only where the config allows them). Pure: no
HTTP here, so the pages, the API and the live stream ask the same questions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from contract.wire import SLUG_PATTERN

__all__ = ["ANONYMOUS", "ROLE_PATTERN", "Principal", "Role", "parse_role"]

RoleKind = Literal["noc", "province", "ministry", "admin", "anonymous"]
ROLE_PATTERN = r"^(noc|ministry|admin|province:[a-z0-9][a-z0-9._-]*)$"
_SLUG = re.compile(SLUG_PATTERN)


@dataclass(frozen=True, slots=True)
class Role:
    kind: RoleKind
    province: str | None = None  # only for kind "province"

    def __str__(self) -> str:
        return f"province:{self.province}" if self.kind == "province" else self.kind


def parse_role(text: str) -> Role:
    """``noc``, ``ministry``, ``admin`` or ``province:<code>``; ValueError naming the choices."""
    text = text.strip()
    if text in ("noc", "ministry", "admin"):
        return Role(text)  # type: ignore[arg-type]
    kind, _, province = text.partition(":")
    if kind == "province" and _SLUG.fullmatch(province) and len(province) <= 64:
        return Role("province", province)
    raise ValueError(
        f"unknown role {text!r}: use noc, ministry, admin or province:<code> (e.g. province:hp)"
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: ``name`` is the token's name in the config."""

    name: str
    role: Role
    via: Literal["bearer", "session", "anonymous"] = "bearer"

    # --- reading ---------------------------------------------------------------------

    @property
    def province(self) -> str | None:
        """The one province this principal is confined to, or None when it sees all."""
        return self.role.province if self.role.kind == "province" else None

    def sees(self, province: str | None) -> bool:
        """May it see what belongs to ``province`` (None: belongs to none known)?"""
        confined = self.province
        return confined is None or province == confined

    def sees_all(self, provinces: Iterable[str | None]) -> bool:
        """May it see something spread over these provinces (a meeting's points)?"""
        return all(self.sees(p) for p in provinces)

    @property
    def reads_dead_letters(self) -> bool:
        # Raw messages from any province, and ones whose province cannot be told.
        return self.role.kind in ("noc", "ministry", "admin", "anonymous")

    # --- acting ----------------------------------------------------------------------

    @property
    def is_admin(self) -> bool:
        return self.role.kind == "admin"

    def plans_for(self, province: str | None) -> bool:
        """May it plan or rehearse a meeting of ``province``?"""
        if self.role.kind == "admin":
            return True
        return self.role.kind == "province" and province == self.role.province

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": str(self.role),
            "province": self.province,
            "via": self.via,
            "admin": self.is_admin,
        }


ANONYMOUS = Principal("anonymous", Role("anonymous"), via="anonymous")
"""Reads everything, changes nothing: only when ``http.anonymous_read`` is true."""
