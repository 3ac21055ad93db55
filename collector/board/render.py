"""The board's templates: Jinja2 with autoescaping on for everything, and untrusted text made safe.

Site names, area names, device errors and the reasons built from them come from
the field. Every value a template prints goes through ``finalize`` — the one
``plumbing.untrusted.one_line`` every sink starts from (no control character, no
bidi override reordering what follows) — and then Jinja2's autoescape: a site named
``<img src=x onerror=alert(1)>`` shows those characters. Nothing here builds HTML
from strings; the only Markup is a fragment this module rendered itself.

Live parts are cached: a change makes every open page fetch its live part again,
and 200 pages of one province are one rendering, not 200. A cached part is good
while no site changed (the generation of collector/board/live.py) and for at most
:data:`FRESH_S` (what it says depends on the clock: times to dark, countdowns).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from collector import compliance_report
from collector.board import texts
from plumbing.labels import Lang
from plumbing.untrusted import one_line

__all__ = ["FRESH_S", "GZIP_FROM", "TEMPLATES", "Kept", "LiveCache", "Renderer", "squeeze"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
FRESH_S = 10.0
GZIP_FROM = 4096  # bytes: smaller answers gain less than the work
_CACHED = 512


def _finalize(value: object) -> object:
    if isinstance(value, str) and not isinstance(value, Markup):
        return one_line(value)
    return value


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(
        text=texts.text,  # in a language other than the page's (t is the page's)
        word=texts.word,
        duration=texts.duration,
        number=texts.number,
        when=texts.when,
        when_s=texts.when_s,
        since_when=texts.since_when,
        media=texts.media,
        report_t=compliance_report.t,  # the compliance page says what its PDF says
        area_verdict=compliance_report.verdict_text,
        area_carriers=compliance_report.carriers_text,
        status_text=compliance_report.status_text,
    )
    return env


class Renderer:
    """Renders pages and live parts; thread-safe (pages are rendered in worker threads)."""

    def __init__(self) -> None:
        self.env = environment()
        # Every template compiled now, at the collector's start. Compiling makes reference
        # cycles (jinja2's lexer calls ast.literal_eval, whose nested functions refer to each
        # other): on the first request for a page, a collection running mid-compile could
        # freeze one alive for good (collector/heap.py; tests/test_heap.py saw it once).
        # Before the start's settle() they are garbage like any other of the start's.
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)

    def render(self, template: str, lang: Lang, **context: Any) -> str:
        def t(key: str, **values: object) -> str:
            return texts.text(key, lang, **values)

        return self.env.get_template(template).render(lang=lang, t=t, **context)


@dataclass(frozen=True, slots=True)
class Kept:
    """A page's live part as rendered once for everyone who sees the same: its page (the
    context the rest of the page is drawn from), the part, and the part gzipped."""

    made_at: float
    page: Any
    live: str
    gzipped: bytes | None  # None: too small to be worth it

    @property
    def markup(self) -> Markup:
        return Markup(self.live)  # rendered by Renderer, autoescaped


def squeeze(body: bytes) -> bytes | None:
    """``body`` gzipped, or None when it is too small to gain from it."""
    return gzip.compress(body, compresslevel=5) if len(body) >= GZIP_FROM else None


class LiveCache:
    """Live parts by key (page, query, role, language, generation), for :data:`FRESH_S`.

    When a change reaches 200 open pages at once, they all ask for the same part: one
    of them renders it (and gzips it), the others wait for that one and take it.
    """

    def __init__(self) -> None:
        self._kept: dict[Hashable, Kept] = {}
        self._making: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def fresh(self, key: Hashable) -> Kept | None:
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or time.monotonic() - kept.made_at >= FRESH_S:
            return None
        return kept

    def get(self, key: Hashable, make: Callable[[], Kept]) -> Kept:
        """The kept part, or ``make()``'s, made once however many ask at the same time."""
        kept = self.fresh(key)
        if kept is not None:
            return kept
        with self._lock:
            making = self._making.setdefault(key, threading.Lock())
        with making:
            kept = self.fresh(key)
            if kept is None:
                kept = make()
                with self._lock:
                    if len(self._kept) >= _CACHED:
                        self._kept.clear()
                    self._kept[key] = kept
        with self._lock:
            self._making.pop(key, None)
        return kept
