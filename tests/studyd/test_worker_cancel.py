"""Cancelling a study stops the trials already training on it, within about one epoch."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.service import submit_spec
from studyd.spec import load_spec
from studyd.worker import Worker, WorkerOptions


@pytest.fixture
def backend(sqlite_url, tmp_path):
    ensure_schema(sqlite_url)
    engine = make_engine(sqlite_url)
    yield engine, make_optuna_storage(sqlite_url)
    engine.dispose()


def test_cancelling_a_study_fails_its_training_trial_and_the_worker_serves_on(backend, tmp_path):
    engine, storage = backend
    long = load_spec(
        "name: long\nmodel: {width: 256}\ndropout: {variants: [standard]}\n"
        "training: {epochs: 500, batch_size: 16}\nsearch: {n_trials: 3, pruner: none}"
    )
    record = submit_spec(engine, storage, long)
    options = WorkerOptions(
        data_dir=tmp_path, device="cpu", once=False, heartbeat=0.2, grace=30, poll=0.05
    )
    worker = Worker(engine, storage, options)
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
        assert trial.user_attrs["error"] == "study cancelled mid-trial"
        assert len(trial.intermediate_values) < 500
        assert stopped_after < 10, f"trial kept training {stopped_after:.1f} s after the cancel"
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
