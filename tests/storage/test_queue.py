"""Study queue rules: idempotency, ordering, targets, state changes, deletion."""

from __future__ import annotations

import os

import optuna
import pytest

from storage import queue


@pytest.fixture
def worker(engine) -> int:
    return queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())


def test_same_idempotency_key_returns_the_first_study_and_adds_no_row(engine):
    first = queue.submit_study(
        engine, name="a", spec={"x": 1}, target_trials=3, idempotency_key="k"
    )
    again = queue.submit_study(
        engine, name="b", spec={"x": 2}, target_trials=9, idempotency_key="k"
    )
    other = queue.submit_study(engine, name="a", spec={"x": 1}, target_trials=3)
    assert again == first
    assert other.id != first.id
    assert queue.count_studies(engine) == 2
    assert first.optuna_name == f"a-{first.id}"


def test_claims_take_highest_priority_then_oldest_and_stop_at_target(engine, worker):
    old = queue.submit_study(engine, name="old", spec={}, target_trials=1)
    new = queue.submit_study(engine, name="new", spec={}, target_trials=1)
    urgent = queue.submit_study(engine, name="urgent", spec={}, target_trials=2, priority=5)
    order = []
    while (record := queue.claim_trial_slot(engine, worker)) is not None:
        order.append(record.id)
    assert order == [urgent.id, urgent.id, old.id, new.id]
    claimed = queue.get_study(engine, urgent.id)
    assert (claimed.state, claimed.claimed) == ("running", 2)
    assert claimed.started_at is not None


def test_study_is_done_when_finished_reaches_target(engine, worker):
    record = queue.submit_study(engine, name="a", spec={}, target_trials=2)
    for _ in range(2):
        queue.claim_trial_slot(engine, worker)
        queue.finish_trial_slot(engine, record.id, worker_id=worker)
    final = queue.get_study(engine, record.id)
    assert (final.state, final.finished) == ("done", 2)
    assert final.finished_at is not None
    with pytest.raises(queue.IllegalStateChange):
        queue.finish_trial_slot(engine, record.id)  # no claimed slot left to count


def test_released_slot_is_claimed_again(engine, worker):
    record = queue.submit_study(engine, name="a", spec={}, target_trials=1)
    queue.claim_trial_slot(engine, worker)
    assert queue.claim_trial_slot(engine, worker) is None
    assert queue.release_trial_slot(engine, record.id, worker_id=worker).claimed == 0
    assert queue.claim_trial_slot(engine, worker).id == record.id
    queue.release_trial_slot(engine, record.id)
    with pytest.raises(queue.IllegalStateChange):
        queue.release_trial_slot(engine, record.id)


@pytest.mark.parametrize("end", ["cancel", "fail", "done"])
def test_finished_studies_cannot_be_cancelled_or_failed(engine, worker, end):
    record = queue.submit_study(engine, name="a", spec={}, target_trials=1)
    if end == "cancel":
        assert queue.cancel_study(engine, record.id).state == "cancelled"
    elif end == "fail":
        failed = queue.fail_study(engine, record.id, "data missing")
        assert (failed.state, failed.error) == ("failed", "data missing")
    else:
        queue.claim_trial_slot(engine, worker)
        queue.finish_trial_slot(engine, record.id, worker_id=worker)
    with pytest.raises(queue.IllegalStateChange):
        queue.cancel_study(engine, record.id)
    with pytest.raises(queue.IllegalStateChange):
        queue.fail_study(engine, record.id, "late")
    assert queue.claim_trial_slot(engine, worker) is None


def test_running_study_must_be_cancelled_before_delete(engine, worker, optuna_storage):
    record = queue.submit_study(engine, name="a", spec={}, target_trials=2)
    optuna.create_study(study_name=record.optuna_name, storage=optuna_storage)
    queue.claim_trial_slot(engine, worker)
    with pytest.raises(queue.IllegalStateChange):
        queue.delete_study(engine, record.id, optuna_storage)
    queue.cancel_study(engine, record.id)
    queue.delete_study(engine, record.id, optuna_storage)
    with pytest.raises(queue.StudyNotFound):
        queue.get_study(engine, record.id)
    with pytest.raises(KeyError):
        optuna_storage.get_study_id_from_name(record.optuna_name)


def test_missing_study_raises_study_not_found(engine):
    for call in (queue.get_study, queue.cancel_study, queue.delete_study):
        with pytest.raises(queue.StudyNotFound):
            call(engine, 404)


def test_list_and_count_page_by_state(engine, worker):
    ids = [queue.submit_study(engine, name=f"s{i}", spec={}, target_trials=1).id for i in range(5)]
    queue.cancel_study(engine, ids[0])
    assert [s.id for s in queue.list_studies(engine, limit=2, offset=1)] == [ids[3], ids[2]]
    assert [s.id for s in queue.list_studies(engine, state="cancelled")] == [ids[0]]
    assert queue.count_studies(engine, state="queued") == 4
    assert queue.set_test_score(engine, ids[1], 0.93).test_score == pytest.approx(0.93)


def test_unregistered_worker_cannot_claim_or_heartbeat(engine, worker):
    queue.submit_study(engine, name="a", spec={}, target_trials=1)
    queue.unregister_worker(engine, worker)
    with pytest.raises(queue.WorkerGone):
        queue.claim_trial_slot(engine, worker)
    with pytest.raises(queue.WorkerGone):
        queue.heartbeat(engine, worker)
