"""The README is a front door that tells the truth: its example runs, its tables list what the
code has, and every link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from api.app import create_app
from models.variants import REGISTRY
from studyd.cli.main import app as cli_app
from studyd.settings import Settings
from studyd.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# The front door's size: a newcomer reads it in one sitting (Optuna's is 275 lines).
MAX_README_LINES = 200


def _section(text: str, heading: str) -> str:
    """The text under a `## heading`, up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table_first_cells(text: str) -> list[str]:
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]  # past the header


def test_readme_is_a_front_door_not_a_notebook():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= MAX_README_LINES


def test_readme_example_spec_is_a_valid_spec():
    text = README.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert example is not None
    spec = load_spec(yaml.safe_load(example.group(1)))
    assert spec.name == "mnist1d-500-shootout"


def test_readme_cli_table_lists_every_command():
    table = _section(README.read_text(encoding="utf-8"), "The CLI")
    listed = {m for cell in _table_first_cells(table) for m in re.findall(r"`studyd (\w+)", cell)}
    assert listed == set(get_command(cli_app).commands)


def _path_shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


def test_readme_api_table_lists_every_route_of_the_schema(tmp_path):
    api = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'studyd.db'}"))
    routes = {
        f"{method.upper()} {_path_shape(path)}"
        for path, operations in api.openapi()["paths"].items()
        for method in operations
    }
    table = _section(README.read_text(encoding="utf-8"), "The API")
    listed = {
        f"{method} {_path_shape(path)}"
        for cell in _table_first_cells(table)
        for method, path in re.findall(r"`([A-Z]+) (/[^`]*)`", cell)
    }
    assert listed == routes


def test_variant_table_is_the_registry_and_matches_the_science_page():
    readme_rows = _variant_rows(_section(README.read_text(encoding="utf-8"), "Dropout variants"))
    science = (ROOT / "docs" / "science.md").read_text(encoding="utf-8")
    assert readme_rows == _variant_rows(science.split("\n## ")[0])
    assert [row[0].split()[0].strip("`") for row in readme_rows] == [v.name for v in REGISTRY]


def _variant_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return [row.strip("|").split(" | ") for row in rows]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_lead_to_a_file_and_heading(page: Path):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page.name} links to {broken}"
