"""``kienco whatif``'s forecast as tables: which sites go dark by when if mains fail.

The collector's answer (``GET /api/v1/whatif/grid-off``, computed by rules/whatif.py from
every site's current state) in Vietnamese or English: sites dark per hour, the sites going
dark soonest first, the meeting points that still hold a meeting of the given duration, and
the areas that lose all their hardened stations. The command is kienco/commands/whatif.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kienco.labels import KINDS, Lang, label, local_time
from plumbing.untrusted import terminal
from rules.texts import format_value

WORDS: dict[str, tuple[str, str]] = {
    "head": (
        "Giả định: mất điện lưới toàn tỉnh {province} từ {at} (giờ Việt Nam), xét {hours} "
        "tới — theo số liệu lúc {now}",
        "What if: mains fail across province {province} at {at} (Vietnam time), over the "
        "next {hours} — from the state at {now}",
    ),
    "by_hour": ("Số trạm mất nguồn (cộng dồn)", "Sites dark (cumulative)"),
    "by_hour_floors": (
        "Số trạm mất nguồn (cộng dồn); +N: trạm có thời gian chỉ là mức tối thiểu (không rõ "
        "nhiên liệu) đã tới lúc đó, không rõ có mất nguồn không, không tính",
        "Sites dark (cumulative); +N: sites whose time is only a floor (fuel not reported) "
        "reached by then, not known dark, not counted",
    ),
    "floors": (
        "Có thể mất nguồn, không rõ lúc nào: {n} trạm còn nguồn ít nhất tới thời điểm ghi "
        "bên cạnh (một nguồn không rõ dung lượng, như nhiên liệu không báo, tính là 0): {sites}",
        "May go dark, time not known: {n} site(s) last at least until the time given (a "
        "source of unknown size, such as fuel not reported, counted as nothing): {sites}",
    ),
    "ceilings": (
        "Có thể mất nguồn sớm hơn, không rõ lúc nào: {n} trạm còn nguồn nhiều nhất tới thời "
        "điểm ghi bên cạnh (một ắc quy không rõ thời gian lưu điện có thể cạn trước): {sites}",
        "May go dark sooner, time not known: {n} site(s) last at most until the time given "
        "(a battery of unknown runtime may go first): {sites}",
    ),
    "ceiling_site": (
        "{site} (nhiều nhất tới {at}, {basis})",
        "{site} (at most until {at}, {basis})",
    ),
    "ceiling_mark": (
        "≤: mất nguồn muộn nhất lúc đó (một ắc quy không rõ thời gian lưu điện có thể cạn trước)",
        "≤: dark by then at the latest (a battery of unknown runtime may go first)",
    ),
    "floor_site": ("{site} (ít nhất tới {at}, {basis})", "{site} (at least until {at}, {basis})"),
    "never": (
        "{n} trạm chưa từng báo cáo, không dự báo được: {sites}",
        "{n} site(s) never reported, cannot be forecast: {sites}",
    ),
    "dark": ("Trạm mất nguồn trong {hours}", "Sites dark within {hours}"),
    "none_dark": (
        "Không trạm nào mất nguồn trong {hours}.",
        "No site goes dark within {hours}.",
    ),
    "hold": ("{n} trạm còn nguồn sau {until}.", "{n} site(s) still powered at {until}."),
    "unknown": (
        "Không dự báo được {n} trạm: {sites}",
        "Cannot forecast {n} site(s): {sites}",
    ),
    "meeting": (
        "Điểm cầu giữ được cuộc họp {duration} bắt đầu {at}: {held}/{total}",
        "Meeting points that hold a {duration} meeting from {at}: {held}/{total}",
    ),
    "areas": (
        "Khu vực mất toàn bộ trạm kiên cố trong {hours}:",
        "Areas losing all their hardened stations within {hours}:",
    ),
    "area": (
        "  {area}: {n} trạm kiên cố, trạm cuối mất nguồn lúc {at}",
        "  {area}: {n} hardened station(s), the last dark at {at}",
    ),
    "no_area": ("  không có", "  none"),
    "area_unknown": (
        "  {area}: không rõ ({n} trạm kiên cố không dự báo được)",
        "  {area}: unknown ({n} hardened station(s) cannot be forecast)",
    ),
}
HEAD_DARK = {
    "vi": ("Điểm", "Tên", "Loại", "Mất nguồn lúc", "Sau", "Theo"),
    "en": ("Site", "Name", "Kind", "Dark at", "After", "From"),
}
HEAD_MEETING = {
    "vi": ("Điểm cầu", "Tên", "Giữ được?", "Lý do"),
    "en": ("Meeting point", "Name", "Holds?", "Reasons"),
}
BASIS: dict[str, tuple[str, str]] = {
    "battery": ("ắc quy", "battery"),
    "battery+generator": ("ắc quy + máy phát", "battery + generator"),
    "generator": ("máy phát", "generator"),
    "dark": ("đã mất nguồn", "already dark"),
    "silent": ("mất liên lạc", "silent"),
    "no_power_data": ("thiếu số liệu nguồn", "no power figures"),
    "never_reported": ("chưa từng báo cáo", "never reported"),
}
HOLDS: dict[str, tuple[str, str]] = {
    "yes": ("có", "yes"),
    "no": ("không", "no"),
    "unknown": ("không rõ", "unknown"),
}


def _say(key: str, lang: Lang, **values: object) -> str:
    vi, en = WORDS[key]
    return (vi if lang == "vi" else en).format(**values)


def _dur(seconds: float, lang: Lang) -> str:
    return format_value(seconds, "dur", lang)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _timed_sites(key: str, sites: list[dict[str, Any]], lang: Lang) -> str:
    """The sites named each with its time (Vietnam time) and basis, as ``key`` says one."""
    return ", ".join(
        _say(
            key,
            lang,
            site=s["site"],
            at=local_time(parse_time(s["dark_at"]), "%H:%M %d/%m"),
            basis=label(BASIS, s["basis"], lang),
        )
        for s in sites
    )


EXIT_ALL_HOLD = 0
EXIT_SOME_DARK = 3


def exit_status(payload: dict[str, Any]) -> int:
    """0 only when every site's forecast is known, none goes dark within the horizon and
    every meeting point holds; 3 otherwise. A site that cannot be forecast (silent, no
    power figures), an area's hardened station that cannot, or a site of the inventory
    that never reported is not one that holds: a script reading 0 must be able to take it
    as "all hold"."""
    until = parse_time(payload["at"]) + timedelta(hours=payload["hours"])
    sites = payload["sites"]
    some_dark = any(s["dark_at"] and parse_time(s["dark_at"]) <= until for s in sites)
    cannot_tell = (
        any(s["dark_at"] is None or s.get("upper_bound") for s in sites)
        or any(a["unknown"] for a in payload["areas"])
        or bool(payload.get("never_reported"))
    )
    all_hold = all(p["holds"] for p in payload["meeting_points"])
    return EXIT_SOME_DARK if some_dark or cannot_tell or not all_hold else EXIT_ALL_HOLD


def render(payload: dict[str, Any], lang: Lang, console: Console) -> None:
    """The forecast as tables, in ``lang``; names and reasons as plain text."""
    at, now = parse_time(payload["at"]), parse_time(payload["now"])
    span = _dur(payload["hours"] * 3600, lang)
    console.print(
        terminal(
            _say(
                "head",
                lang,
                province=payload["province"],
                at=local_time(at, "%H:%M %d/%m/%Y"),
                hours=span,
                now=local_time(now, "%H:%M %d/%m"),
            )
        )
    )
    counts = payload["dark_by_hour"]
    # a time that is only a floor is not known dark: counted apart, and said so
    floors = payload.get("floor_by_hour") or [0] * len(counts)
    shown_floors = any(floors)
    top = max(counts[-1], 1)
    title = _say("by_hour_floors" if shown_floors else "by_hour", lang)
    hourly = Table(title=title, title_justify="left", show_header=False)
    for _ in range(5 if shown_floors else 4):
        hourly.add_column()
    for h, (n, floor) in enumerate(zip(counts, floors, strict=True)):
        step = min(float(h), float(payload["hours"]))  # the last row counts to the horizon
        clock = local_time(at + timedelta(hours=step), "%H:%M")
        cells = [f"+{step:g}h", clock, str(n)] + ([f"+{floor}"] if shown_floors else [])
        hourly.add_row(*cells, "█" * round(20 * n / top))
    console.print(hourly)

    until = at + timedelta(hours=payload["hours"])
    sites = payload["sites"]
    within = [s for s in sites if s["dark_at"] is not None and parse_time(s["dark_at"]) <= until]
    dark = [s for s in within if not s["lower_bound"]]
    floored = [s for s in within if s["lower_bound"]]
    if dark:
        table = Table(title=_say("dark", lang, hours=span), title_justify="left")
        for heading in HEAD_DARK[lang]:
            table.add_column(heading, overflow="fold")
        for s in dark:
            when = parse_time(s["dark_at"])
            after = max(0.0, (when - at).total_seconds())
            table.add_row(
                s["site"],
                terminal(s["name"]),
                label(KINDS, s["kind"], lang),
                local_time(when, "%H:%M %d/%m"),
                _dur(after, lang),
                label(BASIS, s["basis"], lang) + (" ≤" if s.get("upper_bound") else ""),
            )
        console.print(table)
        if any(s.get("upper_bound") for s in dark):
            console.print(_say("ceiling_mark", lang))
    else:
        console.print(_say("none_dark", lang, hours=span))
    if floored:
        named = _timed_sites("floor_site", floored, lang)
        console.print(terminal(_say("floors", lang, n=len(floored), sites=named)))
    beyond = [s for s in sites if s["dark_at"] is not None and parse_time(s["dark_at"]) > until]
    held = [s for s in beyond if not s.get("upper_bound")]
    ceilings = [s for s in beyond if s.get("upper_bound")]
    if held:
        console.print(_say("hold", lang, n=len(held), until=local_time(until, "%H:%M %d/%m")))
    if ceilings:
        named = _timed_sites("ceiling_site", ceilings, lang)
        console.print(terminal(_say("ceilings", lang, n=len(ceilings), sites=named)))
    unknown = [s for s in sites if s["dark_at"] is None and s["basis"] != "never_reported"]
    if unknown:
        named = ", ".join(f"{s['site']} ({label(BASIS, s['basis'], lang)})" for s in unknown)
        console.print(terminal(_say("unknown", lang, n=len(unknown), sites=named)))
    # never heard from: known from the register (or a meta) alone; not "silent"
    never = sorted(
        [s["site"] for s in sites if s["basis"] == "never_reported"]
        + list(payload.get("never_reported") or [])
    )
    if never:
        console.print(terminal(_say("never", lang, n=len(never), sites=", ".join(never))))

    points = payload["meeting_points"]
    if points:
        summary = _say(
            "meeting",
            lang,
            duration=_dur(payload["meeting_s"], lang),
            at=local_time(at, "%H:%M"),
            held=sum(1 for p in points if p["holds"]),
            total=len(points),
        )
        table = Table(title=summary, title_justify="left")
        for heading in HEAD_MEETING[lang]:
            table.add_column(heading, overflow="fold")
        for p in points:
            holds = "unknown" if p["holds"] is None else ("yes" if p["holds"] else "no")
            reasons = Text("\n").join(  # one plain line per reason: no markup read
                terminal("• " + (r["text_vi"] if lang == "vi" else r["text_en"]))
                for r in p["reasons"]
            )
            style = {"yes": "green", "no": "bold red", "unknown": "magenta"}[holds]
            table.add_row(
                p["site"],
                terminal(p["name"]),
                Text(label(HOLDS, holds, lang), style=style),
                reasons,
            )
        console.print(table)

    console.print(_say("areas", lang, hours=span))
    shown = False
    for area in payload["areas"]:
        name = area["area"] + (f" ({area['area_name']})" if area["area_name"] else "")
        if area["all_lost_at"] is not None:
            at_text = local_time(parse_time(area["all_lost_at"]), "%H:%M %d/%m")
            line = _say("area", lang, area=name, n=len(area["stations"]), at=at_text)
        elif area["unknown"]:
            line = _say("area_unknown", lang, area=name, n=area["unknown"])
        else:
            continue
        console.print(terminal(line))
        shown = True
    if not shown:
        console.print(_say("no_area", lang))
