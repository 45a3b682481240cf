"""Slots of duplicate proposals: given back, never counted; a search ended early (end_search_early)
lets its in-flight trials finish and then ends; the reaper gives a dead worker's duplicate back."""

from __future__ import annotations

import os
import random
import threading

import optuna
import pytest

from storage import queue


def _workers(engine, n: int) -> list[int]:
    return [
        queue.register_worker(engine, host="h", device="cpu", pid=os.getpid()) for _ in range(n)
    ]


def test_ending_a_search_early_lets_in_flight_slots_finish_then_ends_it(engine):
    w1, w2, w3 = _workers(engine, 3)
    record = queue.submit_study(engine, name="early", spec={}, target_trials=10)
    for _ in range(2):
        queue.claim_trial_slot(engine, w1)
        queue.finish_trial_slot(engine, record.id, worker_id=w1)
    queue.claim_trial_slot(engine, w2)  # a trial still training elsewhere
    queue.claim_trial_slot(engine, w3)  # the duplicate that ends the search
    ended = queue.end_search_early(engine, record.id, worker_id=w3)
    assert (ended.state, ended.claimed, ended.finished, ended.target_trials) == ("running", 3, 2, 3)
    assert queue.claim_trial_slot(engine, w1) is None  # no new slot once ended
    done = queue.finish_trial_slot(engine, record.id, worker_id=w2)
    assert (done.state, done.finished) == ("done", 3) and done.finished_at is not None
    with pytest.raises(queue.IllegalStateChange):
        queue.end_search_early(engine, record.id)


def test_a_search_owing_replicates_ended_early_is_held_for_them(engine):
    (w1,) = _workers(engine, 1)
    record = queue.submit_study(
        engine, name="held", spec={}, target_trials=5, final_step="replicates"
    )
    queue.claim_trial_slot(engine, w1)
    queue.finish_trial_slot(engine, record.id, worker_id=w1)
    queue.claim_trial_slot(engine, w1)
    held = queue.end_search_early(engine, record.id, worker_id=w1)
    assert (held.state, held.finished, held.target_trials) == ("running", 1, 1)
    assert queue.extend_target(engine, record.id, 0).state == "done"


def test_duplicates_given_back_by_many_workers_never_overshoot_and_the_study_ends(engine):
    workers = _workers(engine, 6)
    record = queue.submit_study(engine, name="many", spec={}, target_trials=12)
    peak = []

    def serve(worker: int, seed: int) -> None:
        rng = random.Random(seed)
        while (slot := queue.claim_trial_slot(engine, worker)) is not None:
            peak.append(slot.claimed)
            if rng.random() < 0.6:  # a duplicate proposal: told, its slot given back
                queue.release_trial_slot(engine, record.id, worker_id=worker)
            else:
                queue.finish_trial_slot(engine, record.id, worker_id=worker)

    threads = [threading.Thread(target=serve, args=(w, i)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done = queue.get_study(engine, record.id)
    assert (done.state, done.finished, done.claimed) == ("done", 12, 12)
    assert max(peak) <= 12


def test_the_reaper_gives_back_a_dead_workers_duplicate_and_counts_a_trained_trial(
    engine, optuna_storage
):
    record = queue.submit_study(engine, name="reap", spec={}, target_trials=5)
    study = optuna.create_study(storage=optuna_storage, study_name=record.optuna_name)
    dup_worker, trained_worker = _workers(engine, 2)
    for worker, attrs in ((dup_worker, {"duplicate_of": 0}), (trained_worker, {})):
        queue.claim_trial_slot(engine, worker)
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 0.5)  # told, then the worker died before settling its slot
        queue.heartbeat(engine, worker, record.id, trial_id=trial._trial_id, trial_number=0)
    reaped = queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0)
    assert sorted(reaped) == sorted([dup_worker, trained_worker])
    after = queue.get_study(engine, record.id)
    assert (after.claimed, after.finished) == (1, 1)
