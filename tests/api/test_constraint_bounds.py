"""Issue 27 item 3: a constraint's bound is stored and enforced exactly; repeats are refused.

The spec wrote bounds with `{:g}` (six digits): `param_count <= 1234567` was stored and enforced as
1234570, `gap <= 0.05000001` became `gap <= 0.05`, and constraints that rounded to one text gave
identical CSV columns and one dict key.
"""

from __future__ import annotations

from typing import Any

import pytest
from inprocess_app import study_count
from serve_harness import in_process_api

from studyd.daemon.records import constraint_values
from studyd.spec import validate_spec


def spec_with(constraints: list[str]) -> dict[str, Any]:
    return {
        "name": "bounds",
        "dropout": {"variants": ["standard"], "placements": ["hidden"]},
        "training": {"epochs": 1},
        "search": {"n_trials": 2, "constraints": constraints},
    }


def test_bounds_are_stored_and_enforced_exactly(db_url):
    written = ["param_count <= 1234567", "gap <= 0.05000001", "gap <= 0.05", "val_acc >= 1e-7"]
    with in_process_api(db_url) as api:
        client = api.client
        created = client.post("/studies", json=spec_with(written))
        assert created.status_code == 201, created.text
        stored = client.get(f"/studies/{created.json()['id']}").json()["spec"]
    texts = stored["search"]["constraints"]
    assert texts == [
        "param_count <= 1234567",
        "gap <= 0.05000001",
        "gap <= 0.05",
        "val_acc >= 1e-07",
    ]
    # The worker reads the stored spec back and scores each trial's metrics against it.
    search = validate_spec(stored).search
    assert search.constraints == texts
    over = constraint_values(search.constraints, {"param_count": 1234568, "gap": 0.05000001})
    assert over["param_count <= 1234567"] == 1  # rounded to 1234570 it was feasible (-2)
    assert over["gap <= 0.05000001"] <= 0
    assert over["gap <= 0.05"] > 0


def test_bounds_written_exactly_before_keep_their_text():
    # A spec stored before the fix was normalised with {:g}; its trials' constraint values are
    # named by that text, so reading it back must not rename them.
    kept = ["gap <= 0.05", "param_count <= 1e+06", "val_acc >= 0.9", "param_count <= 1.23457e+06"]
    assert validate_spec(spec_with(kept)).search.constraints == kept


@pytest.mark.parametrize(
    "repeated",
    [
        ["gap <= 0.05", "gap <= 0.05"],
        ["gap <= 0.05", "gap<=5e-2"],
        ["param_count <= 1000000", "val_acc >= 0.5", "param_count <= 1e6"],
    ],
)
def test_constraints_that_say_the_same_are_refused(db_url, repeated):
    with in_process_api(db_url) as api:
        client = api.client
        before = study_count(client)
        response = client.post("/studies", json=spec_with(repeated))
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["detail"].startswith("search.constraints: "), body
        assert "list each constraint once" in body["detail"]
        assert study_count(client) == before
