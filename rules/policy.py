"""The policy: which rules apply to which site kind, with which thresholds.

A policy file is YAML validated at load; keys it leaves out take the defaults below,
which are those of ``default-policy.yaml`` (where each is sourced). Unknown keys,
wrong types and contradictions fail with a ``PolicyError`` naming the key path, the
bad value and the fix.

Errors: ``PolicyError(ValueError)`` — carries ``source`` and ``problems``
(``rules/policy_errors.py``).
"""

from __future__ import annotations

import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.wire import SiteClass, SiteKind
from rules.alert_policy import AlertPolicy
from rules.compliance_policy import CompliancePolicy
from rules.findings import RuleName
from rules.policy_errors import MISSING, Problem, problems_from
from rules.policy_errors import PolicyError as PolicyError  # re-exported

DEFAULT_POLICY = "default-policy.yaml"
RoomCheck = Literal[
    "codec_reachable", "codec_registered", "camera_ok", "microphone_ok", "speaker_ok", "display_ok"
]
HoldS = Annotated[float, Field(ge=0, le=86_400)]
Hours = Annotated[float, Field(ge=0, le=24 * 366)]
SITE_KINDS: tuple[SiteKind, ...] = ("station", "power_room", "meeting_point")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class KindPolicy(_Model):
    rules: tuple[RuleName, ...]
    required_paths: Annotated[int, Field(ge=0, le=10)] | None = None
    preferred_media: Annotated[int, Field(ge=0, le=6)] | None = None

    @model_validator(mode="after")
    def _freshness_first(self) -> Self:
        if "freshness" not in self.rules:
            raise ValueError(
                "rules lack 'freshness' (a silent site must never look ready); fix: add it"
            )
        return self


class Kinds(_Model):
    station: KindPolicy = KindPolicy(
        rules=("freshness", "station_state", "backup_power", "multipath")
    )
    power_room: KindPolicy = KindPolicy(
        rules=("freshness", "station_state", "backup_power", "multipath"), required_paths=0
    )
    meeting_point: KindPolicy = KindPolicy(
        rules=(
            "freshness",
            "station_state",
            "backup_power",
            "multipath",
            "link_quality",
            "meeting",
        ),
        required_paths=2,
    )


class FreshnessPolicy(_Model):
    default_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 60
    stale_intervals: Annotated[float, Field(ge=1, le=1000)] = 3
    offline_after_s: Annotated[float, Field(gt=0, le=30 * 86_400)] = 300
    future_tolerance_s: Annotated[float, Field(ge=0, le=86_400)] = 60
    hold_s: HoldS = 0


class BackupTarget(_Model):
    warn_below_h: Hours
    critical_below_h: Hours = 4

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.critical_below_h > self.warn_below_h:
            raise ValueError(
                f"critical_below_h ({self.critical_below_h}) is above warn_below_h "
                f"({self.warn_below_h}); fix: make critical_below_h <= warn_below_h"
            )
        return self


class BackupTargets(_Model):
    ordinary: BackupTarget = BackupTarget(warn_below_h=8, critical_below_h=4)
    hardened: BackupTarget = BackupTarget(warn_below_h=72, critical_below_h=4)
    core: BackupTarget = BackupTarget(warn_below_h=24, critical_below_h=4)
    meeting_point: BackupTarget = BackupTarget(warn_below_h=4, critical_below_h=4)

    def for_class(self, name: SiteClass | Literal["meeting_point"]) -> BackupTarget:
        target: BackupTarget = getattr(self, name)
        return target


class BackupPowerPolicy(_Model):
    targets: BackupTargets = BackupTargets()
    hold_s: HoldS = 60  # proposal: no flapping


class RuntimeTrust(_Model):
    cap_values_s: tuple[Annotated[float, Field(ge=0)], ...] = (65_535, 3_932_100)
    zero_on_line_unknown: bool = True
    max_plausible_s: Annotated[float, Field(gt=0)] = 432_000
    min_load_pct: Annotated[float, Field(ge=0, le=100)] = 10
    usable_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8
    slope_min_samples: Annotated[int, Field(ge=2, le=1000)] = 3
    slope_min_span_s: Annotated[float, Field(ge=0)] = 120
    slope_window_s: Annotated[float, Field(gt=0)] = 3600
    optimistic_ratio: Annotated[float, Field(gt=0, le=1)] = 0.7

    @model_validator(mode="before")
    @classmethod
    def _no_fleet_wide_battery(cls, data: object) -> object:
        # A runtime invented for every UPS once judged real sites critical (issue 8):
        # a battery model belongs to one battery, in its site's config.
        if isinstance(data, dict) and "full_load_runtime_s" in data:
            raise ValueError(
                "full_load_runtime_s is no longer a policy key: one figure for every UPS "
                "is a guess; fix: remove it, and set battery: {full_load_runtime_s: …} on "
                "each UPS in its site config"
            )
        return data


class GeneratorPolicy(_Model):
    assumed_burn_l_per_h: Annotated[float, Field(gt=0, le=10_000)] | None = None


class MultipathPolicy(_Model):
    required_paths: Annotated[int, Field(ge=0, le=10)] = 2
    preferred_media: Annotated[int, Field(ge=0, le=6)] = 2
    # proposal: a path up but losing more than this share of its probes is no path
    usable_loss_pct: Annotated[float, Field(ge=0, le=100)] = 50
    hold_s: HoldS = 60  # proposal: no flapping


class LinkQualityPolicy(_Model):
    max_rtt_ms: Annotated[float, Field(gt=0)] = 100
    max_jitter_ms: Annotated[float, Field(gt=0)] = 30
    max_loss_pct: Annotated[float, Field(ge=0, le=100)] = 1
    min_bandwidth_up_mbps: Annotated[float, Field(ge=0)] | None = 3.0
    min_bandwidth_down_mbps: Annotated[float, Field(ge=0)] | None = 2.5
    # proposal: the loss past which a second path could not carry the meeting if the
    # good one went; None judges only the best path (rules/link_quality.py)
    backup_max_loss_pct: Annotated[float, Field(ge=0, le=100)] | None = 5
    hold_s: HoldS = 60  # proposal: no flapping


class MeetingPolicy(_Model):
    duration_s: Annotated[float, Field(gt=0, le=7 * 86_400)] = 14_400
    margin_pct: Annotated[float, Field(ge=0, le=500)] = 20
    ups_bridge_min_s: Annotated[float, Field(ge=0)] = 900
    devices: tuple[RoomCheck, ...] = typing.get_args(RoomCheck)
    rehearsal_max_age_s: Annotated[float, Field(gt=0)] = 86_400
    hold_s: HoldS = 60  # proposal: no flapping


class RiskStep(_Model):
    min_level: Annotated[int, Field(ge=1, le=5)]
    kinds: tuple[SiteKind, ...] = SITE_KINDS
    class_as: dict[SiteClass, SiteClass] = Field(default_factory=dict)
    required_paths: Annotated[int, Field(ge=0, le=10)] | None = None
    stale_intervals: Annotated[float, Field(ge=1, le=1000)] | None = None
    meeting_margin_pct: Annotated[float, Field(ge=0, le=500)] | None = None


class Policy(_Model):
    version: Literal[1] = 1
    kinds: Kinds = Kinds()
    freshness: FreshnessPolicy = FreshnessPolicy()
    backup_power: BackupPowerPolicy = BackupPowerPolicy()
    runtime_trust: RuntimeTrust = RuntimeTrust()
    generator: GeneratorPolicy = GeneratorPolicy()
    multipath: MultipathPolicy = MultipathPolicy()
    link_quality: LinkQualityPolicy = LinkQualityPolicy()
    meeting: MeetingPolicy = MeetingPolicy()
    compliance: CompliancePolicy = CompliancePolicy()
    alerts: AlertPolicy = AlertPolicy()
    risk: tuple[RiskStep, ...] = (
        RiskStep(min_level=4, kinds=("station",), class_as={"ordinary": "hardened"}),
    )

    @field_validator("risk")
    @classmethod
    def _risk_sorted(cls, risk: tuple[RiskStep, ...]) -> tuple[RiskStep, ...]:
        levels = [step.min_level for step in risk]
        if levels != sorted(levels):
            raise ValueError(f"steps are not in rising min_level order ({levels}); fix: sort them")
        return risk


# --- loading


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (the second would silently win)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node))


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_policy(data: object, source: str = "<data>") -> Policy:
    """Validate an already-parsed policy document."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        found = type(data).__name__
        problem = Problem("(top level)", data, f"a {found}, not a mapping", "write key: value")
        raise PolicyError(source, (problem,))
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, problems_from(exc, Policy)) from None


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the shipped default policy."""
    if path is None:
        source = f"rules/{DEFAULT_POLICY}"
        text = resources.files("rules").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            problem = Problem("(file)", MISSING, exc.strerror or str(exc), "check the path")
            raise PolicyError(source, (problem,)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = Problem("(yaml)", MISSING, str(exc).replace("\n", " "), "fix the YAML syntax")
        raise PolicyError(source, (problem,)) from None
    return parse_policy(data, source)
