"""Lease settling by the reaper in-process: zombies, told-but-uncounted trials, orphans."""

from __future__ import annotations

import os
import time

import optuna
import pytest
from optuna.trial import TrialState

from storage import queue


def _running_trial(engine, optuna_storage, target=2):
    record = queue.submit_study(engine, name="lease", spec={}, target_trials=target)
    study = optuna.create_study(study_name=record.optuna_name, storage=optuna_storage)
    worker = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
    assert queue.claim_trial_slot(engine, worker).id == record.id
    trial = study.ask()
    trial.suggest_int("width", 64, 1024)
    queue.heartbeat(engine, worker, record.id, trial._trial_id, trial.number)
    return record, study, worker, trial


def test_zombie_worker_cannot_count_its_slot_after_being_reaped(engine, optuna_storage):
    record, study, worker, trial = _running_trial(engine, optuna_storage)
    time.sleep(0.05)
    assert queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0.01) == [worker]
    with pytest.raises(queue.WorkerGone):
        queue.heartbeat(engine, worker)
    with pytest.raises(queue.WorkerGone):
        queue.finish_trial_slot(engine, record.id, worker_id=worker)
    with pytest.raises(ValueError, match="FAIL"):  # Optuna refuses a FAILed trial's result
        study.tell(trial, 0.9)
    after = queue.get_study(engine, record.id)
    assert (after.claimed, after.finished) == (0, 0)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["retry_of"] for t in waiting] == [trial.number]


def test_retry_of_a_retry_is_not_enqueued(engine, optuna_storage):
    record, study, worker, trial = _running_trial(engine, optuna_storage)
    time.sleep(0.05)
    queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0.01)
    second = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
    queue.claim_trial_slot(engine, second)
    retry = study.ask()
    assert retry.user_attrs["retry_of"] == trial.number
    queue.heartbeat(engine, second, record.id, retry._trial_id, retry.number)
    time.sleep(0.05)
    assert queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0.01) == [second]
    assert study.get_trials(states=(TrialState.WAITING,)) == []
    assert queue.get_study(engine, record.id).claimed == 0


def test_trial_told_but_not_counted_is_counted_by_the_reaper(engine, optuna_storage):
    record, study, worker, trial = _running_trial(engine, optuna_storage, target=1)
    study.tell(trial, 0.8)
    time.sleep(0.05)
    queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0.01)
    after = queue.get_study(engine, record.id)
    assert (after.claimed, after.finished, after.state) == (1, 1, "done")
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_running_trial_with_no_worker_row_is_failed_after_grace(engine, optuna_storage):
    record, study, worker, trial = _running_trial(engine, optuna_storage)
    queue.unregister_worker(engine, worker)  # gives the slot back, leaves the trial RUNNING
    assert queue.get_study(engine, record.id).claimed == 0
    queue.reap_stale_workers(engine, optuna_storage, grace_seconds=60)
    assert study.trials[0].state == TrialState.RUNNING  # too young to call orphaned
    time.sleep(1.1)  # Optuna's datetime_start has microseconds; grace below is 1 s
    queue.reap_stale_workers(engine, optuna_storage, grace_seconds=1)
    assert study.trials[0].state == TrialState.FAIL
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_live_worker_is_not_reaped(engine, optuna_storage):
    record, study, worker, trial = _running_trial(engine, optuna_storage)
    assert queue.reap_stale_workers(engine, optuna_storage, grace_seconds=30) == []
    assert study.trials[0].state == TrialState.RUNNING
    assert [w.trial_number for w in queue.list_workers(engine, alive_within=30)] == [trial.number]
