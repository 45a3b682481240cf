"""Every third-party package the code imports is declared in pyproject.toml, not inherited.

A package that arrives only as another's dependency (starlette through fastapi, numpy through
torch) can vanish or change major version under us when that other package moves.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Shipped code may use only the runtime dependencies; tests and benches also the `test` extra.
SHIPPED = ("api", "models", "storage", "studyd")
TOOLING = ("bench", "tests", "scripts")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normalized(re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0]) for r in requirements}


def _imported(folder: str) -> set[str]:
    # Our packages, and the test helpers imported by module name (tests/ is on the path).
    local = {p.name for p in ROOT.iterdir() if p.is_dir()} | {
        p.stem for p in (ROOT / "tests").rglob("*.py")
    }
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in sys.stdlib_module_names and n not in local}


def _undeclared(folders: tuple[str, ...], declared: set[str]) -> dict[str, list[str]]:
    distributions = packages_distributions()
    missing = {}
    for folder in folders:
        for module in sorted(_imported(folder)):
            names = {_normalized(d) for d in distributions.get(module, [module])}
            if not names & declared:
                missing.setdefault(folder, []).append(module)
    return missing


def test_every_imported_package_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _declared(project["dependencies"])
    tooling = runtime | _declared(project["optional-dependencies"]["test"])
    assert _undeclared(SHIPPED, runtime) == {}
    assert _undeclared(TOOLING, tooling) == {}
