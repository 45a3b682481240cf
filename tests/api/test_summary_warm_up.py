"""The API imports what a summary needs (SciPy, scikit-learn) in the background as it starts.

Cold, the first summary paid that import inside its request: ~1 s idle, over the 10 s read
timeout of a client on a loaded 2-core machine (the stateful fuzz run saw it). The check runs in
a fresh interpreter, where nothing has imported those modules yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from api_harness import submit
from serve_harness import REPO, clean_env

from api.context import SUMMARY_MODULES

PROGRAM = """
import json
import sys
from fastapi.testclient import TestClient
from api.app import create_app
from api.context import SUMMARY_MODULES
from storage import migrate
from studyd.settings import Settings

migrate.ensure_schema(sys.argv[1])  # as `studyd serve` does before the app
app = create_app(Settings(database_url=sys.argv[1]))
before = [m for m in SUMMARY_MODULES if m in sys.modules]
with TestClient(app) as client:
    app.state.warm_summary.join(timeout=120)
    after = [m for m in SUMMARY_MODULES if m in sys.modules]
    study = client.post("/studies", json={
        "name": "warm", "dropout": {"variants": ["standard"], "placements": ["hidden"]},
        "training": {"epochs": 1}, "search": {"n_trials": 2},
    }).json()
    summary = client.get(f"/studies/{study['id']}/summary")
print(json.dumps({"before": before, "after": after, "scipy": "scipy.stats" in sys.modules,
                  "status": summary.status_code}))
"""


@pytest.mark.process
def test_the_summarys_modules_are_imported_at_start_not_by_the_first_summary(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, url],
        capture_output=True, text=True, timeout=300, env=clean_env(), cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["before"] == [], "creating the app must not import them (it starts small)"
    assert seen["after"] == list(SUMMARY_MODULES)
    assert seen["scipy"] is True
    assert seen["status"] == 200


def test_the_in_process_app_runs_its_lifespan_warm_up_included(api):
    """The API tests' app (tests/api/conftest.py) is started as `studyd serve` starts it."""
    warm = api.app.state.warm_summary  # set by the lifespan only
    warm.join(timeout=120)
    assert not warm.is_alive()
    assert set(SUMMARY_MODULES) <= set(sys.modules)
    assert api.client.get(f"/studies/{submit(api)['id']}/summary").status_code == 200
