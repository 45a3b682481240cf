"""GET /studies/{id}/summary of a `repeats: {auto: true}` study (TestClient over a real SQLite
file): its verdict ends with the seeds each undecided comparison still needs; a fixed `repeats:`
study's verdict over the same trials does not."""

from __future__ import annotations

import pytest
from api_harness import in_process_api
from replicated_studies import add_to_study, replicated_trials, spec

# Paired differences all exactly 1 point: no spread, so the sequence decides nothing.
MEANS = {"standard": 0.70, "none": 0.69}


@pytest.fixture
def client(tmp_path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    with in_process_api(url) as app:
        yield app.client, url


def _verdict(client, repeats) -> str:
    api, url = client
    body = {**spec("auto", "digits", list(MEANS)), "repeats": repeats}
    created = api.post("/studies", json=body)
    assert created.status_code == 201, created.text
    add_to_study(url, created.json()["optuna_name"], replicated_trials(MEANS, seeds=5))
    summary = api.get(f"/studies/{created.json()['id']}/summary")
    assert summary.status_code == 200, summary.text
    return summary.json()["verdict"]


def test_an_auto_study_says_what_is_undecided(client):
    verdict = _verdict(client, {"auto": True, "max_seeds": 5})
    assert verdict.endswith(
        "Undecided — standard vs none (5 seeds, +1.0 points so far): more seeds than are sensible."
    )


def test_a_fixed_repeats_study_keeps_its_verdict(client):
    assert "Undecided" not in _verdict(client, 5)


def test_an_auto_form_that_is_wrong_is_a_422_naming_the_field(client):
    api, _ = client
    body = {**spec("auto", "digits", list(MEANS)), "repeats": {"auto": True, "max_seeds": 500}}
    refused = api.post("/studies", json=body)
    assert refused.status_code == 422 and "repeats.max_seeds" in refused.text
