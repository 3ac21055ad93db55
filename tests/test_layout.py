"""The house's rooms: agent → contract ← collector → rules, plumbing under them all.

Checked on the source, so a new import that runs the wrong way fails here, not in review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
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


def _runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that runs, lazy ones inside functions too; not those under TYPE_CHECKING."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                todo.extend(child.orelse)
            else:
                todo.append(child)


def test_no_circle_of_modules() -> None:
    """No module needs, through others, itself: each room's files form a tree of imports."""
    modules = {}
    for package in ALLOWED:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    needs: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.module and node.level == 0:
                # `from pkg import module` depends on the module, not on the package's own
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
            else:
                continue
            needs[name] |= {t for t in targets if t in modules and t != name}
    circles = []
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            circles.append(" -> ".join([*trail[trail.index(name) :], name]))
            return
        if name in done:
            return
        for other in sorted(needs[name]):
            visit(other, [*trail, name])
        done.add(name)

    for name in sorted(modules):
        visit(name, [])
    assert not circles, circles
