"""A finding: what one rule says about one site, with the numbers that explain it.

``severity`` is what people see (info, warning, critical). ``impact`` is what the
finding does to the verdict:

- ``none``      noted only;
- ``degrades``  the site works but worse than it should;
- ``spof``      one single point of failure left;
- ``unknown``   a required check could not be made;
- ``blocks``    the site will not hold.

``verdict_of`` turns them into ready / degraded / not_ready / unknown: one weakness
(a single point of failure, or one rule's degradations) when otherwise fine is
``degraded``; two, or anything blocking, is ``not_ready``.

When not given, impact follows severity: info → none, warning → degrades,
critical → blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from contract.wire import Reason, Severity, Verdict
from rules import texts
from rules.texts import Lang

RuleName = Literal[
    "freshness",
    "station_state",
    "backup_power",
    "multipath",
    "link_quality",
    "meeting",
    "rehearsal",  # judged per planned meeting (rules/rehearsal.py), not by evaluate()
]
Impact = Literal["none", "degrades", "spof", "unknown", "blocks"]

_DEFAULT_IMPACT: Mapping[Severity, Impact] = MappingProxyType(
    {"info": "none", "warning": "degrades", "critical": "blocks"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason about one site. Its texts must render: it is checked when built."""

    rule: RuleName
    site: str
    severity: Severity
    code: str
    numbers: Mapping[str, float | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    impact: Impact | None = None

    def __post_init__(self) -> None:
        if self.code not in texts.CATALOGUE:
            raise ValueError(f"finding code {self.code!r} has no text in rules/texts.py")
        missing = texts.placeholders(self.code).difference(self.numbers, self.labels)
        if missing:
            raise ValueError(f"finding {self.code!r} lacks {sorted(missing)} for its texts")
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        if self.impact is None:
            object.__setattr__(self, "impact", _DEFAULT_IMPACT[self.severity])

    @property
    def effect(self) -> Impact:
        """The impact, resolved (never None after construction)."""
        return self.impact or _DEFAULT_IMPACT[self.severity]

    def text(self, lang: Lang) -> str:
        return texts.render(self.code, lang, self.numbers, self.labels)

    @property
    def text_vi(self) -> str:
        return self.text("vi")

    @property
    def text_en(self) -> str:
        return self.text("en")

    def to_reason(self) -> Reason:
        return Reason(
            rule=self.rule,
            code=self.code,
            severity=self.severity,
            text_vi=self.text_vi,
            text_en=self.text_en,
            numbers=dict(self.numbers),
        )


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """The verdict a fresh site gets from its findings.

    A *weakness* is one single point of failure, or one rule's degradations taken
    together (high RTT and high jitter are one link-quality weakness). Anything that
    blocks, or two weaknesses, is ``not_ready``; else a check that could not be made
    is ``unknown``; else one weakness is ``degraded``; none is ``ready``.
    """
    spofs = 0
    degrading_rules: set[RuleName] = set()
    blocks = unknown = False
    for f in findings:  # one pass: this runs for every site judged
        effect = f.effect
        if effect == "spof":
            spofs += 1
        elif effect == "degrades":
            degrading_rules.add(f.rule)
        elif effect == "blocks":
            blocks = True
        elif effect == "unknown":
            unknown = True
    weaknesses = spofs + len(degrading_rules)
    if blocks or weaknesses >= 2:
        return "not_ready"
    if unknown:
        return "unknown"
    return "degraded" if weaknesses else "ready"


def severity_for_hours(hours: float, warn_below_h: float, critical_below_h: float) -> Severity:
    """critical below the floor, warning below the target, info otherwise."""
    if hours < critical_below_h:
        return "critical"
    if hours < warn_below_h:
        return "warning"
    return "info"
