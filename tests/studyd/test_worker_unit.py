"""The worker's fast layer: the real claim loop, trial path and slot endings on the in-memory
store with a stub trainer (`worker_fakes`): no processes, no database, no training."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError
from worker_fakes import StubTrainer, submitted, worker

from storage.memory_store import MemoryWorkerStore
from storage.worker_store import DUPLICATE_ATTR
from studyd.daemon.worker.slot_end import Claim, Ending, SlotEnd, TrialResult, decide

SMALL = "name: s\nmodel: {width: 8}\ntraining: {epochs: 3}\nsearch: {n_trials: %d, pruner: none}"


def _trials(store: MemoryWorkerStore, optuna_name: str) -> list[optuna.trial.FrozenTrial]:
    return store.load_study(optuna_name).get_trials(deepcopy=False)


def _states(trials) -> Counter:
    return Counter(t.state for t in trials)


@pytest.fixture
def store() -> MemoryWorkerStore:
    return MemoryWorkerStore()


def test_every_slot_of_a_study_is_counted_once_and_the_study_is_done(store, tmp_path):
    _, study_id, name = submitted(store, SMALL % 4)
    trainer = StubTrainer()
    assert worker(store, trainer, tmp_path, batch_trials=1).run() == 4
    done = store.get_study(study_id)
    assert (done.state, done.claimed, done.finished) == ("done", 4, 4)
    trials = _trials(store, name)
    assert _states(trials) == {TrialState.COMPLETE: 4}
    assert all(t.intermediate_values.keys() == {0, 1, 2} for t in trials)
    assert done.test_score is not None  # the finaliser scored the best trial
    assert trainer.calls == [(1, False)] * 4  # --batch-trials 1: each trial alone, unbatched


def test_a_stack_of_k_trains_k_trials_at_once_and_counts_each(store, tmp_path):
    one_variant = SMALL.replace("model:", "dropout: {variants: [standard]}\nmodel:")
    _, study_id, name = submitted(store, one_variant % 6)
    trainer = StubTrainer()
    assert worker(store, trainer, tmp_path, batch_trials=3).run() == 6
    assert trainer.calls == [(3, True), (3, True)]
    assert store.get_study(study_id).finished == 6
    assert store.worker_rows() == []  # the worker and its leases unregistered


def test_auto_ramps_from_a_stack_of_one(store, tmp_path):
    _, study_id, _ = submitted(store, SMALL % 4)
    trainer = StubTrainer()
    worker(store, trainer, tmp_path, batch_trials="auto").run()
    assert trainer.calls[0] == (1, True)  # a batchable trial alone is a stack of one
    assert sum(n for n, _ in trainer.calls) == 4


def test_a_stop_mid_trial_fails_the_trial_and_gives_its_slot_back(store, tmp_path):
    _, study_id, name = submitted(store, SMALL % 3)
    trainer = StubTrainer()
    running = worker(store, trainer, tmp_path, batch_trials=1)
    trainer.hook = lambda epoch, _: running.stop() if epoch == 1 else None
    assert running.run() == 0
    [trial] = _trials(store, name)
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["error"] == "worker stopped (SIGTERM) mid-trial"
    left = store.get_study(study_id)
    assert (left.state, left.claimed, left.finished) == ("running", 0, 0)


def test_a_reaped_worker_drops_its_result_and_stops(store, tmp_path):
    _, study_id, name = submitted(store, SMALL % 3)
    trainer = StubTrainer()
    running = worker(store, trainer, tmp_path, batch_trials=1)

    def reaped(epoch: int, _: int) -> None:
        if epoch == 1:
            store.age_worker(running.worker_id, 3600)
            store.reap_stale_workers(60)

    trainer.hook = reaped
    assert running.run() == 0 and running.gone
    trials = _trials(store, name)
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["error"].startswith("reaped")
    assert trials[1].state == TrialState.WAITING  # its one retry
    assert store.get_study(study_id).claimed == 0


def test_a_database_error_mid_trial_fails_it_with_one_retry_and_the_study_completes(
    store, tmp_path
):
    _, study_id, name = submitted(store, SMALL % 2)
    trainer = StubTrainer()
    raised = []

    def outage(epoch: int, _: int) -> None:
        if epoch == 1 and not raised:
            raised.append(epoch)
            raise OperationalError("SELECT 1", {}, Exception("the database is gone"))

    trainer.hook = outage
    assert worker(store, trainer, tmp_path, batch_trials=1).run() == 2
    trials = _trials(store, name)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["error"] for t in failed] == ["the database was unreachable mid-trial"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == failed[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert store.get_study(study_id).state == "done"


def test_a_repeated_run_is_told_its_result_but_not_counted(store, tmp_path):
    # One configuration in the whole space: every proposal after the first repeats it.
    spec_text = (
        "name: one\nmodel: {width: 8, depth: 1}\ndropout: {variants: [none]}\n"
        "training: {epochs: 2, lr: 0.001}\nsearch: {n_trials: 4, pruner: none}"
    )
    _, study_id, name = submitted(store, spec_text)
    assert worker(store, StubTrainer(), tmp_path, batch_trials=1).run() == 1
    trials = _trials(store, name)
    counted = [t for t in trials if DUPLICATE_ATTR not in t.user_attrs]
    repeats = [t for t in trials if DUPLICATE_ATTR in t.user_attrs]
    assert len(counted) == 1 and counted[0].state == TrialState.COMPLETE
    assert all(t.user_attrs["reused_from"] == counted[0].number for t in repeats)
    ended = store.get_study(study_id)
    assert (ended.state, ended.finished) == ("done", 1)  # the search ended: nothing new to try


def test_an_untrainable_spec_fails_its_trial_and_its_study(store, tmp_path):
    _, study_id, name = submitted(store, SMALL % 3)

    def broken(epoch: int, _: int) -> None:
        raise ValueError("shapes do not match")

    assert worker(store, StubTrainer(hook=broken), tmp_path, batch_trials=2).run() == 0
    failed = store.get_study(study_id)
    assert failed.state == "failed" and failed.claimed == 0
    assert failed.error == "a batch of trials could not train: ValueError: shapes do not match"
    assert _states(_trials(store, name)) == {TrialState.FAIL: 2}


def test_a_study_whose_optuna_study_is_gone_for_long_fails_readably(store, tmp_path):
    record = store.submit_study(name="ghost", spec={"name": "ghost"}, target_trials=1)
    ghost = store._studies[record.id]  # created long ago, its Optuna study never made
    ghost.created_at = ghost.created_at.replace(year=2000)
    assert worker(store, StubTrainer(), tmp_path).run() == 0
    failed = store.get_study(record.id)
    assert failed.state == "failed" and "was never created" in failed.error


@pytest.mark.parametrize(
    ("ending", "trial", "duplicate", "end"),
    [
        (Ending.TRAINED, True, False, SlotEnd.COUNT),
        (Ending.TRAINED, True, True, SlotEnd.REPEAT),
        (Ending.STOPPED, True, False, SlotEnd.ABANDON),
        (Ending.STORAGE, True, False, SlotEnd.RETRY),
        (Ending.UNTRAINABLE, True, False, SlotEnd.FAIL),
        (Ending.STOPPED, False, False, SlotEnd.GIVE_BACK),
        (Ending.STORAGE, False, False, SlotEnd.GIVE_BACK),
        (Ending.REAPED, True, False, SlotEnd.DROP),
        (Ending.REAPED, False, False, SlotEnd.DROP),
    ],
)
def test_one_function_decides_how_a_slot_ends(store, ending, trial, duplicate, end):
    record = store.submit_study(name="d", spec={}, target_trials=1)
    asked = object() if trial else None
    result = TrialResult(Claim(record, None), asked, ending, duplicate=duplicate)  # type: ignore[arg-type]
    assert decide(result) is end


def test_the_worker_wing_reaches_storage_only_through_its_store():
    """Every persistence call of the worker goes through `storage.worker_store` (issue 25's
    seam): its modules import nothing else of `storage/`, but the loop's SQL store for
    `Worker(engine, optuna_storage, options)`."""
    import ast
    from pathlib import Path

    import studyd.daemon.worker as wing

    allowed = {"storage.worker_store", "storage.sql_store"}
    reached = {}
    for path in [
        *Path(wing.__file__).parent.glob("*.py"),
        Path(wing.__file__).parents[1] / "finalize.py",
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name and name.startswith("storage") and name not in allowed:
                    reached.setdefault(path.name, []).append(name)
    assert reached == {}
