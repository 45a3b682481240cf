"""The study finaliser: replicates and the test score happen exactly once, whoever settled the
last slot (the worker that trained it, a worker that died right after, or the reaper)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import optuna
import pytest

from models.data import load_dataset
from storage import queue
from studyd.daemon.records import config_attrs
from studyd.daemon.runs import trial_config
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec

SPEC = """
name: final
dataset: digits
model: {depth: 1, width: 8}
dropout: {variants: [standard], rate: 0.2}
training: {epochs: 2, batch_size: 64}
search: {sampler: random, pruner: none, n_trials: 1}
repeats: %d
"""


def _options(tmp_path) -> WorkerOptions:
    return WorkerOptions(
        device="cpu", once=True, heartbeat=0.2, grace=30, poll=0.05, data_dir=tmp_path
    )


def _last_trial_told_by_a_worker_that_then_dies(engine, storage, record, tmp_path, *, counted):
    """What a worker does for the last search trial up to its tell (and its finish when
    `counted`), then nothing: it died. Its row is left for the reaper."""
    spec = load_spec(SPEC % record.spec["repeats"])
    worker_id = queue.register_worker(engine, host="dead", device="cpu", pid=1)
    assert queue.claim_trial_slot(engine, worker_id).id == record.id
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    trial = study.ask()
    queue.heartbeat(engine, worker_id, record.id, trial_id=trial._trial_id, trial_number=0)
    data = load_dataset("digits", data_dir=tmp_path)
    model_cfg, train_cfg = trial_config(trial, spec, data)
    for key, value in config_attrs(model_cfg, train_cfg, "digits").items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.9)
    if counted:
        queue.finish_trial_slot(engine, record.id, worker_id=worker_id, hold_at=1)
    return worker_id


def _run_worker(engine, storage, tmp_path, timeout: float) -> Worker:
    worker = Worker(engine, storage, _options(tmp_path))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        pytest.fail(f"the worker was still serving after {timeout}s: the study never ended")
    return worker


@pytest.mark.parametrize("settled_by", ["dying worker", "reaper"])
def test_a_search_whose_last_slot_was_settled_without_its_replicates_gets_them_once(
    backend, tmp_path, settled_by
):
    engine, storage = backend
    record = submit_spec(engine, storage, load_spec(SPEC % 2))
    _last_trial_told_by_a_worker_that_then_dies(
        engine, storage, record, tmp_path, counted=settled_by == "dying worker"
    )
    queue.reap_stale_workers(engine, storage, grace_seconds=0)
    held = queue.get_study(engine, record.id)
    assert held.state == "running" and held.finished == held.target_trials == 1

    _run_worker(engine, storage, tmp_path, timeout=60)
    done = queue.get_study(engine, record.id)
    assert done.state == "done" and done.finished == done.claimed == done.target_trials == 3
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    replicates = sorted(t.user_attrs["replicate_seed"] for t in study.trials[1:])
    assert [t.user_attrs.get("replicate_of") for t in study.trials[1:]] == [0, 0]
    assert replicates == [1, 2] and done.test_score is not None


def test_the_test_score_retraining_is_timed_after_the_study_is_done(backend, tmp_path):
    engine, storage = backend
    record = submit_spec(engine, storage, load_spec(SPEC % 0))
    _run_worker(engine, storage, tmp_path, timeout=60)
    scored = queue.get_study(engine, record.id)
    assert scored.state == "done" and scored.test_score is not None
    assert scored.test_score_seconds is not None and scored.test_score_seconds > 0
    # `done` (finished_at) came first; the retraining ran between it and the score's record.
    after_done = (scored.test_scored_at - scored.finished_at).total_seconds()
    assert after_done >= scored.test_score_seconds - 0.05, (after_done, scored)


@pytest.mark.slow
@pytest.mark.process
def test_a_study_the_reaper_ended_is_scored_exactly_once_by_two_worker_processes(
    backend, db_url, tmp_path
):
    engine, storage = backend
    record = submit_spec(engine, storage, load_spec(SPEC % 0))
    _last_trial_told_by_a_worker_that_then_dies(engine, storage, record, tmp_path, counted=False)
    queue.reap_stale_workers(engine, storage, grace_seconds=0)
    ended = queue.get_study(engine, record.id)
    assert ended.state == "done" and ended.finished == 1 and ended.test_score is None

    env = {**os.environ, "STUDYD_DATA_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("STUDYD_DATABASE_URL", None)
    command = [sys.executable, "-m", "studyd.cli.main", "worker", "--database-url", db_url]
    command += ["--device", "cpu", "--once", "--poll", "0.2", "--heartbeat", "0.5"]
    start = time.monotonic()
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    logs = [w.communicate(timeout=120)[0].decode(errors="replace") for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    scored = queue.get_study(engine, record.id)
    assert scored.test_score is not None, logs
    assert sum(log.count("on test") for log in logs) == 1, logs
    print(f"stranded study scored {time.monotonic() - start:.1f} s after two workers started")
