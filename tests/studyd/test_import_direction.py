"""Imports run one way: the client library (`studyd.client`) never reaches up into the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "studyd" / "client"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_client_module_imports_the_cli():
    upward = {
        path.name: sorted(m for m in _imports(path) if m.split(".")[:2] == ["studyd", "cli"])
        for path in CLIENT.glob("*.py")
    }
    assert {name: found for name, found in upward.items() if found} == {}
