"""The compliance report as a table, a CSV and a PDF: made in collector/compliance_report.py.

The board serves the same CSV and PDF, and the collector may not import the CLI
(tests/test_layout.py), so the renderers moved there; this name is kept for the CLI.
"""

from __future__ import annotations

from collector.compliance_report import (
    CSV_COLUMNS,
    FONT_PACKAGE,
    FontMissing,
    render_csv,
    render_pdf,
    render_table,
)

__all__ = ["CSV_COLUMNS", "FONT_PACKAGE", "FontMissing", "render_csv", "render_pdf", "render_table"]
