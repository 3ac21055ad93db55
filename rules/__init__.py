"""kienco rules: a pure library that judges one site from its snapshot and a policy.

``evaluate(snapshot, policy, now) -> Evaluation``; no I/O (but ``load_policy``), no
clock reads, no globals. ``to_status`` turns an evaluation into the wire ``Status``.
"""

from rules.engine import Evaluation, evaluate, site_freshness, site_thresholds, to_status
from rules.findings import Finding
from rules.policy import Policy, load_policy
from rules.policy_errors import PolicyError
from rules.snapshot import PowerSample, SiteSnapshot
from rules.thresholds import Thresholds, effective

__all__ = [
    "Evaluation",
    "Finding",
    "Policy",
    "PolicyError",
    "PowerSample",
    "SiteSnapshot",
    "Thresholds",
    "effective",
    "evaluate",
    "load_policy",
    "site_freshness",
    "site_thresholds",
    "to_status",
]
