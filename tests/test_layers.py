"""The layers import one way: cli -> jobs -> engine and io -> model (docs/development.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "measr"
# Each package, and the packages above it that it must never import.
ABOVE = {
    "model": ("engine", "io", "jobs", "cli", "training", "evaluation"),
    "engine": ("jobs", "cli"),
    "io": ("engine", "jobs", "cli"),
    "jobs": ("cli",),
}


def imported_modules(path: Path) -> set[str]:
    """The measr modules a source file imports (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("measr.")}


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_package_never_imports_the_layers_above_it(package: str) -> None:
    offending = {
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[1] in ABOVE[package]
    }
    assert not offending, sorted(offending)
