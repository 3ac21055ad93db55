"""The ``compliance:`` section of the policy: what makes a hardened station compliant.

Defaults and their sources (DOMAIN.md, ARCHITECTURE.md "hardened-station compliance"):

- ``required_per_area: 3`` — the post-Yagi directive: three hardened stations per
  district; ``area_level`` says which unit that is;
- ``area_level: area`` — the ``area`` slug of the inventory (district before the 2025
  reform, commune after it); ``province`` counts per province instead. *proposal*:
  the directive predates the reform, so the unit is a setting, not a constant;
- ``min_autonomy_h: null`` — battery + generator fuel hours; ``null`` takes the
  hardened backup target (``backup_power.targets.hardened.warn_below_h``, 72 h:
  CPUC D.20-07-011) so the two cannot drift apart;
- ``require_fibre: true``, ``required_independent_paths: 2`` — ARCHITECTURE: "a fibre
  path and a second independent path" (SRLG-disjoint, RFC 4202);
- ``required_carriers: 3`` — post-Yagi: every locality has >= 3 carriers, counted as
  the providers seen up now on the paths its sites report, and part of the area's
  verdict (``0`` leaves them out of it);
- ``kinds: [station]`` — *proposal*: the directive is about telecom stations.

``settings_of`` resolves the section against the rest of the policy. This module
imports ``rules.policy`` for types only, so that ``rules.policy`` can import it
(``Policy.compliance``) without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.wire import SiteKind

if TYPE_CHECKING:  # rules.policy imports this module for Policy.compliance
    from rules.policy import Policy

AreaLevel = Literal["area", "province"]


class CompliancePolicy(BaseModel):
    """Thresholds of the hardened-station compliance report."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    area_level: AreaLevel = "area"
    required_per_area: Annotated[int, Field(ge=0, le=1000)] = 3
    min_autonomy_h: Annotated[float, Field(ge=0, le=24 * 366)] | None = None
    require_fibre: bool = True
    required_independent_paths: Annotated[int, Field(ge=0, le=10)] = 2
    required_carriers: Annotated[int, Field(ge=0, le=20)] = 3
    kinds: tuple[SiteKind, ...] = ("station",)


@dataclass(frozen=True, slots=True)
class Settings:
    """The thresholds one report was judged by, resolved from the policy."""

    source: str
    area_level: AreaLevel
    required_per_area: int
    min_autonomy_h: float
    require_fibre: bool
    required_independent_paths: int
    required_carriers: int
    kinds: tuple[SiteKind, ...]
    stale_intervals: float
    offline_after_s: float


def settings_of(
    policy: Policy,
    compliance: CompliancePolicy | None = None,
    *,
    source: str = "rules/default-policy.yaml",
    area_level: AreaLevel | None = None,
) -> Settings:
    """``compliance`` wins; else ``policy.compliance`` once merged; else the defaults."""
    if compliance is None:
        found = getattr(policy, "compliance", None)
        compliance = found if isinstance(found, CompliancePolicy) else CompliancePolicy()
    autonomy = compliance.min_autonomy_h
    if autonomy is None:
        autonomy = policy.backup_power.targets.hardened.warn_below_h
    return Settings(
        source=source,
        area_level=area_level or compliance.area_level,
        required_per_area=compliance.required_per_area,
        min_autonomy_h=autonomy,
        require_fibre=compliance.require_fibre,
        required_independent_paths=compliance.required_independent_paths,
        required_carriers=compliance.required_carriers,
        kinds=compliance.kinds,
        stale_intervals=policy.freshness.stale_intervals,
        offline_after_s=policy.freshness.offline_after_s,
    )
