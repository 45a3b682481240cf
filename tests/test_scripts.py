"""scripts/setup and scripts/test, run on a copy of the repository's files with a fake venv whose
`python` and `ruff` only write down how they were called (nothing is installed anywhere)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The example model plugin, installed beside the project (docs/plugins.md).
PLUGIN = "examples/plugins/studyd-resnet1d/pyproject.toml"
FAKE_TOOL = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0") $*" >> "$(dirname "$0")/../calls.log"\n'


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """scripts/, pyproject.toml and constraints.txt, beside a .venv of fake tools."""
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    for name in ("pyproject.toml", "constraints.txt", PLUGIN):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "ruff"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def run(checkout: Path, script: str, *args: str) -> list[str]:
    """Run scripts/`script`; the fake tools' calls it made, one line each."""
    log = checkout / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run([str(checkout / "scripts" / script), *args], check=True, timeout=60)
    return log.read_text().splitlines() if log.exists() else []


def installs(calls: list[str]) -> int:
    """How many times the project was installed (each time with the plugin after it)."""
    project = sum(" -e .[test]" in call for call in calls)
    plugin = sum(" -e examples/plugins/" in call for call in calls)
    assert project == plugin
    return project


def test_setup_installs_once_then_only_when_pyproject_or_constraints_change(checkout: Path):
    assert installs(run(checkout, "setup")) == 1
    assert run(checkout, "setup") == []  # warm: pip is not even started
    with (checkout / "constraints.txt").open("a") as fh:
        fh.write("# a new pin\n")
    assert installs(run(checkout, "setup")) == 1
    assert run(checkout, "setup") == []
    with (checkout / "pyproject.toml").open("a") as fh:
        fh.write("\n# a new dependency\n")
    assert installs(run(checkout, "setup")) == 1
    with (checkout / PLUGIN).open("a") as fh:
        fh.write("\n# the plugin's new dependency\n")
    assert installs(run(checkout, "setup")) == 1


def test_fast_selects_the_fast_markers_runs_ruff_and_passes_the_rest_to_pytest(checkout: Path):
    run(checkout, "setup")
    calls = run(checkout, "test", "--fast", "tests/api", "-x")
    assert calls[0] == "ruff check ."
    pytest_call = calls[1]
    assert "-m not slow and not process and not postgres and not browser" in pytest_call
    assert pytest_call.endswith("tests/api -x")
    everything = run(checkout, "test", "-k", "routes")[1]
    assert "not slow" not in everything and everything.endswith("-k routes")
