"""POST /studies/{id}/extend in-process (TestClient over a real SQLite file)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from api_harness import in_process_api
from fastapi.testclient import TestClient

from storage import final_steps, queue
from storage.engine import make_engine

SPEC = {
    "name": "ext",
    "dataset": "digits",
    "dropout": {"variants": ["standard", "none"]},
    "training": {"epochs": 1},
    "search": {"n_trials": 2},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[TestClient, object]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('extend') / 'studyd.db'}"
    with in_process_api(url) as app:
        engine = make_engine(url)
        yield app.client, engine
        engine.dispose()


def _finished(api, *, cancel: bool = False) -> int:
    """A submitted study whose slots a worker settled (or that was cancelled)."""
    client, engine = api
    study = client.post("/studies", json=SPEC).json()
    if cancel:
        client.post(f"/studies/{study['id']}/cancel")
        return study["id"]
    worker = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
    for _ in range(study["target_trials"]):
        queue.claim_trial_slot(engine, worker, study_id=study["id"])
        queue.finish_trial_slot(engine, study["id"], worker_id=worker)
    queue.unregister_worker(engine, worker)
    return study["id"]


@pytest.mark.parametrize("cancel", [False, True])
def test_a_finished_study_is_queued_again_with_n_more_trials(api, cancel):
    client, _ = api
    study_id = _finished(api, cancel=cancel)
    before = client.get(f"/studies/{study_id}").json()
    assert before["state"] == ("cancelled" if cancel else "done")
    response = client.post(f"/studies/{study_id}/extend", json={"trials": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "queued" and body["test_score"] is None
    assert body["target_trials"] == before["finished"] + 3
    again = client.post(f"/studies/{study_id}/extend", json={"trials": 3})
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"study {study_id} is queued; only a done or cancelled study can be extended"
    )


def test_bad_extensions_are_refused_with_the_field(api):
    client, _ = api
    study_id = _finished(api)
    for body in ({"trials": 0}, {"trials": "3"}, {}, {"trials": 2, "more": 1}):
        refused = client.post(f"/studies/{study_id}/extend", json=body)
        assert refused.status_code == 422, body
        assert refused.json()["detail"].startswith("trials" if "more" not in body else "more")
    assert client.post("/studies/99999/extend", json={"trials": 1}).status_code == 404


def _slots(engine, worker: int, study_id: int, n: int) -> queue.StudyRecord:
    for _ in range(n):
        queue.claim_trial_slot(engine, worker, study_id=study_id)
        after = queue.finish_trial_slot(engine, study_id, worker_id=worker)
    return after


def _owed(engine, study_id: int) -> list[final_steps.OwedStep]:
    """The study's owed steps (the module's other studies owe their scores)."""
    return [o for o in final_steps.owed_steps(engine) if o.study_id == study_id]


def test_a_study_whose_replicates_ran_owes_them_again_after_its_extension(api):
    client, engine = api
    study = client.post("/studies", json={**SPEC, "name": "rep", "repeats": 2}).json()
    worker = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
    assert _slots(engine, worker, study["id"], 2).state == "running"  # held for its replicates
    [owed] = _owed(engine, study["id"])
    assert final_steps.claim_step(engine, owed, worker)
    final_steps.open_replicates(engine, study["id"], worker, 4)
    assert _slots(engine, worker, study["id"], 4).state == "done"
    extended = client.post(f"/studies/{study['id']}/extend", json={"trials": 1}).json()
    assert (extended["state"], extended["target_trials"]) == ("queued", 7)
    # The extension's search is held at its target: the new leader's replicates come first.
    assert _slots(engine, worker, study["id"], 1).state == "running"
    assert [o.step for o in _owed(engine, study["id"])] == ["replicates"]
    queue.unregister_worker(engine, worker)
