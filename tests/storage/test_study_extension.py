"""A done or cancelled study reopened with more slots (storage.study_extension)."""

from __future__ import annotations

import os

import pytest

from storage import final_steps, queue
from storage.study_extension import extend_finished_study


@pytest.fixture
def worker(engine) -> int:
    return queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())


def _run(engine, worker, study_id: int, n: int) -> queue.StudyRecord:
    for _ in range(n):
        assert queue.claim_trial_slot(engine, worker).id == study_id
        after = queue.finish_trial_slot(engine, study_id, worker_id=worker)
    return after


def _scored(engine, worker, study_id: int) -> None:
    [owed] = final_steps.owed_steps(engine)
    assert (owed.study_id, owed.step) == (study_id, "score")
    assert final_steps.claim_step(engine, owed, worker)
    assert final_steps.record_score(engine, study_id, worker, 0.91, seconds=2.0)


def test_a_done_study_runs_n_more_slots_and_owes_its_score_again(engine, worker):
    record = queue.submit_study(engine, name="x", spec={}, target_trials=2, final_step="score")
    assert _run(engine, worker, record.id, 2).state == "done"
    _scored(engine, worker, record.id)
    extended = extend_finished_study(engine, record.id, 3, replicates=False)
    assert (extended.state, extended.target_trials, extended.finished) == ("queued", 5, 2)
    assert extended.test_score is None and extended.test_scored_at is None
    assert extended.started_at is None and extended.finished_at is None
    assert final_steps.owed_steps(engine) == []  # the score is owed once done, not before
    claimed = queue.claim_trial_slot(engine, worker)
    assert (claimed.id, claimed.state) == (record.id, "running")
    queue.finish_trial_slot(engine, record.id, worker_id=worker)
    done = _run(engine, worker, record.id, 2)
    assert (done.state, done.finished, done.target_trials) == ("done", 5, 5)
    assert queue.claim_trial_slot(engine, worker) is None  # never past the new target
    _scored(engine, worker, record.id)
    assert queue.get_study(engine, record.id).test_score == 0.91


def test_a_study_cancelled_before_its_replicates_still_owes_them(engine, worker):
    record = queue.submit_study(engine, name="r", spec={}, target_trials=4, final_step="replicates")
    _run(engine, worker, record.id, 1)
    queue.cancel_study(engine, record.id)
    extended = extend_finished_study(engine, record.id, 2, replicates=True)
    assert (extended.state, extended.target_trials) == ("queued", 3)
    held = _run(engine, worker, record.id, 2)
    assert held.state == "running"  # held at its target until the replicates are opened
    assert [s.step for s in final_steps.owed_steps(engine)] == ["replicates"]


@pytest.mark.parametrize("state", ["queued", "running", "failed"])
def test_only_a_done_or_cancelled_study_is_extended(engine, worker, state):
    record = queue.submit_study(engine, name="s", spec={}, target_trials=3)
    if state == "running":
        _run(engine, worker, record.id, 1)
    if state == "failed":
        queue.fail_study(engine, record.id, "boom")
    with pytest.raises(queue.IllegalStateChange, match=f"is {state}|has failed"):
        extend_finished_study(engine, record.id, 1, replicates=False)
    with pytest.raises(ValueError, match="extra"):
        extend_finished_study(engine, record.id, 0, replicates=False)
    with pytest.raises(queue.StudyNotFound):
        extend_finished_study(engine, record.id + 100, 1, replicates=False)


def test_a_cancelled_study_with_trials_still_settling_is_refused_until_they_settle(engine, worker):
    record = queue.submit_study(engine, name="c", spec={}, target_trials=3)
    assert queue.claim_trial_slot(engine, worker).id == record.id
    queue.cancel_study(engine, record.id)
    with pytest.raises(queue.IllegalStateChange, match="1 trial\\(s\\) settling"):
        extend_finished_study(engine, record.id, 2, replicates=False)
    queue.release_trial_slot(engine, record.id, worker_id=worker)
    assert extend_finished_study(engine, record.id, 2, replicates=False).target_trials == 2
