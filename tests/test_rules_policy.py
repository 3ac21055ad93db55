"""The policy: shipped defaults, strict loading with useful errors, effective thresholds."""

from __future__ import annotations

import re
from importlib import resources
from itertools import pairwise
from pathlib import Path

import pytest

from rules import Policy, PolicyError, effective, load_policy
from rules.policy import parse_policy

DEFAULT_TEXT = resources.files("rules").joinpath("default-policy.yaml").read_text("utf-8")


def test_shipped_policy_is_the_code_default() -> None:
    """The YAML documents the sources; the code carries the same numbers."""
    assert load_policy() == Policy()
    assert load_policy(None) == load_policy(
        Path(str(resources.files("rules"))) / "default-policy.yaml"
    )


def test_every_shipped_number_says_where_it_comes_from() -> None:
    scalar = re.compile(r"^\s*[a-z_]+:\s*(-?[\d.]+|true|false|null)\s*(#.*)?$")
    uncommented = [
        line for line in DEFAULT_TEXT.splitlines() if (m := scalar.match(line)) and not m.group(2)
    ]
    # hold_s is plumbing for later, not a sourced threshold; version is the format
    assert [line for line in uncommented if "hold_s" not in line and "version" not in line] == []


def test_proposals_are_marked() -> None:
    for key in ("future_tolerance_s", "usable_fraction", "margin_pct", "ups_bridge_min_s"):
        line = next(line for line in DEFAULT_TEXT.splitlines() if line.strip().startswith(key))
        assert "proposal" in line, line


def test_a_partial_policy_takes_the_rest_from_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "link_quality:\n  max_rtt_ms: 150\n"
        "backup_power:\n  targets:\n    hardened: {warn_below_h: 48}\n"
    )
    policy = load_policy(path)
    assert policy.link_quality.max_rtt_ms == 150
    assert policy.link_quality.max_loss_pct == 1
    assert policy.backup_power.targets.hardened.warn_below_h == 48
    assert policy.backup_power.targets.ordinary.warn_below_h == 8


def test_policy_is_frozen() -> None:
    policy = load_policy()
    with pytest.raises(ValueError, match="frozen"):
        policy.freshness.stale_intervals = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "freshness:\n  stale_intervls: 3\n",
            ["freshness.stale_intervls = 3", "unknown key", "did you mean 'stale_intervals'?"],
            id="typo-key-named-with-suggestion",
        ),
        pytest.param(
            "backup_power:\n  targets:\n    hardend: {warn_below_h: 72}\n",
            ["backup_power.targets.hardend", "did you mean 'hardened'?"],
            id="typo-nested-key",
        ),
        pytest.param(
            "treshold: 1\n",
            ["treshold = 1", "unknown key", "known keys: version, kinds"],
            id="unknown-top-level-key-lists-known",
        ),
        pytest.param(
            "link_quality:\n  max_rtt_ms: fast\n",
            ["link_quality.max_rtt_ms = 'fast'", "fix: write a number"],
            id="wrong-type",
        ),
        pytest.param(
            "link_quality:\n  max_loss_pct: 150\n",
            ["link_quality.max_loss_pct = 150", "fix: use a value less than or equal to 100"],
            id="out-of-range",
        ),
        pytest.param(
            "kinds:\n  station:\n    rules: [freshness, backup_pwr]\n",
            ["kinds.station.rules.1 = 'backup_pwr'", "use one of", "'backup_power'"],
            id="unknown-rule-name",
        ),
        pytest.param(
            "kinds:\n  meeting_point:\n    rules: [meeting]\n",
            ["kinds.meeting_point", "lack 'freshness'", "fix: add it"],
            id="freshness-cannot-be-dropped",
        ),
        pytest.param(
            "backup_power:\n  targets:\n    core: {warn_below_h: 24, critical_below_h: 48}\n",
            ["backup_power.targets.core", "critical_below_h (48.0) is above", "fix: make"],
            id="critical-above-warn",
        ),
        pytest.param(
            "risk:\n  - {min_level: 5}\n  - {min_level: 3}\n",
            ["risk", "not in rising min_level order", "fix: sort them"],
            id="risk-steps-unsorted",
        ),
        pytest.param(
            "risk:\n  - {min_level: 4, class_as: {ordinary: bunker}}\n",
            ["risk.0.class_as.ordinary = 'bunker'", "use one of"],
            id="bad-class-name",
        ),
        pytest.param(
            "freshness:\n  stale_intervals: 3\n  stale_intervals: 4\n",
            ["(yaml)", "duplicate key 'stale_intervals'", "line 3"],
            id="duplicate-key",
        ),
        pytest.param(
            "runtime_trust:\n  full_load_runtime_s: 300\n",
            [
                "runtime_trust",
                "no longer a policy key",
                "fix: remove it",
                "battery: {full_load_runtime_s: …} on each UPS in its site config",
            ],
            id="fleet-wide-battery-runtime-moved-to-the-site-config",
        ),
        pytest.param("freshness: [\n", ["(yaml)", "fix the YAML syntax"], id="yaml-syntax"),
        pytest.param("- 1\n- 2\n", ["a list, not a mapping"], id="not-a-mapping"),
        pytest.param(
            "freshness:\n  stale_intervls: 3\nmeeting:\n  margin_pct: -5\n",
            ["stale_intervls", "meeting.margin_pct = -5"],
            id="every-problem-listed",
        ),
    ],
)
def test_bad_policy_names_key_value_and_fix(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="check the path"):
        load_policy(tmp_path / "nope.yaml")


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_policy(path) == Policy()


def test_error_carries_problems() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy({"freshness": {"stale_intervls": 3, "offline_after_s": 0}})
    problems = {p.key: p for p in info.value.problems}
    assert sorted(problems) == ["freshness.offline_after_s", "freshness.stale_intervls"]
    assert problems["freshness.offline_after_s"].value == 0
    assert "greater than 0" in problems["freshness.offline_after_s"].fix


@pytest.mark.parametrize(
    ("kind", "site_class", "risk", "hardened", "warn_h", "required_paths", "rules"),
    [
        pytest.param("station", "ordinary", 0, False, 8, 2, 4, id="ordinary"),
        pytest.param("station", "hardened", 0, False, 72, 2, 4, id="hardened"),
        pytest.param("station", "core", 0, False, 24, 2, 4, id="core"),
        pytest.param("station", "core", 0, True, 72, 2, 4, id="core-declared-hardened"),
        pytest.param("station", "ordinary", 3, False, 8, 2, 4, id="ordinary-level-3"),
        pytest.param("station", "ordinary", 4, False, 72, 2, 4, id="ordinary-level-4-hardened"),
        pytest.param("station", "ordinary", 5, False, 72, 2, 4, id="ordinary-level-5-hardened"),
        pytest.param("station", "core", 5, False, 24, 2, 4, id="core-untouched-by-risk"),
        pytest.param("power_room", "ordinary", 5, False, 8, 0, 4, id="power-room"),
        pytest.param("meeting_point", "ordinary", 0, False, 4, 2, 6, id="meeting-point"),
    ],
)
def test_effective_thresholds(
    kind: str,
    site_class: str,
    risk: int,
    hardened: bool,
    warn_h: float,
    required_paths: int,
    rules: int,
) -> None:
    t = effective(load_policy(), kind, site_class, risk, hardened=hardened)  # type: ignore[arg-type]
    assert t.backup.warn_below_h == warn_h
    assert t.required_paths == required_paths
    assert len(t.rules) == rules
    assert t.link.max_rtt_ms == 100 and t.link.max_jitter_ms == 30 and t.link.max_loss_pct == 1
    assert t.freshness.stale_intervals == 3 and t.freshness.offline_after_s == 300
    assert t.hold_s["freshness"] == 0  # freshness is time already: never held again
    assert all(t.hold_s[rule] == 60 for rule in ("backup_power", "multipath", "link_quality"))


def test_which_rules_apply_is_policy_data() -> None:
    policy = parse_policy({"kinds": {"station": {"rules": ["freshness", "multipath"]}}})
    t = effective(policy, "station", "ordinary")
    assert t.rules == frozenset({"freshness", "multipath"})


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([{"min_level": 4, "stale_intervals": 5}], id="stale-window-longer"),
        pytest.param(
            [{"min_level": 3, "stale_intervals": 2}, {"min_level": 5, "stale_intervals": 3}],
            id="level-5-stale-window-longer-than-level-3",
        ),
        pytest.param([{"min_level": 4, "meeting_margin_pct": 5}], id="meeting-margin-smaller"),
        pytest.param(
            [
                {"min_level": 3, "meeting_margin_pct": 50},
                {"min_level": 4, "meeting_margin_pct": 30},
            ],
            id="level-4-margin-smaller-than-level-3",
        ),
        pytest.param(
            [{"min_level": 3, "kinds": ["station"], "class_as": {"core": "ordinary"}}],
            id="core-held-as-ordinary",
        ),
        pytest.param(
            [{"min_level": 3, "kinds": ["station"], "class_as": {"hardened": "ordinary"}}],
            id="hardened-held-as-ordinary",
        ),
    ],
)
@pytest.mark.parametrize("site_class", ["ordinary", "hardened", "core"])
@pytest.mark.parametrize("kind", ["station", "meeting_point"])
def test_a_higher_risk_level_never_loosens_a_threshold(
    steps: list[dict[str, object]], site_class: str, kind: str
) -> None:
    """A risk step that would loosen what a lower level holds (a longer stale window, a
    smaller meeting margin, a class with a lower backup target) keeps the stricter: every
    verdict says "judged at risk level 5", and must be judged no more leniently than at 4."""
    policy = parse_policy({"risk": steps})
    judged = [
        effective(policy, kind, site_class, level)  # type: ignore[arg-type]
        for level in range(6)
    ]
    for lower, higher in pairwise(judged):
        assert higher.freshness.stale_intervals <= lower.freshness.stale_intervals
        assert higher.meeting.margin_pct >= lower.meeting.margin_pct
        assert higher.backup.warn_below_h >= lower.backup.warn_below_h
        assert higher.backup.critical_below_h >= lower.backup.critical_below_h
        assert higher.required_paths >= lower.required_paths
