"""The worker's store contract, one suite over every implementation (as Optuna's storage tests
run over `STORAGE_MODES`): in memory, SQLite and PostgreSQL. What a worker relies on: claims
never pass a target, a lease is settled once, a reaped worker's trial is failed and retried,
final steps are claimed once, and the Optuna calls behave alike."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from storage.engine import make_engine
from storage.memory_store import MemoryWorkerStore
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from storage.queue.reaper import REAPED_ERROR
from storage.sql_store import SqlWorkerStore
from storage.worker_store import (
    DUPLICATE_ATTR,
    CompletedTrials,
    IllegalStateChange,
    StudyNotFound,
    WorkerGone,
    WorkerStore,
)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path) -> Iterator[WorkerStore]:
    """A fresh, empty store of each kind."""
    if request.param == "memory":
        yield MemoryWorkerStore()
        return
    url = (
        f"sqlite:///{tmp_path / 'studyd.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    ensure_schema(url)
    engine = make_engine(url)
    yield SqlWorkerStore(engine, make_optuna_storage(url))
    engine.dispose()


def _worker(store: WorkerStore) -> int:
    return store.register_worker(host="h", device="cpu", pid=os.getpid())


def _submit(store, target: int = 2, *, priority: int = 0, final_step: str = "score"):
    """A queued study with an Optuna study of the same name (as `service.submit_to` makes)."""
    record = store.submit_study(
        name="s", spec={}, target_trials=target, priority=priority, final_step=final_step
    )
    optuna.create_study(storage=store.optuna_storage, study_name=record.optuna_name)
    return record


def test_claims_go_to_the_highest_priority_and_never_pass_the_target(store):
    worker = _worker(store)
    low = _submit(store, 1)
    high = _submit(store, 2, priority=5)
    order = []
    while (record := store.claim_trial_slot(worker)) is not None:
        order.append(record.id)
    assert order == [high.id, high.id, low.id]
    assert store.get_study(high.id).claimed == 2
    assert store.get_study(high.id).state == "running"


def test_a_claim_of_one_study_takes_only_its_slots(store):
    worker = _worker(store)
    first = _submit(store, 1)
    other = _submit(store, 1)
    assert store.claim_trial_slot(worker, study_id=other.id).id == other.id
    assert store.claim_trial_slot(worker, study_id=other.id) is None
    assert store.get_study(first.id).claimed == 0


def test_a_claim_skips_the_studies_a_worker_cannot_serve(store):
    worker = _worker(store)
    foreign = _submit(store, 1, priority=5)  # e.g. a model family this worker lacks
    mine = _submit(store, 1)
    assert store.claim_trial_slot(worker, skip={foreign.id}).id == mine.id
    assert store.claim_trial_slot(worker, skip={foreign.id}) is None
    assert store.get_study(foreign.id).claimed == 0


def test_finishing_the_last_slot_ends_the_study_and_clears_the_lease(store):
    worker = _worker(store)
    record = _submit(store, 1)
    store.claim_trial_slot(worker)
    after = store.finish_trial_slot(record.id, worker)
    assert (after.state, after.finished) == ("done", 1)
    with pytest.raises(WorkerGone):  # the lease was cleared: a second settle is refused
        store.finish_trial_slot(record.id, worker)


def test_a_held_search_waits_at_its_target_for_its_replicates(store):
    worker = _worker(store)
    record = _submit(store, 1, final_step="replicates")
    store.claim_trial_slot(worker)
    assert store.finish_trial_slot(record.id, worker, hold_at=1).state == "running"
    owed = store.owed_steps()
    assert [(o.study_id, o.step) for o in owed] == [(record.id, "replicates")]
    assert store.claim_step(owed[0], worker)
    assert not store.claim_step(owed[0], _worker(store))  # one claimant
    opened = store.open_replicates(record.id, worker, 2)
    assert (opened.state, opened.target_trials) == ("running", 3)


def _held_and_claimed(store, worker: int):
    """A study held at its target of 1 with its `replicates` step claimed by `worker`."""
    record = _submit(store, 1, final_step="replicates")
    store.claim_trial_slot(worker)
    store.finish_trial_slot(record.id, worker, hold_at=1)
    assert store.claim_step(store.owed_steps()[0], worker)
    return record


def _run_slots(store, worker: int, study_id: int, n: int):
    for _ in range(n):
        assert store.claim_trial_slot(worker, study_id=study_id) is not None
        after = store.finish_trial_slot(study_id, worker)
    return after


def test_a_round_of_replicates_extends_the_target_and_holds_the_study_for_the_next(store):
    worker = _worker(store)
    record = _held_and_claimed(store, worker)
    extended = store.extend_replicates(record.id, worker, 2)
    assert (extended.state, extended.target_trials) == ("running", 3)
    assert store.owed_steps() == []  # not due while its replicates run
    # Held: reaching the new target does not end it; the next round is owed instead.
    assert _run_slots(store, worker, record.id, 2).state == "running"
    assert store.claim_trial_slot(worker, study_id=record.id) is None  # never past the target
    [owed] = store.owed_steps()
    assert (owed.study_id, owed.step) == (record.id, "replicates")
    assert store.claim_step(owed, worker)
    closed = store.open_replicates(record.id, worker, 0)  # decided: the last round adds nothing
    assert (closed.state, closed.target_trials) == ("done", 3)
    assert [o.step for o in store.owed_steps()] == ["score"]


def test_only_the_claimant_extends_a_held_study_and_only_by_a_positive_number(store):
    worker, other = _worker(store), _worker(store)
    record = _held_and_claimed(store, worker)
    assert store.extend_replicates(record.id, other, 2) is None
    with pytest.raises(ValueError):
        store.extend_replicates(record.id, worker, 0)
    assert store.get_study(record.id).target_trials == 1
    store.extend_replicates(record.id, worker, 1)
    assert store.extend_replicates(record.id, worker, 1) is None  # the claim was given back


def _replicated_and_scored(store, worker: int):
    """A study done after its search (1 slot), its 2 replicates and its score."""
    record = _held_and_claimed(store, worker)
    store.open_replicates(record.id, worker, 2)
    assert _run_slots(store, worker, record.id, 2).state == "done"
    assert store.claim_step(store.owed_steps()[0], worker)
    assert store.record_score(record.id, worker, 0.9)
    return record


def test_an_extended_study_with_replicates_owes_them_again_and_adds_only_the_new(store):
    worker = _worker(store)
    record = _replicated_and_scored(store, worker)
    extended = store.extend_study(record.id, 2, replicates=True)
    assert (extended.state, extended.target_trials, extended.finished) == ("queued", 5, 3)
    assert extended.test_score is None and extended.finished_at is None
    assert store.owed_steps() == []  # nothing owed while the extension's search runs
    # Held at the new target, as a new study's search is: its replicates step comes first.
    assert _run_slots(store, worker, record.id, 2).state == "running"
    [owed] = store.owed_steps()
    assert (owed.study_id, owed.step) == (record.id, "replicates")
    assert store.claim_step(owed, worker)
    opened = store.open_replicates(record.id, worker, 1)  # the new leader's only
    assert (opened.state, opened.target_trials) == ("running", 6)
    assert _run_slots(store, worker, record.id, 1).state == "done"
    assert [o.step for o in store.owed_steps()] == ["score"]


def test_an_extended_study_without_replicates_owes_only_its_score(store):
    worker = _worker(store)
    record = _submit(store, 1)
    _run_slots(store, worker, record.id, 1)
    extended = store.extend_study(record.id, 1, replicates=False)
    assert (extended.state, extended.target_trials) == ("queued", 2)
    assert _run_slots(store, worker, record.id, 1).state == "done"
    assert [o.step for o in store.owed_steps()] == ["score"]


def test_only_a_done_or_cancelled_study_with_its_slots_settled_is_extended(store):
    worker = _worker(store)
    record = _submit(store, 2)
    with pytest.raises(IllegalStateChange, match="is queued"):
        store.extend_study(record.id, 1, replicates=False)
    store.claim_trial_slot(worker, study_id=record.id)
    store.end_study_early(record.id)  # done with a slot still out
    with pytest.raises(IllegalStateChange, match="1 trial\\(s\\) settling"):
        store.extend_study(record.id, 1, replicates=False)
    with pytest.raises(ValueError, match="extra"):
        store.extend_study(record.id, 0, replicates=False)
    failed = _submit(store, 1)
    store.fail_study(failed.id, "boom")
    with pytest.raises(IllegalStateChange, match="has failed"):
        store.extend_study(failed.id, 1, replicates=False)
    with pytest.raises(StudyNotFound):
        store.extend_study(failed.id + 100, 1, replicates=False)


def test_the_score_step_is_claimed_recorded_once_and_can_be_given_back(store):
    worker = _worker(store)
    record = _submit(store, 1)
    store.claim_trial_slot(worker)
    store.finish_trial_slot(record.id, worker)
    [owed] = store.owed_steps()
    assert owed.step == "score" and store.claim_step(owed, worker)
    assert store.owed_steps() == []
    store.release_step(record.id, worker)
    assert store.claim_step(store.owed_steps()[0], worker)
    assert store.record_score(record.id, worker, 0.9, 1.5)
    assert not store.record_score(record.id, worker, 0.1)
    assert store.get_study(record.id).test_score == 0.9


def test_a_released_slot_is_claimed_again_and_a_double_release_is_refused(store):
    worker = _worker(store)
    record = _submit(store, 1)
    store.claim_trial_slot(worker)
    assert store.release_trial_slot(record.id, worker).claimed == 0
    with pytest.raises((WorkerGone, IllegalStateChange)):
        store.release_trial_slot(record.id, worker)
    assert store.claim_trial_slot(worker).id == record.id


def test_an_unregistered_worker_cannot_claim_or_heartbeat_and_its_slot_goes_back(store):
    worker = _worker(store)
    record = _submit(store, 1)
    store.claim_trial_slot(worker)
    store.unregister_worker(worker)
    assert store.get_study(record.id).claimed == 0
    with pytest.raises(WorkerGone):
        store.heartbeat(worker)
    with pytest.raises(WorkerGone):
        store.claim_trial_slot(worker)


def test_ending_the_search_early_drops_the_target_to_what_is_claimed(store):
    worker, other = _worker(store), _worker(store)
    record = _submit(store, 5)
    store.claim_trial_slot(worker)
    store.claim_trial_slot(other)
    ended = store.end_search_early(record.id, worker)
    assert (ended.target_trials, ended.claimed, ended.state) == (1, 1, "running")
    assert store.finish_trial_slot(record.id, other).state == "done"
    with pytest.raises(IllegalStateChange):
        store.end_search_early(record.id)


def test_failing_or_ending_a_study_is_final(store):
    record = _submit(store, 3)
    assert store.fail_study(record.id, "no data").state == "failed"
    assert store.get_study(record.id).error == "no data"
    with pytest.raises(IllegalStateChange):
        store.end_study_early(record.id)
    with pytest.raises(StudyNotFound):
        store.get_study(record.id + 100)
    assert store.count_studies("failed") == 1 and store.count_studies("running") == 0


def test_a_silent_workers_trial_is_failed_retried_once_and_its_slot_given_back(store):
    worker = _worker(store)
    record = _submit(store, 1)
    store.claim_trial_slot(worker)
    study = store.load_study(record.optuna_name)
    trial = store.ask(study)
    trial.suggest_float("p", 0.1, 0.5)
    store.heartbeat(worker, record.id, trial_id=store.trial_id(trial), trial_number=trial.number)
    assert store.reap_stale_workers(3600) == []
    assert store.reap_stale_workers(-1) == [worker]
    failed = store.read_back(study, trial)
    assert failed.state == TrialState.FAIL and failed.user_attrs["error"] == REAPED_ERROR
    [retry] = store.trials(study, (TrialState.WAITING,))
    assert retry.system_attrs["fixed_params"] == {"p": failed.params["p"]}
    assert store.get_study(record.id).claimed == 0
    with pytest.raises(WorkerGone):
        store.heartbeat(worker)


def test_a_reaped_workers_told_trial_counts_unless_it_was_a_repeat(store):
    worker, repeat_worker = _worker(store), _worker(store)
    record = _submit(store, 2)
    study = store.load_study(record.optuna_name)
    for row, attrs in ((worker, {}), (repeat_worker, {DUPLICATE_ATTR: 0})):
        store.claim_trial_slot(row)
        trial = store.ask(study)
        store.heartbeat(row, record.id, trial_id=store.trial_id(trial))
        store.set_user_attrs([(trial, attrs)])
        store.tell(study, trial, values=[1.0])
    store.reap_stale_workers(-1)
    after = store.get_study(record.id)
    assert (after.finished, after.claimed) == (1, 1)


def test_a_tell_after_the_trial_was_failed_is_refused_not_raised(store):
    record = _submit(store)
    study = store.load_study(record.optuna_name)
    trial = store.ask(study)
    store.fail_stored_trial(study, store.read_back(study, trial))
    told, refused = store.tell(study, trial, values=[1.0])
    assert told is None and refused is not None
    again = store.ask(study)
    told, refused = store.tell(study, again, values=[2.0])
    assert told.state == TrialState.COMPLETE and refused is None


def test_fail_for_retry_fails_the_trial_and_enqueues_its_params_once(store):
    record = _submit(store)
    study = store.load_study(record.optuna_name)
    trial = store.ask(study)
    trial.suggest_int("w", 4, 64)
    store.fail_for_retry(study, trial, "the database was unreachable mid-trial")
    stored = store.read_back(study, trial)
    assert stored.state == TrialState.FAIL
    assert stored.user_attrs["error"] == "the database was unreachable mid-trial"
    [retry] = store.trials(study, (TrialState.WAITING,))
    assert retry.user_attrs["retry_of"] == trial.number


def test_attributes_reports_and_constraints_land_on_the_trial(store):
    record = _submit(store)
    study = store.load_study(record.optuna_name)
    first, second = store.ask(study), store.ask(study)
    store.set_user_attrs([(first, {"run_key": "a", "seed": 1}), (second, {"run_key": "a"})])
    store.report([(first, 0, 0.5), (first, 1, 0.6), (second, 0, 0.4)])
    store.set_constraints(first, {"params": -1.0})
    store.tell(study, first, values=[0.6])
    stored = store.read_back(study, first)
    assert stored.user_attrs == {"run_key": "a", "seed": 1}
    assert stored.intermediate_values == {0: 0.5, 1: 0.6}
    assert stored.system_attrs["constraints:params"] == -1.0
    assert store.has_user_attr(second, "run_key") and not store.has_user_attr(second, "seed")
    found = store.first_with_attr(study, "run_key", "a", before=10)
    assert found is not None and found.number == first.number
    assert store.first_with_attr(study, "run_key", "a", before=first.number) is None


def test_a_finished_trial_takes_no_more_attributes(store):
    record = _submit(store)
    study = store.load_study(record.optuna_name)
    trial = store.ask(study)
    store.tell(study, trial, values=[1.0])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        store.set_user_attrs([(trial, {"late": True})])


def test_the_median_pruner_judges_against_completed_trials(store):
    record = _submit(store)
    study = store.load_study(
        record.optuna_name, pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    done = store.ask(study)
    store.report([(done, 0, 0.9)])
    store.tell(study, done, values=[0.9])
    worse, better = store.ask(study), store.ask(study)
    store.report([(worse, 0, 0.1), (better, 0, 0.95)])
    # The study minimises (Optuna's default): above the completed trial's 0.9 is worse.
    assert store.prune_decisions([worse, better], CompletedTrials()) == [False, True]


def test_a_missing_optuna_study_is_a_key_error(store):
    with pytest.raises(KeyError):
        store.load_study("never-made")


def test_an_idle_wait_returns_once_a_slot_opens(store):
    waiter = store.slot_waiter()
    stop = threading.Event()
    try:
        assert waiter.wait(0.1, stop) is False
        _submit(store, 1)
        store.wake_workers()
        assert waiter.wait(5, stop) is True
    finally:
        waiter.close()
