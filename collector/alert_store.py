"""The alerts the collector has raised, kept in SQLite until every Alertmanager has them.

A row is an alert that is firing, or one resolved whose resolution some Alertmanager
has not yet taken. What each Alertmanager still lacks (``pending``) is kept in memory:
after a restart every row is pending for every Alertmanager again, so an alert raised
or resolved while Alertmanager (or the collector) was down is delivered when both are
back — resending one Alertmanager already has changes nothing it shows.

Not thread-safe on its own: the alert sender's one thread owns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter

from collector.alerts import Alert
from collector.system_alerts import SYSTEM_SCOPE, SystemAlert
from plumbing.durable import DurableStore

# A site's alert, or one of the collector's own about itself: told apart by their names.
AnyAlert = Alert | SystemAlert
_ANY_ALERT: TypeAdapter[AnyAlert] = TypeAdapter(Annotated[AnyAlert, Field(discriminator="name")])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert (
    key TEXT PRIMARY KEY,
    site TEXT NOT NULL,  -- the alert's scope: its site, or '' for the collector's own
    body TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS alert_site ON alert (site);
"""


@dataclass(frozen=True, slots=True)
class Held:
    """An alert as kept: firing (``resolved_at`` None) or resolved at that time."""

    alert: AnyAlert
    resolved_at: datetime | None = None

    @property
    def firing(self) -> bool:
        return self.resolved_at is None


class AlertStore(DurableStore):
    SCHEMA = _SCHEMA

    def __init__(self, path: Path, urls: Sequence[str]) -> None:
        super().__init__(path)
        self._rows: dict[str, Held] = {}
        self._by_site: dict[str, set[str]] = {}
        for key, body, resolved in self._db.execute("SELECT key, body, resolved_at FROM alert"):
            at = datetime.fromisoformat(resolved) if resolved else None
            self._keep(key, Held(_ANY_ALERT.validate_json(body), at))
        self.pending: dict[str, set[str]] = {url: set(self._rows) for url in urls}

    def _keep(self, key: str, held: Held) -> None:
        self._rows[key] = held
        self._by_site.setdefault(held.alert.scope, set()).add(key)

    def _forget(self, key: str) -> None:
        held = self._rows.pop(key, None)
        if held is not None:
            keys = self._by_site.get(held.alert.scope, set())
            keys.discard(key)
            if not keys:
                self._by_site.pop(held.alert.scope, None)

    # --- reading

    def firing(self, scope: str | None = None) -> list[AnyAlert]:
        """What fires: all of it, or a site's (its id), or the collector's (SYSTEM_SCOPE)."""
        keys = self._rows if scope is None else self._by_site.get(scope, ())
        return [h.alert for k in keys if (h := self._rows[k]).firing]

    def site_alerts(self, site: str | None = None) -> list[Alert]:
        """The sites' alerts firing: all, or one site's."""
        return [a for a in self.firing(site) if isinstance(a, Alert)]

    def system_alerts(self) -> list[SystemAlert]:
        """The collector's alerts about itself firing."""
        return [a for a in self.firing(SYSTEM_SCOPE) if isinstance(a, SystemAlert)]

    def sites(self) -> set[str]:
        """Sites with an alert firing."""
        return {h.alert.scope for h in self._rows.values() if h.firing} - {SYSTEM_SCOPE}

    def get(self, key: str) -> Held | None:
        return self._rows.get(key)

    def pending_count(self) -> int:
        return sum(len(keys) for keys in self.pending.values())

    def firing_count(self) -> int:
        return sum(1 for h in self._rows.values() if h.firing)

    # --- changing

    def replace(
        self, changes: Iterable[tuple[Iterable[AnyAlert], Iterable[AnyAlert]]], now: datetime
    ) -> int:
        """For each (old, new) pair: fire or update what is new, resolve what is gone.

        ``old`` is what the caller saw firing for that scope (a site, a meeting's
        points, the collector itself). One transaction for the lot; returns how many alerts changed.
        """
        writes: list[tuple[str, str, str, str | None]] = []
        for old, new in changes:
            fresh = {a.key: a for a in new}
            for alert in old:
                if alert.key not in fresh:
                    held = self._rows.get(alert.key)
                    if held is not None and held.firing:
                        self._keep(alert.key, Held(held.alert, now))
                        writes.append((alert.key, alert.scope, held.alert.model_dump_json(),
                                       now.isoformat()))  # fmt: skip
            for key, alert in fresh.items():
                held = self._rows.get(key)
                if held is not None and held.firing and held.alert == alert:
                    continue
                self._keep(key, Held(alert))
                writes.append((key, alert.scope, alert.model_dump_json(), None))
        if writes:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO alert (key, site, body, resolved_at) VALUES (?,?,?,?)",
                    writes,
                )
            for keys in self.pending.values():
                keys.update(w[0] for w in writes)
        return len(writes)

    def delivered(self, url: str, keys: Iterable[str]) -> None:
        """``url`` has these alerts as they are now; drop resolutions everyone has."""
        pending = self.pending[url]
        done = [k for k in keys if k in pending]
        pending.difference_update(done)
        gone = [
            k
            for k in done
            if (h := self._rows.get(k)) is not None
            and not h.firing
            and not any(k in p for p in self.pending.values())
        ]
        if gone:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM alert WHERE key = ?", [(k,) for k in gone])
            for key in gone:
                self._forget(key)

    def resend_all(self, url: str) -> None:
        """Everything kept is pending for ``url`` again (it was down, or restarted)."""
        self.pending[url] = set(self._rows)
