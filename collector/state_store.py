"""The collector's state on disk, so a restart changes no verdict.

Every site's snapshot (readings, meta, the discharge history behind the runtime
cross-check), its held verdict (what is shown, a change waiting out its hold and
since when) and its published status live in ``data_dir/state.sqlite``
(``plumbing.durable``: WAL, fsync per commit). At start they are put back before
the first message is read, so the API answers the same verdicts at once, held
changes keep their timers, and a silent site still turns stale when it would
have (no sooner than ``state.restore_grace_s`` after the restart: what the site
sent meanwhile is still queued at the broker).

Saving is off the ingest path: the site state and the verdicts mark what changed,
and the collector's ``state-saver`` loop (``step``, supervised like every loop: an
error is logged once, counted, and the sites are saved with the next period) writes
only those sites every ``state.save_every_s`` (one transaction); ``close`` writes
all that is left at a clean stop. A site reporting ten
times a second is written once per period. A crash loses at most one period of
state; the messages themselves are in InfluxDB, and the next report of each site
brings it back. A row this version cannot read is skipped (counted, logged), a
file SQLite cannot read is set aside with a timestamp and a fresh one started:
the collector always starts.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from collector.config import StateConfig
from collector.inventory import Inventory
from collector.readiness import Verdicts
from collector.state import SiteStates
from collector.state_codec import (
    FORMAT,
    SiteEncoder,
    held_from_json,
    held_json,
    site_from_json,
)
from contract.wire import Status
from plumbing.durable import DurableStore, move_aside, open_durable
from rules import SiteSnapshot
from rules.hysteresis import Held

log = logging.getLogger("kienco.collector")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS site (
    site TEXT PRIMARY KEY,
    province TEXT NOT NULL,
    format INTEGER NOT NULL,
    heard_at TEXT NOT NULL,
    snapshot BLOB NOT NULL,
    held BLOB,
    status BLOB
);
"""
_UPSERT = (
    "INSERT INTO site (site, province, format, heard_at, snapshot, held, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site) DO UPDATE SET province = excluded.province, "
    "format = excluded.format, heard_at = excluded.heard_at, snapshot = excluded.snapshot, "
    "held = excluded.held, status = excluded.status"
)
_Row = tuple[str, str, int, str, bytes, bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Restored:
    sites: int
    skipped: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Site:
    snapshot: SiteSnapshot
    heard_at: datetime
    held: Held | None
    status: Status | None
    encoded: bytes | None


class StateStore(DurableStore):
    """Saves what changed, periodically and at stop; restores everything at start."""

    SCHEMA = _SCHEMA

    def __init__(
        self,
        path: Path,
        states: SiteStates,
        verdicts: Verdicts,
        registry: Any,
        *,
        save_every_s: float,
        stopping: threading.Event | None = None,
    ) -> None:
        self.states = states
        self.verdicts = verdicts
        self.save_every_s = save_every_s
        self.stopping = stopping or threading.Event()
        self._retry: set[str] = set()  # taken for a save that failed: saved with the next one
        self._logged: set[str] = set()
        self._encoder = SiteEncoder()  # keeps each site's battery history encoded
        self.restored = Gauge(
            "kienco_state_restored_sites", "Sites restored from disk at start", registry=registry
        )
        self.restore_seconds = Gauge(
            "kienco_state_restore_seconds", "How long the restore at start took", registry=registry
        )
        self.saved = Counter(
            "kienco_state_saved_sites", "Site states written to disk", registry=registry
        )
        self.set_aside = Counter(
            "kienco_state_files_set_aside",
            "State files SQLite could not read, moved aside for a fresh one",
            registry=registry,
        )
        super().__init__(path)  # its lock: one save at a time; guards the connection

    # --- the file --------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            db = open_durable(self.path, _SCHEMA)
            db.execute("SELECT COUNT(*) FROM site").fetchone()
            return db
        except sqlite3.DatabaseError as exc:
            self._set_aside(exc)
            return open_durable(self.path, _SCHEMA)

    def _set_aside(self, exc: Exception) -> None:
        moved = move_aside(self.path, datetime.now(UTC), "unreadable")
        self.set_aside.inc()
        log.error(
            "state file %s unreadable (%s): set aside as %s; starting empty "
            "(sites are unknown until they report)",
            self.path,
            exc,
            moved.name,
        )

    # --- restore ---------------------------------------------------------------------

    def restore(
        self, now: datetime, *, listed_in: Callable[[str], str | None], not_before: datetime
    ) -> Restored:
        """Put every saved site back into the state and the verdicts.

        ``listed_in`` gives the province the inventory lists a site under: a site the
        inventory now puts in another province is not restored (the inventory wins).
        """
        started = time.perf_counter()
        sites: list[_Site] = []
        skipped = 0
        # Tens of thousands of objects a second and none of them garbage: the cyclic
        # collector would only walk them again and again (it halves the time, measured).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for row in self._rows():
                try:
                    site = _decode(row)
                except (ValidationError, ValueError) as exc:
                    skipped += 1
                    self._log_once("row", "state of %s not restored: %s", row[0], exc)
                    continue
                listed = listed_in(site.snapshot.site)
                if listed is not None and listed != site.snapshot.province:
                    skipped += 1
                    continue
                sites.append(site)
        except sqlite3.DatabaseError as exc:  # corrupt pages: keep what was read
            with self._lock:
                self._db.close()
                self._set_aside(exc)
                self._db = open_durable(self.path, _SCHEMA)
            for site in sites:  # the fresh file must hold them again
                self.states.mark_dirty(site.snapshot.site)
        finally:
            if collecting:
                gc.enable()
        self.states.restore((s.snapshot, s.heard_at) for s in sites)
        for s in sites:
            self.verdicts.restore(
                s.snapshot, s.held, s.status, s.encoded, now=now, not_before=not_before
            )
        seconds = time.perf_counter() - started
        self.restored.set(len(sites))
        self.restore_seconds.set(seconds)
        if sites or skipped:
            log.info(
                "restored %d site(s) from %s in %.2f s (%d skipped)",
                len(sites),
                self.path,
                seconds,
                skipped,
            )
        return Restored(len(sites), skipped, seconds)

    def _rows(self) -> Iterator[_Row]:
        cursor = self._db.execute(
            "SELECT site, province, format, heard_at, snapshot, held, status FROM site"
        )
        yield from cursor

    # --- save ------------------------------------------------------------------------

    def save_changed(self) -> int:
        """Write the sites changed since the last save; return how many were written."""
        with self._lock:
            sites = self.states.take_dirty() | self.verdicts.take_changed() | self._retry
            self._retry = set()
            if not sites:
                return 0
            upserts: list[_Row] = []
            deletes: list[tuple[str]] = []
            for site in sites:
                snapshot = self.states.get(site)
                heard = self.states.heard_at(site)
                if snapshot is None or heard is None:
                    deletes.append((site,))  # forgotten (expired)
                    self._encoder.forget(site)
                    continue
                saved = self.verdicts.saved_of(site)
                upserts.append(
                    (
                        site,
                        snapshot.province,
                        FORMAT,
                        heard.isoformat(),
                        self._encoder.site_json(snapshot),
                        None if saved is None else held_json(saved[0]),
                        None if saved is None else saved[1],
                    )
                )
            try:
                self._db.execute("BEGIN")
                self._db.executemany(_UPSERT, upserts)
                self._db.executemany("DELETE FROM site WHERE site = ?", deletes)
                self._db.execute("COMMIT")
            except Exception:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._retry = sites
                raise
        self.saved.inc(len(upserts))
        return len(upserts)

    def step(self) -> bool:
        """One period of the saver loop; False once the collector stops. A failed save
        (disk full) raises to the loop, and its sites are saved with the next one."""
        if self.stopping.wait(self.save_every_s):
            return False
        self.save_changed()
        return True

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.error(message + " (logged once; counted in kienco_state_*)", *args)

    def close(self) -> None:
        """Save everything left (the caller has stopped changing the state), then close."""
        started = time.perf_counter()
        try:
            saved = self.save_changed()
            log.info(
                "saved %d changed site(s) to %s at stop in %.2f s",
                saved,
                self.path,
                time.perf_counter() - started,
            )
        except Exception as exc:
            log.error("could not save the state at stop: %s", exc)
        super().close()


def _decode(row: _Row) -> _Site:
    _site, _province, form, heard_at, snapshot, held, status = row
    if form != FORMAT:
        raise ValueError(f"saved in format {form}, this collector reads {FORMAT}")
    restored = site_from_json(snapshot)
    try:
        shown = None if held is None else held_from_json(held)
        said = None if status is None else Status.model_validate_json(status)
    except (ValidationError, ValueError):
        shown = said = None  # the site comes back, its verdict is judged again
    encoded = status if said is not None else None
    return _Site(restored, datetime.fromisoformat(heard_at), shown, said, encoded)


def open_and_restore(
    config: StateConfig,
    path: Path,
    states: SiteStates,
    verdicts: Verdicts,
    inventory: Inventory,
    registry: Any,
    now: datetime,
    *,
    stopping: threading.Event,
) -> StateStore | None:
    """The store of a collector about to start, its saved sites already put back (or None
    when ``state.persist`` is off)."""
    if not config.persist:
        return None
    store = StateStore(
        path, states, verdicts, registry, save_every_s=config.save_every_s, stopping=stopping
    )

    def listed_in(site: str) -> str | None:
        listed = inventory.get(site)
        return None if listed is None else listed.province

    store.restore(
        now, listed_in=listed_in, not_before=now + timedelta(seconds=config.restore_grace_s)
    )
    return store
