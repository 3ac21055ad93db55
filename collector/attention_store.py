"""The ``attention`` list on disk, so a restart still says which sites left it.

The collector writes an ``attention`` point per site on the list each minute and one
point without ``listed`` when a site leaves it (``collector/summaries.py``). Which
sites were on it is kept in ``data_dir/attention.json``, beside the site state (and,
like it, only with ``state.persist``): at start the list begins from the file, so a
site that recovered while the collector was down gets its point without ``listed`` at
the first slot, instead of showing off mains on the NOC's panels for 15 minutes.

The file is JSON (a site id is text from the field: quotes, newlines, control
characters and unpaired surrogates all round-trip), at most one id per site, written
whole to a temporary file, fsynced and renamed over the old one: a crash leaves the old
list or the new, never half of one. A missing or unreadable file is logged and read as
an empty list (the next save replaces it): the collector always starts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Set
from pathlib import Path

from plumbing.atomic_file import replace_file

__all__ = ["FORMAT", "AttentionStore"]

FORMAT = 1

log = logging.getLogger("kienco.collector")


class AttentionStore:
    """Reads the saved list once at start; saves the whole list when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> set[str]:
        """The saved list; empty (and one line logged) when the file is missing or unreadable."""
        try:
            return _decode(self.path.read_bytes())
        except FileNotFoundError:
            log.info("no attention list at %s: starting with an empty one", self.path)
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: [[[[...
        except (OSError, ValueError, RecursionError) as exc:
            log.error(
                "attention list %s unreadable (%s): starting with an empty one; sites that "
                "left the list while the collector was down show on it for up to 15 min",
                self.path,
                exc,
            )
        return set()

    def save(self, sites: Set[str]) -> None:
        """Replace the saved list with ``sites``, durably. Raises OSError (disk full...)."""
        text = json.dumps({"format": FORMAT, "sites": sorted(sites)})  # ASCII: escapes all
        replace_file(self.path, text.encode("ascii"), mode=0o644)


def _decode(text: bytes) -> set[str]:
    saved = json.loads(text)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"not an attention list of format {FORMAT}")
    sites = saved.get("sites")
    if not isinstance(sites, list) or not all(isinstance(site, str) for site in sites):
        raise ValueError("its sites are not a list of texts")
    return set(sites)
