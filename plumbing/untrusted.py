"""Untrusted text made safe for each place it is shown or stored: one function per sink.

Site names, area names, device and codec error texts, event details and the reason
texts built from them come from agents and devices, so from anyone who can publish
or answer an SNMP/Modbus/HTTP poll. Whatever they hold, the sink they reach must
show them as text and nothing else. Each sink has exactly one function here, and
nothing else in kienco escapes by hand:

=============  ========================  ===================================================
sink           function                  what it guarantees
=============  ========================  ===================================================
(every sink)   ``one_line``              one line of printable text: runs of line breaks and
                                         tabs become one space; other control characters
                                         (C0, DEL, C1: ESC, BEL, CSI, OSC...) and bidi
                                         embeddings/overrides/isolates/marks are removed; a
                                         lone surrogate becomes U+FFFD (it has no UTF-8 form)
logs, plain    ``one_line``              (a log line, an alert annotation, a canvas string:
                                         no markup to escape, only the line to keep whole)
terminal       ``terminal``              a ``rich.text.Text`` of ``one_line``: rich never
                                         reads markup (``[/]``, ``[link=…]``), emoji codes or
                                         highlighting in it; ``str()`` of it is the plain text
JSON output    ``json_text``             ``json.dumps`` that also writes C1 controls, DEL,
                                         bidi controls, U+2028/2029 and lone surrogates as
                                         ``\\uXXXX``: the data is unchanged, a terminal shows
                                         no control sequence
CSV            ``csv_cell``              ``one_line``, and a cell that could start a formula
                                         (``=`` ``+`` ``-`` ``@``, also after leading blanks
                                         or a tab/CR, and their full-width forms) gets a
                                         leading ``'`` (OWASP, "CSV Injection")
PDF            ``pdf``                   ``one_line`` with ``&`` ``<`` ``>`` escaped for
                                         reportlab's ``Paragraph`` markup (plain canvas
                                         strings, which have no markup, take ``one_line``)
InfluxDB       ``influx_string``         ``one_line``: what a string field may hold (line
                                         protocol cannot carry a line break; the other
                                         controls would reach whoever queries it)
HTML           ``html``                  ``one_line``, then ``html.escape`` (quotes too)
=============  ========================  ===================================================

HTML: the web board renders through a template engine with autoescaping on
(Jinja2 ``autoescape=True``), and escaping is its job: a page never builds HTML
by joining strings. ``html`` is the one function for the rare value made safe
outside a template, and the escape a template engine would be given.

A name is shown only if it shows something: ``shown_name`` gives None for one made of
blanks and invisible characters alone (spaces, line breaks, zero-width and bidi marks,
controls), so each sink falls back to the site's id instead of an empty cell, link or
alert summary that names nobody.

``one_line`` removes rather than replaces: SNMP strings are often padded with NULs,
and an escape sequence with its ESC removed is shown as the harmless text it was
(``[2J``). Identifiers need none of this: they are slugs (contract/wire.py).
"""

from __future__ import annotations

import html as _html
import json
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is a collector/CLI dependency, not an edge-box one
    from rich.text import Text

__all__ = [
    "csv_cell",
    "html",
    "influx_string",
    "json_text",
    "one_line",
    "pdf",
    "shown_name",
    "terminal",
]

# The characters str.splitlines() breaks on, and tab: each run becomes one space.
_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
# Bidi controls: embeddings, overrides and isolates reorder what follows them
# ("Trojan Source", CVE-2021-42574); the marks (ALM, LRM, RLM) are removed with them.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_DROP = re.compile(f"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f{_BIDI}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# What JSON leaves raw but a terminal may act on (json.dumps already escapes C0).
_JSON_RAW = re.compile(f"[\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
# OWASP's formula starters, and the full-width forms some spreadsheets also accept.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_PDF_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def one_line(text: str) -> str:
    """One line of printable text (see the module's table): the base of every sink."""
    if text.isprintable():  # the common case, in C: no control, separator or format char
        return text
    text = _DROP.sub("", _BREAKS.sub(" ", text))
    return _SURROGATE.sub("\ufffd", text)


def terminal(text: str | None) -> Text:
    """Text for a rich console or table cell: shown exactly as ``one_line`` makes it."""
    from rich.text import Text

    return Text(one_line(text or ""))


def json_text(value: object, *, indent: int | None = None) -> str:
    """JSON for stdout (scripts read it, people see it): Vietnamese kept readable."""
    encoded = json.dumps(value, ensure_ascii=False, indent=indent)
    return _JSON_RAW.sub(lambda found: f"\\u{ord(found[0]):04x}", encoded)


def csv_cell(text: str | None) -> str:
    """A CSV cell no spreadsheet runs as a formula."""
    cell = one_line(text or "")
    if cell.lstrip()[:1] in _FORMULA_START:
        return "'" + cell
    return cell


def pdf(text: str) -> str:
    """Text for a reportlab ``Paragraph``: its markup (``<b>``, ``&amp;``…) is not read."""
    return one_line(text).translate(_PDF_ESCAPES)


def influx_string(text: str) -> str:
    """The value of an InfluxDB string field, before line protocol quotes it."""
    return one_line(text)


def html(text: str) -> str:
    """Text for HTML outside a template engine (inside one, its autoescape does this)."""
    return _html.escape(one_line(text), quote=True)


def shown_name(name: str | None) -> str | None:
    """``name`` as given, or None when nothing of it would be seen (no letter, digit,
    mark, punctuation or symbol: only separators, controls and format characters)."""
    if name is None:
        return None
    visible = any(not unicodedata.category(c).startswith(("C", "Z")) for c in name)
    return name if visible else None
