"""MQTT topic names: ``kienco/v1/{province}/{site}/{kind}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from contract.wire import SLUG_PATTERN

PREFIX = "kienco/v1"
TopicKind = Literal["report", "event", "state", "meta", "status", "command"]
TOPIC_KINDS: frozenset[str] = frozenset(get_args(TopicKind))
_SLUG = re.compile(SLUG_PATTERN)


class TopicError(ValueError):
    """A topic that is not ``kienco/v1/{province}/{site}/{kind}`` with slug ids."""


@dataclass(frozen=True, slots=True)
class SiteTopic:
    """A parsed, valid kienco topic. Builds and parses; refuses what is not a slug."""

    province: str
    site: str
    kind: str

    def __post_init__(self) -> None:
        for name in ("province", "site"):
            value = getattr(self, name)
            if not _SLUG.fullmatch(value) or len(value) > 64:
                raise TopicError(f"{name} {value!r} is not a lowercase slug")
        if self.kind not in TOPIC_KINDS:
            raise TopicError(f"kind {self.kind!r} is not one of {sorted(TOPIC_KINDS)}")

    def __str__(self) -> str:
        return f"{PREFIX}/{self.province}/{self.site}/{self.kind}"

    @classmethod
    def parse(cls, topic: str) -> SiteTopic:
        parts = topic.split("/")
        if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
            raise TopicError(f"topic {topic!r} is not {PREFIX}/<province>/<site>/<kind>")
        return cls(province=parts[2], site=parts[3], kind=parts[4])


def topic(province: str, site: str, kind: TopicKind) -> str:
    return str(SiteTopic(province, site, kind))
