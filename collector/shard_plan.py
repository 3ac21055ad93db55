"""Do a national deployment's collector shards carry every province once?

Each shard judges only its own provinces' sites (``provinces:``; the inventory is cut
to them, collector/service.py). So a province that no shard lists is judged by no one:
its sites never appear, not even as missing, on any board, alert or report, while
every shard is healthy. One listed by two shards is judged twice (two verdicts, two
sets of alerts, each shard's state half the story when the brokers split it). Nothing
at run time can see either: each shard knows only itself. This checks the shard
configs together, against the inventory, before they are deployed
(``kienco collector check-shards``); a shard alone checks its own provinces against
the inventory when it starts (``kienco collector run`` logs what :func:`own_problems`
finds).

Pure: the configs and the inventory are loaded by the caller.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from paho.mqtt.client import topic_matches_sub

from collector.config import CollectorConfig
from collector.inventory import Inventory
from contract.topics import topic

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    level: Level
    vi: str
    en: str

    def text(self, lang: Literal["vi", "en"]) -> str:
        return self.vi if lang == "vi" else self.en


@dataclass(frozen=True, slots=True)
class Shard:
    source: str  # where its config was read, to name it
    config: CollectorConfig


def _names(values: Sequence[str]) -> str:
    return ", ".join(values)


def _typo(province: str, *candidates: Sequence[str]) -> tuple[str, str]:
    """The suggestion for a province no inventory site has, in both languages: the
    closest of the first candidates that has a close one."""
    for known in candidates:
        close = difflib.get_close_matches(province, known, n=1, cutoff=0.5)
        if close:
            return f" (có phải {close[0]}?)", f" (did you mean {close[0]}?)"
    return "", ""


def _sites_by_province(inventory: Inventory) -> dict[str, int]:
    return {province: len(sites) for province, sites in inventory.by_province.items()}


def own_problems(
    provinces: Sequence[str], inventory: Inventory, *, uncarried: Sequence[str] = ()
) -> list[Problem]:
    """A shard's provinces that no inventory site has: a typo, or an inventory not yet
    updated; either way its board shows none of that province's expected sites. The
    suggestion is taken first from ``uncarried`` (provinces no shard carries), then
    from the inventory's other provinces."""
    counts = _sites_by_province(inventory)
    known = sorted(counts)
    found: list[Problem] = []
    for province in provinces:
        if not counts.get(province):
            others = [p for p in known if p not in provinces]  # its own are spelt right
            hint_vi, hint_en = _typo(province, uncarried, others)
            found.append(
                Problem(
                    "warning",
                    f"tỉnh {province} không có điểm nào trong danh mục{hint_vi}: không điểm "
                    "nào của tỉnh được chờ đợi",
                    f"province {province} has no site in the inventory{hint_en}: none of its "
                    "sites is expected",
                )
            )
    return found


def carries(config: CollectorConfig, province: str) -> bool:
    """Whether this collector takes the province's messages: its ``provinces:``, else
    whether its one topic filter matches them (the default matches every province)."""
    if config.provinces is not None:
        return province in config.provinces
    return topic_matches_sub(config.broker.topic_filter, topic(province, "any-site", "report"))


def check(shards: Sequence[Shard], inventory: Inventory | None) -> list[Problem]:
    """Every problem of these shards taken together, errors first."""
    named = {p for shard in shards for p in shard.config.provinces or ()}
    provinces = sorted(named | set(inventory.by_province if inventory is not None else ()))
    carriers = {p: [s.source for s in shards if carries(s.config, p)] for p in provinces}
    found: list[Problem] = []
    for province, sources in carriers.items():
        if len(sources) > 1:
            found.append(
                Problem(
                    "error",
                    f"tỉnh {province} do {len(sources)} shard cùng nhận ({_names(sources)}): "
                    "mỗi điểm bị đánh giá hai lần, cảnh báo gửi hai lần; giữ tỉnh ở một shard",
                    f"province {province} is carried by {len(sources)} shards "
                    f"({_names(sources)}): each site judged twice, its alerts sent twice; keep "
                    "it in one shard",
                )
            )
    found += _same_names(shards)
    if inventory is not None:
        uncarried = [p for p in inventory.by_province if not carriers[p]]
        found += _uncarried(sorted(uncarried), inventory)
        for shard in shards:
            if shard.config.provinces is not None:
                found += [
                    Problem(p.level, f"{shard.source}: {p.vi}", f"{shard.source}: {p.en}")
                    for p in own_problems(shard.config.provinces, inventory, uncarried=uncarried)
                ]
    order: Mapping[Level, int] = {"error": 0, "warning": 1}
    return sorted(found, key=lambda p: order[p.level])


def _same_names(shards: Sequence[Shard]) -> list[Problem]:
    by_name: dict[str, list[Shard]] = defaultdict(list)
    for shard in shards:
        by_name[shard.config.collector_name].append(shard)
    found: list[Problem] = []
    for name, named in sorted(by_name.items()):
        if len(named) > 1:
            sources = _names([s.source for s in named])
            key = named[0].config.collector_key
            found.append(
                Problem(
                    "error",
                    f"{len(named)} shard cùng tên {name} ({sources}, khoá {key}): sức khoẻ và "
                    "cảnh báo của chúng lẫn vào nhau trên bảng hệ thống; đặt cho mỗi shard một "
                    "tên",
                    f"{len(named)} shards are named {name} ({sources}, key {key}): their health "
                    "and alerts merge on the system dashboard; give each shard its own name",
                )
            )
    return found


def _uncarried(missing: Sequence[str], inventory: Inventory) -> list[Problem]:
    counts = _sites_by_province(inventory)
    if not missing:
        return []
    listed = _names([f"{p} ({counts[p]})" for p in missing])
    sites = sum(counts[p] for p in missing)
    return [
        Problem(
            "error",
            f"{len(missing)} tỉnh trong danh mục không shard nào nhận: {listed} — {sites} điểm "
            "không ai đánh giá, không hiện ở đâu, kể cả là thiếu; thêm mỗi tỉnh vào provinces: "
            "của một shard",
            f"{len(missing)} inventory province(s) carried by no shard: {listed} — {sites} "
            "site(s) judged by no one, shown nowhere, not even as missing; add each to one "
            "shard's provinces:",
        )
    ]
