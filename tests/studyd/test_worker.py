"""The worker loop in-process: multi-objective studies, a result the reaper already failed, and
cancelling a study mid-trial."""

from __future__ import annotations

import threading
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from storage import queue
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec


def _options(tmp_path, **kw) -> WorkerOptions:
    base = {"device": "cpu", "once": True, "heartbeat": 0.2, "grace": 30, "poll": 0.05}
    return WorkerOptions(data_dir=tmp_path, **{**base, **kw})


def test_multi_objective_study_records_every_objective_and_a_test_score(sqlite_backend, tmp_path):
    engine, storage = sqlite_backend
    spec = load_spec(
        "name: mo\nmodel: {width: [4, 32]}\ntraining: {epochs: 2}\n"
        "search: {objectives: [val_acc, param_count], pruner: none, n_trials: 4}"
    )
    record = submit_spec(engine, storage, spec)
    assert Worker(engine, storage, _options(tmp_path)).run() == 4
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.values == [trial.user_attrs["val_acc"], trial.user_attrs["param_count"]]
    done = queue.get_study(engine, record.id)
    assert done.state == "done" and done.test_score is not None
    assert study.user_attrs["test_trial"] in {t.number for t in study.best_trials}


def test_a_spent_time_budget_ends_the_study_early_with_a_test_score(sqlite_backend, tmp_path):
    engine, storage = sqlite_backend
    spec = load_spec(
        "name: budget\nmodel: {width: 8}\ntraining: {epochs: 2}\n"
        "search: {n_trials: 5000, timeout: 4, pruner: none}"
    )
    record = submit_spec(engine, storage, spec)
    ran = Worker(engine, storage, _options(tmp_path)).run()
    ended = queue.get_study(engine, record.id)
    # The clock starts at the first claim, before the data load: a loaded machine gets few trials.
    assert ended.state == "done" and 1 <= ended.finished == ran < 5000
    assert ended.claimed == ended.finished and ended.test_score is not None
    assert (ended.finished_at - ended.started_at).total_seconds() < 4 + 30


def test_a_result_told_after_the_reaper_failed_the_trial_is_dropped(sqlite_backend, tmp_path):
    engine, storage = sqlite_backend
    spec = load_spec(
        "name: late\nmodel: {width: 256}\ndropout: {variants: [standard]}\n"
        "training: {epochs: 200, batch_size: 16}\nsearch: {n_trials: 2, pruner: none}"
    )
    record = submit_spec(engine, storage, spec)
    # One trial per slot: the reaper's view of one worker row (test_worker_batch has stacks).
    worker = Worker(engine, storage, _options(tmp_path, batch_trials=1))
    thread = threading.Thread(target=worker.run)
    thread.start()

    def training_trial():
        rows = [w for w in queue.list_workers(engine) if w.trial_id is not None]
        if rows and storage.get_trial(rows[0].trial_id).intermediate_values:
            return rows[0]
        return None

    deadline = threading.Event()
    for _ in range(600):
        row = training_trial()
        if row is not None:
            break
        deadline.wait(0.1)
    assert row is not None, "the worker never started training"
    # Everyone looks stale with a negative grace (a zero grace raced the heartbeat thread: its
    # time is taken before it waits for SQLite's lock, so a beat written while the reaper waited
    # could be newer than the reaper's cut-off): the reaper fails the trial, settles its slot.
    reaped = queue.reap_stale_workers(engine, storage, grace_seconds=-1)
    if reaped != [row.id]:
        worker.stop()  # not left training into the next test (it shares torch's global RNG)
    assert reaped == [row.id]
    thread.join(60)
    assert not thread.is_alive() and worker.gone

    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    states = Counter(t.state for t in study.trials)
    assert states == {TrialState.FAIL: 1, TrialState.WAITING: 1}  # the trial, and its one retry
    assert study.trials[1].user_attrs["retry_of"] == row.trial_number
    after = queue.get_study(engine, record.id)
    assert after.claimed == after.finished == 0


# Cancelling a study stops the trials already training on it within 5 s (FAIL, `cancelled: …`).
def test_cancelling_a_study_fails_its_training_trial_and_the_worker_serves_on(
    sqlite_backend, tmp_path
):
    engine, storage = sqlite_backend
    long = load_spec(
        "name: long\nmodel: {width: 256}\ndropout: {variants: [standard]}\n"
        "training: {epochs: 500, batch_size: 16}\nsearch: {n_trials: 3, pruner: none}"
    )
    record = submit_spec(engine, storage, long)
    worker = Worker(engine, storage, _options(tmp_path, once=False))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        study = optuna.load_study(study_name=record.optuna_name, storage=storage)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if running and running[0].intermediate_values:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the worker never started training")
        queue.cancel_study(engine, record.id)
        cancelled_at = time.monotonic()
        while time.monotonic() - cancelled_at < 30:
            trial = study.get_trials(deepcopy=False)[0]
            if trial.state != TrialState.RUNNING:
                break
            time.sleep(0.05)
        stopped_after = time.monotonic() - cancelled_at
        trial = study.get_trials(deepcopy=False)[0]
        assert trial.state == TrialState.FAIL, trial.state
        assert trial.user_attrs["error"].startswith("cancelled: ")
        assert len(trial.intermediate_values) < 500
        assert stopped_after < 5, f"trial kept training {stopped_after:.1f} s after the cancel"
        ended = queue.get_study(engine, record.id)
        assert ended.state == "cancelled" and ended.finished == 0
        # The worker is still alive and serves the next study.
        short = load_spec(
            "name: next\nmodel: {width: 8}\ntraining: {epochs: 1}\nsearch: {n_trials: 2}"
        )
        nxt = submit_spec(engine, storage, short)
        deadline = time.monotonic() + 120
        while queue.get_study(engine, nxt.id).state != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue.get_study(engine, nxt.id).state == "done"
        assert thread.is_alive()
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()
