"""What every rule is handed: the current snapshot, thresholds, time and shared assessments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from contract.wire import Severity
from rules.autonomy import PowerAssessment
from rules.findings import Finding, Impact, RuleName
from rules.paths import PathAssessment
from rules.snapshot import SiteSnapshot
from rules.thresholds import Thresholds


@dataclass(frozen=True, slots=True)
class RuleContext:
    snapshot: SiteSnapshot  # already stripped of readings too old to trust
    thresholds: Thresholds
    now: datetime
    power: PowerAssessment
    paths: PathAssessment
    meeting_duration_s: float
    meeting_starts_at: datetime  # ``now`` when no meeting is planned: one could start now

    def finding(
        self,
        rule: RuleName,
        severity: Severity,
        code: str,
        numbers: Mapping[str, float | None] | None = None,
        labels: Mapping[str, str] | None = None,
        impact: Impact | None = None,
    ) -> Finding:
        return Finding(
            rule=rule,
            site=self.snapshot.site,
            severity=severity,
            code=code,
            numbers=numbers or {},
            labels=labels or {},
            impact=impact,
        )


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600
