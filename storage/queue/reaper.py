"""The reaper: settles the leases of workers whose heartbeat went stale, and orphan trials.

A RUNNING trial of a dead worker is failed (only if still RUNNING) and retried once; a trial it
had already told is counted; then its row is deleted, so its slot is settled exactly once. A
reaper interrupted between a dead worker's trial's FAIL and its retry's enqueue (the database
went away) enqueues the retry on its next tick, when it meets the worker's row again: the trial's
`error` says the reaper failed it. An orphan trial (RUNNING, held by no row) is met again only
while it runs, so its retry is enqueued before its FAIL.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Engine, select

from storage.queue.records import StudyNotFound
from storage.queue.sessions import transaction, utcnow
from storage.queue.slots import DUPLICATE_ATTR, settle_slot
from storage.queue.studies import get_study
from storage.schema import Study, Worker
from storage.trial_store import enqueue_retry

logger = logging.getLogger(__name__)

# The `error` of a trial the reaper failed: also how a later tick knows the retry is its to enqueue.
REAPED_ERROR = "reaped: its worker stopped heartbeating"


def reap_stale_workers(
    engine: Engine, optuna_storage: BaseStorage, grace_seconds: float
) -> list[int]:
    """Fail the trials of workers silent for `grace_seconds`, give their slots back, retry once.

    Optuna fails a dead worker's trial only when another trial of the same study starts, so a
    lone dead worker's trial would stay RUNNING forever without this. Returns the reaped ids.
    """
    with transaction(engine) as session:
        cutoff = utcnow(session) - timedelta(seconds=grace_seconds)
        stale = list(session.scalars(select(Worker).where(Worker.last_heartbeat < cutoff)))
    reaped = [w.id for w in stale if _reap_worker(engine, optuna_storage, w)]
    _fail_orphan_trials(engine, optuna_storage, grace_seconds)
    return reaped


def _reap_worker(engine: Engine, optuna_storage: BaseStorage, worker: Worker) -> bool:
    settle = "release"
    if worker.trial_id is not None:
        state = _fail_and_retry(engine, optuna_storage, worker.study_id, worker.trial_id)
        if state in (TrialState.COMPLETE, TrialState.PRUNED) and not _duplicate(
            optuna_storage, worker.trial_id
        ):
            # Told but not yet counted when the worker died.
            settle = "finish"
    with transaction(engine) as session:
        row = session.get(Worker, worker.id, with_for_update=True)
        if row is None:
            return False  # another reaper got there first and settled the slot
        settle_slot(session, row.study_id, settle)
        session.delete(row)
    logger.warning("reaped worker %s (pid %s on %s)", worker.id, worker.pid, worker.host)
    return True


def _duplicate(optuna_storage: BaseStorage, trial_id: int) -> bool:
    """A trial told a known run's result: its slot is given back, never counted."""
    return DUPLICATE_ATTR in optuna_storage.get_trial(trial_id).user_attrs


def _fail_and_retry(
    engine: Engine, optuna_storage: BaseStorage, study_id: int | None, trial_id: int
) -> TrialState | None:
    """FAIL the trial if still RUNNING and, when a reaper failed it, enqueue one retry.

    The FAIL and the enqueue are two writes: when the database goes away between them, the next
    tick finds the trial FAILed with `REAPED_ERROR` and enqueues the retry then
    (`enqueue_retry` enqueues once however often it is called). A trial its worker failed
    (diverged, cancelled: another `error`) or Optuna's stale check failed (it retries itself)
    is left alone.
    """
    try:
        # The reason first: attributes can only be set while the trial runs.
        optuna_storage.set_trial_user_attr(trial_id, "error", REAPED_ERROR)
        optuna_storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        finished = optuna_storage.get_trial(trial_id)
        if finished.state != TrialState.FAIL or finished.user_attrs.get("error") != REAPED_ERROR:
            return finished.state  # finished meanwhile, or failed by its worker or by Optuna
    except KeyError:
        return None  # its Optuna study was deleted
    trial = optuna_storage.get_trial(trial_id)
    if study_id is not None:
        try:
            optuna_name = get_study(engine, study_id).optuna_name
        except StudyNotFound:
            return trial.state
        enqueue_retry(optuna.load_study(study_name=optuna_name, storage=optuna_storage), trial)
    return trial.state


def _fail_orphan_trials(engine: Engine, optuna_storage: BaseStorage, grace_seconds: float) -> None:
    """FAIL RUNNING trials of running studies that no registered worker holds.

    A trial younger than the grace period is left alone: its worker asked for it and has not
    heartbeated its id yet. Optuna stamps `datetime_start` with the local naive clock.
    """
    with transaction(engine) as session:
        studies = list(session.scalars(select(Study.optuna_name).where(Study.state == "running")))
        held = set(session.scalars(select(Worker.trial_id).where(Worker.trial_id.is_not(None))))
    started_before = datetime.now() - timedelta(seconds=grace_seconds)
    for optuna_name in studies:
        try:
            optuna_id = optuna_storage.get_study_id_from_name(optuna_name)
        except KeyError:
            continue
        running = optuna_storage.get_all_trials(
            optuna_id, deepcopy=False, states=(TrialState.RUNNING,)
        )
        for trial in running:
            start = trial.datetime_start
            if trial._trial_id in held or start is None or start > started_before:
                continue
            logger.warning("failing orphan trial %s of %s", trial.number, optuna_name)
            _retry_then_fail(optuna_storage, optuna_name, trial)


def _retry_then_fail(optuna_storage: BaseStorage, optuna_name: str, trial: FrozenTrial) -> None:
    """Enqueue an orphan's one retry, then FAIL it (`REAPED_ERROR`).

    No worker row brings a FAILed orphan back to a later tick, but a RUNNING one is met again:
    a database gone between the two writes leaves it RUNNING with its retry enqueued, and the
    next tick's enqueue finds that retry and only FAILs the trial.
    """
    try:
        optuna_storage.set_trial_user_attr(trial._trial_id, "error", REAPED_ERROR)
        study = optuna.load_study(study_name=optuna_name, storage=optuna_storage)
    except (UpdateFinishedTrialError, KeyError):
        return  # told meanwhile, or its study was deleted
    enqueue_retry(study, trial)
    try:
        optuna_storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        logger.warning("orphan trial %s was told meanwhile: its retry stays", trial.number)
