"""One retry per interrupted trial, the same on both paths that FAIL it: the worker's (the
database was unreachable mid-trial, `trial_store.fail_for_retry`) and the reaper's (its worker
died). The retry keeps what the trial was enqueued as: a seed replicate's retry trains its seed
and still counts as a replicate; a baseline's retry is still the baseline."""

from __future__ import annotations

import os

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError

from storage import queue, trial_store
from storage.engine import engine_options, sqlalchemy_url
from storage.queue import reaper

SPACE = {"p": FloatDistribution(0.1, 0.7)}
ENQUEUED_AS = {"replicate_of": 4, "replicate_seed": 7, "baseline": True}


def _worker_fails_it(engine, optuna_storage, study, trial, worker):
    trial_store.fail_for_retry(study, trial, "the database was unreachable mid-trial")


def _reaper_fails_it(engine, optuna_storage, study, trial, worker):
    assert queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0) == [worker]


PATHS = {"worker": _worker_fails_it, "reaper": _reaper_fails_it}


def _running_enqueued_trial(engine, optuna_storage, attrs):
    record = queue.submit_study(engine, name="retry", spec={}, target_trials=2)
    study = optuna.create_study(study_name=record.optuna_name, storage=optuna_storage)
    study.enqueue_trial({"p": 0.25}, user_attrs=attrs)
    worker = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
    assert queue.claim_trial_slot(engine, worker).id == record.id
    trial = study.ask(SPACE)
    queue.heartbeat(engine, worker, record.id, trial._trial_id, trial.number)
    return study, trial, worker


@pytest.mark.parametrize("path", PATHS)
def test_a_retried_replicate_keeps_its_seed_and_stays_a_replicate(engine, optuna_storage, path):
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    PATHS[path](engine, optuna_storage, study, trial, worker)
    assert study.trials[trial.number].state == TrialState.FAIL
    retry = study.ask(SPACE)  # what the next worker is handed
    assert retry.params == {"p": 0.25}
    assert retry.user_attrs == {"retry_of": trial.number, **ENQUEUED_AS}


@pytest.mark.parametrize("path", PATHS)
def test_a_retry_that_is_interrupted_again_is_not_retried(engine, optuna_storage, path):
    attrs = {"retry_of": 0, "replicate_of": 4, "replicate_seed": 7}
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, attrs)
    PATHS[path](engine, optuna_storage, study, trial, worker)
    assert study.trials[trial.number].state == TrialState.FAIL
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_a_trial_already_finished_is_neither_failed_nor_retried(engine, optuna_storage):
    study, trial, _ = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    study.tell(trial, 0.8)
    trial_store.fail_for_retry(study, trial, "late")
    assert study.trials[trial.number].state == TrialState.COMPLETE
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_failing_again_after_a_lost_reply_retries_exactly_once(engine, optuna_storage):
    # The worker's call is repeated when the database drops the connection mid-call (the
    # connections-killed outage): its FAIL may have landed without its reply, with or
    # without the retry's enqueue. Either way the trial ends FAILED with exactly one retry.
    error = "the database was unreachable mid-trial"
    study, trial, _ = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    trial.set_user_attr("error", error)
    study.tell(trial, state=TrialState.FAIL)  # the first call's tell landed; then it broke
    trial_store.fail_for_retry(study, trial, error)
    trial_store.fail_for_retry(study, trial, error)  # and once more, after the enqueue
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs for t in waiting] == [{"retry_of": trial.number, **ENQUEUED_AS}]


def test_a_trial_the_reaper_failed_is_not_retried_again_by_its_worker(engine, optuna_storage):
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    _reaper_fails_it(engine, optuna_storage, study, trial, worker)
    trial_store.fail_for_retry(study, trial, "the database was unreachable mid-trial")
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_reaper_interrupted_before_the_enqueue_retries_on_its_next_tick(engine, optuna_storage):
    # The reaper's FAIL landed, then the database went away before the retry's enqueue (the
    # tick raised and the dead worker's row stayed). The next tick must still enqueue it, once.
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    optuna_storage.set_trial_user_attr(trial._trial_id, "error", reaper.REAPED_ERROR)
    optuna_storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    _reaper_fails_it(engine, optuna_storage, study, trial, worker)
    assert queue.reap_stale_workers(engine, optuna_storage, grace_seconds=0) == []
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs for t in waiting] == [{"retry_of": trial.number, **ENQUEUED_AS}]
    assert queue.get_study(engine, queue.list_studies(engine)[0].id).claimed == 0


def test_a_trial_its_worker_failed_before_dying_is_not_retried_by_the_reaper(
    engine, optuna_storage
):
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    trial.set_user_attr("error", "training diverged: the objective is not finite")
    study.tell(trial, state=TrialState.FAIL)  # then the worker died before giving its slot back
    _reaper_fails_it(engine, optuna_storage, study, trial, worker)
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_a_reaped_trial_says_why_it_failed(engine, optuna_storage):
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    _reaper_fails_it(engine, optuna_storage, study, trial, worker)
    assert study.trials[trial.number].user_attrs["error"] == reaper.REAPED_ERROR


class _EnqueueFailsOnce(RDBStorage):
    """Optuna's storage on the test database, whose next new trial (an enqueue) fails as if the
    database went away mid-call."""

    fail_next = False

    def _create_new_trial(self, study_id, template_trial=None):
        # What both `create_new_trial` and Optuna's cached wrapper of this storage call.
        if self.fail_next:
            self.fail_next = False
            raise OperationalError("INSERT INTO trials", {}, Exception("server closed"))
        return super()._create_new_trial(study_id, template_trial)


def test_an_orphans_retry_survives_a_database_gone_mid_reap(db_url, engine, optuna_storage):
    # A trial its worker asked and never heartbeated (the worker is gone, no row holds it).
    study, trial, worker = _running_enqueued_trial(engine, optuna_storage, ENQUEUED_AS)
    queue.unregister_worker(engine, worker)
    flaky = _EnqueueFailsOnce(sqlalchemy_url(db_url), engine_kwargs=engine_options(db_url))
    flaky.fail_next = True
    with pytest.raises(OperationalError):
        queue.reap_stale_workers(engine, flaky, grace_seconds=0)
    # Still RUNNING: a later tick meets it again (a FAILed orphan would be met by none).
    assert study.trials[trial.number].state == TrialState.RUNNING
    queue.reap_stale_workers(engine, flaky, grace_seconds=0)
    assert study.trials[trial.number].state == TrialState.FAIL
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs for t in waiting] == [{"retry_of": trial.number, **ENQUEUED_AS}]
    flaky.engine.dispose()
