"""A trained trial whose tell the database refuses past the grace period is FAILed with one retry
before its slot goes back, so the study runs the retry: on the stack path and the single-trial
path alike. Left RUNNING, it waited for the reaper's orphan pass, and a study that reached its
target meanwhile kept the retry WAITING for good (CI saw it through a killed gRPC proxy)."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec

SPEC = (
    "name: settle\nmodel: {depth: 1, width: 16}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 2, lr: 0.01}\n"
    "search: {sampler: random, pruner: none, n_trials: 4, seed: 0}"
)
WHY = "the database was unreachable mid-trial"


class RefusedTells:
    """Optuna's storage refusing every COMPLETE tell of the first trial told (an outage that
    outlasts the worker's patience for that trial); every other write goes through."""

    def __init__(self, storage) -> None:
        self.real = storage.set_trial_state_values
        self.victim: int | None = None
        self.refused = 0

    def __call__(self, trial_id, state, values=None):
        if state == TrialState.COMPLETE and self.victim in (None, trial_id):
            self.victim = trial_id
            self.refused += 1
            raise OperationalError("UPDATE trials", {}, Exception("server closed the connection"))
        return self.real(trial_id, state, values)


@pytest.mark.parametrize("batch_trials", ["auto", 1])
def test_a_trial_whose_tell_is_refused_is_failed_and_its_retry_runs(tmp_path, batch_trials):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    ensure_schema(url)
    engine, storage = make_engine(url), make_optuna_storage(url)
    record = submit_spec(engine, storage, load_spec(SPEC))
    refused = RefusedTells(storage)
    storage.set_trial_state_values = refused
    options = WorkerOptions(
        device="cpu", once=True, heartbeat=0.5, grace=3, poll=0.05, data_dir=tmp_path
    )
    options.batch_trials = batch_trials
    Worker(engine, storage, options).run()

    assert refused.refused >= 2  # the worker was patient, then gave up on that tell
    trials = optuna.load_study(study_name=record.optuna_name, storage=storage).trials
    victim = next(t for t in trials if t._trial_id == refused.victim)
    assert victim.state == TrialState.FAIL and victim.user_attrs["error"] == WHY
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert [t.state for t in retries] == [TrialState.COMPLETE]
    assert retries[0].params == victim.params
    states = Counter(t.state for t in trials)
    assert states == {TrialState.COMPLETE: 4, TrialState.FAIL: 1}, states
    done = queue.get_study(engine, record.id)
    assert done.state == "done" and done.finished == 4
    engine.dispose()
