"""``kienco policy check``: a policy file judged as the collector would load it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kienco.cli import main as kienco_main


def test_the_shipped_policy_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert kienco_main(["policy", "check", "--lang", "en"]) == 0
    assert capsys.readouterr().out.startswith("rules/default-policy.yaml: valid (version 1")


def test_a_typo_exits_2_with_the_key_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("freshness:\n  stale_intervls: 3\n", encoding="utf-8")
    assert kienco_main(["policy", "check", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "freshness.stale_intervls" in err and "did you mean 'stale_intervals'" in err


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kienco_main(["policy", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
