"""The ``kienco readiness`` table: every point of a province, not-ready ones first, with why."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from contract.wire import Status
from kienco.labels import KINDS, STATION_STATES, VERDICT_STYLE, VERDICTS, Lang, label, local_time

HEAD = {
    "vi": ("Điểm", "Tên", "Loại", "Đánh giá", "Trạng thái", "Lý do"),
    "en": ("Site", "Name", "Kind", "Verdict", "State", "Reasons"),
}
SUMMARY = {
    "vi": "{province}: {ready}/{total} sẵn sàng — đánh giá lúc {at} (giờ Việt Nam)",
    "en": "{province}: {ready}/{total} ready — judged at {at} (Vietnam time)",
}


def print_readiness(
    statuses: Sequence[Status],
    *,
    province: str,
    lang: Lang,
    console: Console | None = None,
    summary: str | None = None,
) -> None:
    """The table of points, not-ready first, then one summary line (given, or N/M ready)."""
    console = console or Console()
    table = Table(expand=True)
    for heading in HEAD[lang]:
        table.add_column(heading, overflow="fold")
    for status in statuses:
        reasons = [r for r in status.reasons if r.severity != "info"] or list(status.reasons)
        table.add_row(
            status.site,
            status.name or "",
            label(KINDS, status.site_kind, lang),
            Text(label(VERDICTS, status.verdict, lang), style=VERDICT_STYLE[status.verdict]),
            label(STATION_STATES, status.station_state, lang),
            "\n".join("• " + (r.text_vi if lang == "vi" else r.text_en) for r in reasons),
        )
    console.print(table)
    newest = max((s.evaluated_at for s in statuses), default=None)
    console.print(
        summary
        or SUMMARY[lang].format(
            province=province,
            ready=sum(s.verdict == "ready" for s in statuses),
            total=len(statuses),
            at=local_time(newest, "%d/%m/%Y %H:%M:%S") if newest else "—",
        )
    )
