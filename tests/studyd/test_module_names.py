"""Issue 25 item 8: no package holds two modules whose names differ by a plural `s`.

`studyd/spec/space.py` (the Optuna parameters a spec produces) sat beside `spaces.py` (the spec's
sections); a reader could not tell which held what. The first is `parameters.py` now.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "models", "storage", "studyd")


def test_no_module_is_another_modules_plural():
    clashes = []
    for package in PACKAGES:
        for directory in [REPO / package, *(REPO / package).rglob("*/")]:
            names = {p.stem for p in directory.glob("*.py")}
            clashes += [f"{directory.relative_to(REPO)}/{n}.py" for n in names if f"{n}s" in names]
    assert clashes == [], f"modules with a plural twin: {clashes}"
