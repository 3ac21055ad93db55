"""The ``kienco readiness`` table: every point of a province, not-ready ones first, with why.

Also each verdict as a JSON line (``--json`` of readiness and demo).

Names and reason texts come from agents and devices: every one of them reaches the
terminal through ``plumbing.untrusted.terminal`` (no markup read, no control
sequence written). The footer says the disaster risk level each province's
verdicts were judged under.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from contract.wire import Status, utc_text
from kienco.labels import (
    KINDS,
    STATION_STATES,
    VERDICT_STYLE,
    VERDICTS,
    Lang,
    label,
    local_time,
    risk_levels,
)
from plumbing.untrusted import terminal

HEAD = {
    "vi": ("Điểm", "Tên", "Loại", "Đánh giá", "Trạng thái", "Lý do"),
    "en": ("Site", "Name", "Kind", "Verdict", "State", "Reasons"),
}
SUMMARY = {
    "vi": "{province}: {ready}/{total} sẵn sàng — {risk} — đánh giá lúc {at} (giờ Việt Nam)",
    "en": "{province}: {ready}/{total} ready — {risk} — judged at {at} (Vietnam time)",
}
NOTHING = {
    "vi": "không có {kind} nào ở tỉnh '{province}'",
    "en": "no {kind} in province '{province}'",
}
NOTHING_OF_KIND = {
    "vi": "tỉnh '{province}' có {n} điểm, không điểm nào là {kind}: thử --kind all",
    "en": "province '{province}' has {n} site(s), none of them a {kind}: try --kind all",
}
KNOWN = {
    "vi": "kiểm tra mã tỉnh; collector đang theo dõi: {provinces}",
    "en": "check the province code; the collector knows: {provinces}",
}
KNOWS_NONE = {
    "vi": "collector chưa nhận được điểm nào",
    "en": "the collector has no site yet",
}
ANY_SITE = {"vi": "điểm", "en": "site"}


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
            terminal(status.site),
            terminal(status.name),
            label(KINDS, status.site_kind, lang),
            Text(label(VERDICTS, status.verdict, lang), style=VERDICT_STYLE[status.verdict]),
            label(STATION_STATES, status.station_state, lang),
            Text("\n").join(
                terminal("• " + (r.text_vi if lang == "vi" else r.text_en)) for r in reasons
            ),
        )
    console.print(table)
    newest = max((s.evaluated_at for s in statuses), default=None)
    console.print(
        terminal(
            summary
            or SUMMARY[lang].format(
                province=province,
                ready=sum(s.verdict == "ready" for s in statuses),
                total=len(statuses),
                risk=risk_levels(statuses, lang),
                at=local_time(newest, "%d/%m/%Y %H:%M:%S") if newest else "—",
            )
        )
    )


def nothing_selected(*, province: str, kind: str | None, known: Iterable[str], lang: Lang) -> str:
    """Why ``kienco readiness`` selected no site, and what to try instead.

    ``known`` is the province of every site the collector holds.
    """
    sites = Counter(known)
    kind_text = label(KINDS, kind, lang) if kind else ANY_SITE[lang]
    if province in sites:
        return NOTHING_OF_KIND[lang].format(province=province, n=sites[province], kind=kind_text)
    hint = KNOWN[lang].format(provinces=", ".join(sorted(sites))) if sites else KNOWS_NONE[lang]
    return f"{NOTHING[lang].format(kind=kind_text, province=province)}: {hint}"


def verdict_line(status: Status, lang: str) -> dict[str, object]:
    """One site's verdict as a JSON line: what scripts read from demo and readiness."""
    return {
        "site": status.site,
        "name": status.name,
        "kind": status.site_kind,
        "province": status.province,
        "state": status.verdict,
        "station_state": status.station_state,
        "backup_hours": status.backup_hours,
        "dark_in_s": status.dark_in_s,
        "independent_paths_up": status.independent_paths_up,
        "risk_level": status.risk_level,
        "evaluated_at": utc_text(status.evaluated_at),
        "reasons": [
            {
                "code": r.code,
                "rule": r.rule,
                "severity": r.severity,
                "text": r.text_vi if lang == "vi" else r.text_en,
            }
            for r in status.reasons
        ],
    }
