"""A search held at its target, then extended by its seed replicates (hold_at, extend_target)."""

from __future__ import annotations

import os

import optuna
import pytest

from storage import queue


@pytest.fixture
def worker(engine) -> int:
    return queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())


def _run_slots(engine, worker, study_id, n, hold_at=None):
    for _ in range(n):
        assert queue.claim_trial_slot(engine, worker).id == study_id
        after = queue.finish_trial_slot(engine, study_id, worker_id=worker, hold_at=hold_at)
    return after


def test_a_held_search_stays_running_until_its_replicates_finish(engine, worker):
    record = queue.submit_study(engine, name="r", spec={}, target_trials=2)
    held = _run_slots(engine, worker, record.id, 2, hold_at=2)
    assert (held.state, held.finished, held.target_trials) == ("running", 2, 2)
    assert queue.claim_trial_slot(engine, worker) is None  # nothing to claim until extended
    extended = queue.extend_target(engine, record.id, 3)
    assert (extended.state, extended.target_trials) == ("running", 5)
    # hold_at no longer matches the target: the last replicate ends the study.
    done = _run_slots(engine, worker, record.id, 3, hold_at=2)
    assert (done.state, done.finished, done.target_trials) == ("done", 5, 5)
    assert queue.claim_trial_slot(engine, worker) is None
    with pytest.raises(queue.IllegalStateChange):
        queue.extend_target(engine, record.id, 1)


def test_extending_by_zero_ends_a_held_search(engine, worker):
    record = queue.submit_study(engine, name="r0", spec={}, target_trials=1)
    _run_slots(engine, worker, record.id, 1, hold_at=1)
    ended = queue.extend_target(engine, record.id, 0)
    assert (ended.state, ended.finished) == ("done", 1) and ended.finished_at is not None


def test_a_reaped_replicate_is_retried_with_its_seed(engine, worker, optuna_storage):
    record = queue.submit_study(engine, name="rr", spec={}, target_trials=1)
    study = optuna.create_study(storage=optuna_storage, study_name=record.optuna_name)
    study.enqueue_trial({"x": 1.0}, user_attrs={"replicate_of": 0, "replicate_seed": 3})
    queue.claim_trial_slot(engine, worker)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    queue.heartbeat(engine, worker, record.id, trial_id=trial._trial_id, trial_number=0)
    assert queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0) == [worker]
    retry = study.get_trials(states=(optuna.trial.TrialState.WAITING,))[0]
    assert retry.user_attrs == {"retry_of": 0, "replicate_of": 0, "replicate_seed": 3}
