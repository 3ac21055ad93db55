"""What the demo shows: a live table of every site in a terminal, plain log lines otherwise.

Reason texts and names reach the terminal only through ``plumbing.untrusted.terminal``.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from datetime import datetime
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from contract.wire import Status
from kienco.demo.simulator import Fleet
from kienco.labels import (
    KINDS,
    STATION_STATES,
    VERDICT_STYLE,
    VERDICTS,
    Lang,
    hours,
    label,
    local_time,
)
from plumbing.untrusted import terminal

TITLE = {
    "vi": "kienco demo — bão Yagi: điểm nào trụ vững?",
    "en": "kienco demo — Typhoon Yagi: which places hold?",
}
HEAD = {
    "vi": ("Tỉnh", "Điểm", "Loại", "Đánh giá", "Trạng thái trạm", "Dự phòng", "Lý do"),
    "en": ("Prov.", "Site", "Kind", "Verdict", "Station", "Backup", "Reasons"),
}


def reason_texts(status: Status, lang: Lang, limit: int = 2) -> str:
    shown = [r for r in status.reasons if r.severity != "info"] or list(status.reasons)
    texts = [r.text_vi if lang == "vi" else r.text_en for r in shown[:limit]]
    more = len(shown) - limit
    return "; ".join(texts) + (f" (+{more})" if more > 0 else "")


class Display:
    """Thread-safe: verdicts arrive from the collector's MQTT thread."""

    def __init__(self, fleet: Fleet, *, lang: Lang, live: bool) -> None:
        self.fleet = fleet
        self.lang = lang
        self.console = Console() if live else Console(file=sys.stderr)
        self.live_table = live and self.console.is_terminal
        self.quiet = not live
        self._statuses: dict[str, Status] = {}
        self._log: deque[str] = deque(maxlen=10)
        self._lock = threading.Lock()
        self._live: Live | None = None

    def note(self, text: str, *, stamp: bool = True) -> None:
        line = f"[{local_time(self.fleet.sim_time)}] {text}" if stamp else text
        with self._lock:
            self._log.append(line)
        if not self.live_table:
            self.console.print(terminal(line))

    def verdict_changed(self, previous: Status | None, status: Status, at: datetime) -> None:
        with self._lock:
            self._statuses[status.site] = status
        if previous is not None and previous.verdict == status.verdict:
            return
        before = label(VERDICTS, previous.verdict if previous else None, self.lang)
        after = label(VERDICTS, status.verdict, self.lang)
        why = reason_texts(status, self.lang)
        self.note(f"{status.site}: {before} → {after}" + (f" — {why}" if why else ""))

    def __enter__(self) -> Display:
        if self.live_table:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def close(self) -> None:
        if self.live_table or self.quiet:
            return
        self.console.print(self._table())

    def _render(self) -> Group:
        with self._lock:
            log = list(self._log)
        return Group(self._table(), Text("\n", style="dim").join(terminal(line) for line in log))

    def _table(self) -> Table:
        lang = self.lang
        sim = local_time(self.fleet.sim_time, "%d/%m/%Y %H:%M")
        table = Table(title=f"{TITLE[lang]}  ({sim} ICT)", expand=True)
        for heading in HEAD[lang]:
            table.add_column(heading, overflow="fold")
        with self._lock:
            statuses = dict(self._statuses)
        for site in self.fleet.sites:
            status = statuses.get(site.site)
            verdict = status.verdict if status else "unknown"
            table.add_row(
                terminal(site.province),
                terminal(site.site),
                label(KINDS, site.kind, lang),
                Text(label(VERDICTS, verdict, lang), style=VERDICT_STYLE[verdict]),
                label(STATION_STATES, status.station_state if status else None, lang),
                hours(status.backup_hours if status else None),
                terminal(reason_texts(status, lang) if status else ""),
            )
        return table
