"""The house's rooms: agent → contract ← collector → rules, plumbing under them all.

Checked on the source, so a new import that runs the wrong way fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> the kienco packages it may import
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    "plumbing": {"contract"},
    "rules": {"contract", "plumbing"},
    "agent": {"contract", "plumbing"},
    "collector": {"contract", "plumbing", "rules"},
    "kienco": {"contract", "plumbing", "agent", "collector", "rules"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_only_run_down(package: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {other}"
        for path in (REPO / package).rglob("*.py")
        for other in _imports(path) - ALLOWED[package] - {package}
    }
    assert not wrong, sorted(wrong)


def test_no_private_names_imported_across_modules() -> None:
    wrong = []
    for package in ALLOWED:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    if node.module.split(".")[0] not in ALLOWED:
                        continue
                    wrong += [
                        f"{path.relative_to(REPO)}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_") and not a.name.endswith("__")
                    ]
    assert not wrong, wrong
