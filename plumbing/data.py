"""Where kienco's data files are: ``firmware-configs/`` (profiles, recordings, broker configs).

In a source checkout (or an editable install) it is the folder beside the packages;
a regular ``pip install`` puts it under ``<prefix>/share/kienco/`` (pyproject's
data-files), since it is data, not a Python package.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path


@cache
def firmware_configs() -> Path:
    beside = Path(__file__).resolve().parents[1] / "firmware-configs"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "kienco" / "firmware-configs"
