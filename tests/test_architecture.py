"""The house rules of docs/architecture.md, checked: layers, no cycles, rooms of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skisal"
MAX_MODULE_LINES = 700  # issue 19: beyond this a module holds more than one concept


def test_import_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Layers, the engine's ignorance of model families, and no import cycle (pyproject.toml)."""
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0, (
        "an import breaks a contract in [tool.importlinter] of pyproject.toml: run "
        "`lint-imports` for the offending import chain, and see docs/architecture.md"
    )


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_module_is_of_a_readable_size(path: Path) -> None:
    n_lines = len(path.read_text().splitlines())
    assert n_lines <= MAX_MODULE_LINES, (
        f"{path.relative_to(ROOT)} has {n_lines} lines (more than {MAX_MODULE_LINES}): "
        "split it by concern"
    )


def _deferred_skisal_imports(path: Path) -> list[str]:
    """Imports of skisal's own modules made inside a function: the mark of a dodged cycle."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and (
                inner.level > 0 or (inner.module or "").startswith("skisal")
            ):
                found.append(f"line {inner.lineno}: from {'.' * inner.level}{inner.module}")
            elif isinstance(inner, ast.Import) and any(
                alias.name.startswith("skisal") for alias in inner.names
            ):
                found.append(f"line {inner.lineno}: import {inner.names[0].name}")
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_function_level_import_of_skisal(path: Path) -> None:
    """Function-level imports of skisal's own modules hide cycles from the import graph."""
    assert not _deferred_skisal_imports(path), (
        f"{path.relative_to(ROOT)} imports skisal inside a function "
        f"({_deferred_skisal_imports(path)}): import at module level, and if that makes a "
        "cycle, move the shared code down a layer (docs/architecture.md)"
    )
