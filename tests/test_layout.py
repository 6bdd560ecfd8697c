"""Architecture rules a reviewer relies on: the core never imports a vendor adapter."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).parents[1] / "commhub"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_adapters() -> None:
    offenders = sorted(str(path.relative_to(CORE.parent)) for path in CORE.rglob("*.py")
                       if any(name == "adapters" or name.startswith("adapters.") for name in imported_modules(path)))
    assert offenders == []


def test_every_core_module_is_found() -> None:
    assert len(list(CORE.rglob("*.py"))) > 30  # the rule above really looked at the code
