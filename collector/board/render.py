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

import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from collector import compliance_report
from collector.board import texts
from plumbing.labels import Lang
from plumbing.untrusted import one_line

__all__ = ["FRESH_S", "TEMPLATES", "Renderer"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
FRESH_S = 10.0
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
        word=texts.word,
        duration=texts.duration,
        number=texts.number,
        when=texts.when,
        when_s=texts.when_s,
        media=texts.media,
        report_t=compliance_report.t,  # the compliance page says what its PDF says
        status_text=compliance_report.status_text,
    )
    return env


class Renderer:
    """Renders pages and live parts; thread-safe (pages are rendered in worker threads)."""

    def __init__(self) -> None:
        self.env = environment()
        self._cache: dict[Hashable, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def render(self, template: str, lang: Lang, **context: Any) -> str:
        def t(key: str, **values: object) -> str:
            return texts.text(key, lang, **values)

        return self.env.get_template(template).render(lang=lang, t=t, **context)

    def cached(self, key: Hashable, make: Callable[[], str]) -> Markup:
        """The rendering kept under ``key`` if fresh, else ``make()`` kept (``key`` must
        hold all it depends on: page, query, role, language, generation)."""
        now = time.monotonic()
        with self._lock:
            kept = self._cache.get(key)
        if kept is not None and now - kept[0] < FRESH_S:
            return Markup(kept[1])  # rendered here, autoescaped
        made = make()
        with self._lock:
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            self._cache[key] = (now, made)
        return Markup(made)  # rendered here, autoescaped
