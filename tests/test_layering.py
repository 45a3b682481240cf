"""The rooms' import rules (CONTRIBUTING.md, docs/ARCHITECTURE.md), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# room (a path prefix) -> module prefixes it must never import
FORBIDDEN = {
    "models/": ("studyd", "api", "storage"),
    "storage/": ("studyd", "api", "models"),
    "studyd/spec/": ("studyd.daemon", "studyd.client", "studyd.cli", "studyd.analysis", "api"),
    "studyd/analysis/": ("studyd.daemon", "studyd.client", "studyd.cli", "api"),
    "studyd/daemon/": ("studyd.client", "studyd.cli", "api"),
    "studyd/client/": ("studyd.daemon", "studyd.cli", "api"),
    "studyd/settings.py": ("studyd.daemon", "studyd.client", "studyd.cli", "api"),
    "api/": ("studyd.client", "studyd.cli"),
}
# the one module under studyd/ allowed to import the API: the command that serves it
MAY_IMPORT_API = {"studyd/cli/serve.py"}


def _sources() -> list[Path]:
    return [
        p
        for room in ("models", "storage", "studyd", "api")
        for p in sorted((ROOT / room).rglob("*.py"))
        if "migrations" not in p.parts
    ]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import in the file, lazy ones inside functions included."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    banned = [b for room, mods in FORBIDDEN.items() if rel.startswith(room) for b in mods]
    if rel.startswith("studyd/") and rel not in MAY_IMPORT_API:
        banned.append("api")
    bad = [m for m, _ in _imports(path) for b in banned if _within(m, b)]
    assert not bad, f"{rel} imports {bad}: against the rooms' import rules"


# The benches use the rooms as any caller does: through their public names.
BENCHES = sorted((ROOT / "bench").rglob("*.py"))


@pytest.mark.parametrize("path", _sources() + BENCHES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    ours = ("models", "storage", "studyd", "api")
    bad = [
        f"{m}.{n}"
        for m, names in _imports(path)
        if m.split(".")[0] in ours
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad, f"{rel} imports private names {bad}"


def test_rules_catch_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from studyd.client.rest import StudydClient\n")
    assert ("studyd.client.rest", ["StudydClient"]) in _imports(bad)


def _module_name(path: Path, root: Path) -> str:
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _import_cycles(paths: list[Path], root: Path = ROOT) -> list[list[str]]:
    """Groups of modules that import each other, lazy imports included (Tarjan's SCCs)."""
    names = {_module_name(p, root): p for p in paths}
    graph = {
        name: {
            c
            for module, imported in _imports(path)
            for c in [module, *(f"{module}.{n}" for n in imported)]
            if c in names and c != name
        }
        for name, path in names.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


# A room whose modules import each other in a circle cannot be read (or split) one module at a
# time. studyd/spec/ is left out while space.py ↔ study.py still import each other (issue 25).
@pytest.mark.parametrize("room", ["models", "storage", "api", "studyd/daemon", "studyd/cli"])
def test_no_import_cycles_within_a_room(room: str) -> None:
    paths = [p for p in _sources() if str(p.relative_to(ROOT)).startswith(room + "/")]
    assert paths
    assert _import_cycles(paths) == []


def test_cycle_finder_finds_a_lazy_circle(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import f\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n")
    paths = sorted((tmp_path / "pkg").glob("*.py"))
    assert _import_cycles(paths, root=tmp_path) == [["pkg.a", "pkg.b"]]
