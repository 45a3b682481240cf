"""The study queue, trial-slot leases, the worker registry and the reaper of dead workers.

A worker's *lease* is the trial slot it holds: `claim_trial_slot` records the study on the worker's
row, `heartbeat(..., trial_id=, trial_number=)` adds the Optuna trial once asked, and
`finish_trial_slot` / `release_trial_slot` with `worker_id=` settle the slot and clear the lease in
one transaction. The reaper settles the leases of workers whose heartbeat went stale, so a slot is
counted exactly once whoever settles it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.engine import read_only
from storage.schema import ACTIVE_STATES, FINAL_STATES, Study, Worker

logger = logging.getLogger(__name__)
# User attributes an enqueued trial was given that its retry keeps.
RETRY_KEEPS_ATTRS = ("replicate_of", "replicate_seed", "baseline")


class StudyNotFound(LookupError):
    """No study with this id."""


class IllegalStateChange(RuntimeError):
    """The study's state does not allow this change (e.g. cancelling a finished study)."""


class WorkerGone(RuntimeError):
    """The worker's row is gone (reaped as stale, or unregistered): it must stop."""


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    optuna_name: str
    spec: dict[str, Any]
    state: str
    priority: int
    target_trials: int
    claimed: int
    finished: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    test_score: float | None
    idempotency_key: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkerRecord:
    id: int
    host: str
    device: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    study_id: int | None
    trial_id: int | None
    trial_number: int | None


def _study_record(row: Study) -> StudyRecord:
    return StudyRecord(**{f: getattr(row, f) for f in StudyRecord.__dataclass_fields__})


def _worker_record(row: Worker) -> WorkerRecord:
    return WorkerRecord(**{f: getattr(row, f) for f in WorkerRecord.__dataclass_fields__})


@contextmanager
def _transaction(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def _reading(engine: Engine) -> AbstractContextManager[Session]:
    """A transaction that only reads (SQLite: deferred BEGIN, beside the writer under WAL)."""
    return _transaction(read_only(engine))


def _utcnow(session: Session) -> datetime:
    """Naive UTC "now"; on PostgreSQL the server's clock, so workers on skewed hosts agree."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(text("SELECT timezone('UTC', clock_timestamp())"))
    return datetime.now(UTC).replace(tzinfo=None)


def _locked_study(session: Session, study_id: int) -> Study:
    row = session.get(Study, study_id, with_for_update=True)
    if row is None:
        raise StudyNotFound(f"study {study_id} does not exist")
    return row


# --- studies ---------------------------------------------------------------------------------


def submit_study(
    engine: Engine,
    *,
    name: str,
    spec: dict[str, Any],
    target_trials: int,
    priority: int = 0,
    idempotency_key: str | None = None,
    final_step: str | None = None,
) -> StudyRecord:
    """Queue a study; a repeated `idempotency_key` returns the study it first made.

    `final_step`: what it owes once its target is reached ("replicates" holds it there).
    """
    if target_trials < 1:
        raise ValueError("target_trials must be at least 1")
    try:
        with _transaction(engine) as session:
            if idempotency_key is not None:
                existing = session.scalar(
                    select(Study).where(Study.idempotency_key == idempotency_key)
                )
                if existing is not None:
                    return _study_record(existing)
            row = Study(
                name=name,
                spec=spec,
                state="queued",
                priority=priority,
                target_trials=target_trials,
                claimed=0,
                finished=0,
                created_at=_utcnow(session),
                idempotency_key=idempotency_key,
                final_step=final_step,
            )
            session.add(row)
            session.flush()
            row.optuna_name = f"{name}-{row.id}"
            return _study_record(row)
    except IntegrityError:
        # Two submits with one key raced (PostgreSQL): the loser returns the winner's study.
        if idempotency_key is None:
            raise
        with _transaction(engine) as session:
            existing = session.scalar(select(Study).where(Study.idempotency_key == idempotency_key))
            if existing is None:
                raise
            return _study_record(existing)


def get_study(engine: Engine, study_id: int) -> StudyRecord:
    with _reading(engine) as session:
        row = session.get(Study, study_id)
        if row is None:
            raise StudyNotFound(f"study {study_id} does not exist")
        return _study_record(row)


def list_studies(
    engine: Engine, state: str | None = None, *, limit: int = 50, offset: int = 0
) -> list[StudyRecord]:
    """A page of studies, newest first."""
    query = select(Study).order_by(Study.id.desc()).limit(limit).offset(offset)
    if state is not None:
        query = query.where(Study.state == state)
    with _reading(engine) as session:
        return [_study_record(row) for row in session.scalars(query)]


def count_studies(engine: Engine, state: str | None = None) -> int:
    query = select(func.count()).select_from(Study)
    if state is not None:
        query = query.where(Study.state == state)
    with _reading(engine) as session:
        return int(session.scalar(query) or 0)


def set_test_score(engine: Engine, study_id: int, score: float) -> StudyRecord:
    with _transaction(engine) as session:
        row = _locked_study(session, study_id)
        row.test_score = score
        return _study_record(row)


def _end_study(engine: Engine, study_id: int, state: str, error: str | None = None) -> StudyRecord:
    with _transaction(engine) as session:
        row = _locked_study(session, study_id)
        if row.state in FINAL_STATES:
            raise IllegalStateChange(f"study {study_id} is already {row.state}")
        row.state = state
        row.finished_at = _utcnow(session)
        if error is not None:
            row.error = error
        return _study_record(row)


def fail_study(engine: Engine, study_id: int, error: str) -> StudyRecord:
    """queued/running → failed, with the reason."""
    return _end_study(engine, study_id, "failed", error)


def cancel_study(engine: Engine, study_id: int) -> StudyRecord:
    """queued/running → cancelled; a finished study raises `IllegalStateChange`."""
    return _end_study(engine, study_id, "cancelled")


def end_study_early(engine: Engine, study_id: int) -> StudyRecord:
    """queued/running → done before its target (its spec's time budget ran out)."""
    return _end_study(engine, study_id, "done")


def delete_study(engine: Engine, study_id: int, optuna_storage: BaseStorage | None = None) -> None:
    """Delete a study that is not running, and its Optuna study when a storage is given."""
    record = get_study(engine, study_id)
    if record.state == "running":
        raise IllegalStateChange(f"study {study_id} is running: cancel it before deleting it")
    if optuna_storage is not None:
        try:
            optuna_id = optuna_storage.get_study_id_from_name(record.optuna_name)
        except KeyError:
            optuna_id = None
        if optuna_id is not None:
            optuna_storage.delete_study(optuna_id)
    with _transaction(engine) as session:
        session.execute(delete(Study).where(Study.id == study_id))


# --- trial slots -----------------------------------------------------------------------------


def claim_trial_slot(
    engine: Engine, worker_id: int, *, study_id: int | None = None
) -> StudyRecord | None:
    """Take one trial slot of the highest-priority, then oldest, runnable study; never past target.

    With `study_id`, only a slot of that study (a batching worker fills its batch from one study).

    SQLite: the whole transaction holds the write lock (BEGIN IMMEDIATE). PostgreSQL: the row is
    locked with SKIP LOCKED so concurrent claimers move on to the next study instead of queueing.
    The conditional UPDATE re-checks `claimed < target_trials` either way.
    """
    runnable = ((Study.state.in_(ACTIVE_STATES)) & (Study.claimed < Study.target_trials),)
    if study_id is not None:
        runnable = (*runnable, Study.id == study_id)
    with _transaction(engine) as session:
        now = _utcnow(session)
        for _attempt in range(5):
            pick = (
                select(Study.id)
                .where(*runnable)
                .order_by(Study.priority.desc(), Study.created_at, Study.id)
                .limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            picked = session.scalar(pick)
            if picked is None:
                return None
            taken = session.execute(
                update(Study)
                .where(Study.id == picked, *runnable)
                .values(
                    claimed=Study.claimed + 1,
                    state="running",
                    started_at=func.coalesce(Study.started_at, now),
                )
            )
            if taken.rowcount == 1:
                break
        else:
            return None
        leased = session.execute(
            update(Worker)
            .where(Worker.id == worker_id)
            .values(study_id=picked, trial_id=None, trial_number=None, last_heartbeat=now)
        )
        if leased.rowcount != 1:
            raise WorkerGone(f"worker {worker_id} is not registered")
        return _study_record(session.get(Study, picked, populate_existing=True))


def _clear_lease(session: Session, study_id: int, worker_id: int | None) -> None:
    if worker_id is None:
        return
    cleared = session.execute(
        update(Worker)
        .where(Worker.id == worker_id, Worker.study_id == study_id)
        .values(study_id=None, trial_id=None, trial_number=None)
    )
    if cleared.rowcount != 1:
        # The reaper already settled this worker's slot: counting it again would double it.
        raise WorkerGone(f"worker {worker_id} holds no slot of study {study_id}")


def release_trial_slot(engine: Engine, study_id: int, worker_id: int | None = None) -> StudyRecord:
    """Give a slot back (claimed − 1), e.g. after a failed trial; clears `worker_id`'s lease."""
    with _transaction(engine) as session:
        row = _locked_study(session, study_id)
        _clear_lease(session, study_id, worker_id)
        if row.claimed <= row.finished:
            raise IllegalStateChange(f"study {study_id} has no unfinished slot to release")
        row.claimed -= 1
        return _study_record(row)


def finish_trial_slot(
    engine: Engine, study_id: int, worker_id: int | None = None, *, hold_at: int | None = None
) -> StudyRecord:
    """Count a finished trial (finished + 1); a running study is `done` at finished ≥ target.

    With `hold_at`, a study whose target is still exactly `hold_at` stays running at its target
    instead: the caller adds trials (seed replicates) with `extend_target`, which ends it.
    """
    with _transaction(engine) as session:
        row = _locked_study(session, study_id)
        _clear_lease(session, study_id, worker_id)
        if row.finished >= row.claimed:
            raise IllegalStateChange(f"study {study_id} has no claimed slot to finish")
        row.finished += 1
        held = _held(row) or (hold_at is not None and row.target_trials == hold_at)
        if row.state in ACTIVE_STATES and row.finished >= row.target_trials and not held:
            row.state = "done"
            row.finished_at = _utcnow(session)
        return _study_record(row)


def _held(row: Study) -> bool:
    """A search that owes seed replicates stays running at its target (the finaliser opens them)."""
    return row.final_step == "replicates"


def extend_target(engine: Engine, study_id: int, extra: int) -> StudyRecord:
    """target + `extra` on a queued/running study; `done` when finished already reaches it.

    The one step that turns a search held at its target (`finish_trial_slot(hold_at=)`) into
    its replicate phase (extra > 0) or ends it (extra = 0), atomically with respect to claims.
    """
    if extra < 0:
        raise ValueError("extra must be >= 0")
    with _transaction(engine) as session:
        row = _locked_study(session, study_id)
        if row.state not in ACTIVE_STATES:
            raise IllegalStateChange(f"study {study_id} is {row.state}: its target is final")
        row.target_trials += extra
        if row.finished >= row.target_trials:
            row.state = "done"
            row.finished_at = _utcnow(session)
        return _study_record(row)


# --- workers ---------------------------------------------------------------------------------


def register_worker(engine: Engine, *, host: str, device: str, pid: int) -> int:
    with _transaction(engine) as session:
        now = _utcnow(session)
        row = Worker(host=host, device=device, pid=pid, started_at=now, last_heartbeat=now)
        session.add(row)
        session.flush()
        return row.id


def heartbeat(
    engine: Engine,
    worker_id: int,
    study_id: int | None = None,
    trial_id: int | None = None,
    trial_number: int | None = None,
) -> None:
    """Mark the worker alive; given values update its lease (None leaves a field as it is)."""
    values: dict[str, Any] = {}
    for field, value in (
        ("study_id", study_id),
        ("trial_id", trial_id),
        ("trial_number", trial_number),
    ):
        if value is not None:
            values[field] = value
    with _transaction(engine) as session:
        values["last_heartbeat"] = _utcnow(session)
        done = session.execute(update(Worker).where(Worker.id == worker_id).values(**values))
        if done.rowcount != 1:
            raise WorkerGone(f"worker {worker_id} was reaped or unregistered")


def unregister_worker(engine: Engine, worker_id: int) -> None:
    """Remove the worker's row; a slot it still holds is given back."""
    with _transaction(engine) as session:
        row = session.get(Worker, worker_id, with_for_update=True)
        if row is None:
            return
        _settle_slot(session, row.study_id, "release")
        session.delete(row)


def list_workers(engine: Engine, alive_within: float | None = None) -> list[WorkerRecord]:
    """Registered workers, optionally only those heard from in the last `alive_within` seconds."""
    with _reading(engine) as session:
        query = select(Worker).order_by(Worker.id)
        if alive_within is not None:
            cutoff = _utcnow(session) - timedelta(seconds=alive_within)
            query = query.where(Worker.last_heartbeat >= cutoff)
        return [_worker_record(row) for row in session.scalars(query)]


# --- the reaper ------------------------------------------------------------------------------


def reap_stale_workers(
    engine: Engine, optuna_storage: BaseStorage, grace_seconds: float
) -> list[int]:
    """Fail the trials of workers silent for `grace_seconds`, give their slots back, retry once.

    Optuna fails a dead worker's trial only when another trial of the same study starts, so a
    lone dead worker's trial would stay RUNNING forever without this. Returns the reaped ids.
    """
    with _transaction(engine) as session:
        cutoff = _utcnow(session) - timedelta(seconds=grace_seconds)
        stale = list(session.scalars(select(Worker).where(Worker.last_heartbeat < cutoff)))
    reaped = [w.id for w in stale if _reap_worker(engine, optuna_storage, w)]
    _fail_orphan_trials(engine, optuna_storage, grace_seconds)
    return reaped


def _reap_worker(engine: Engine, optuna_storage: BaseStorage, worker: Worker) -> bool:
    settle = "release"
    if worker.trial_id is not None:
        state = _fail_and_retry(engine, optuna_storage, worker.study_id, worker.trial_id)
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            # Told but not yet counted when the worker died.
            settle = "finish"
    with _transaction(engine) as session:
        row = session.get(Worker, worker.id, with_for_update=True)
        if row is None:
            return False  # another reaper got there first and settled the slot
        _settle_slot(session, row.study_id, settle)
        session.delete(row)
    logger.warning("reaped worker %s (pid %s on %s)", worker.id, worker.pid, worker.host)
    return True


def _settle_slot(session: Session, study_id: int | None, how: str) -> None:
    if study_id is None:
        return
    row = session.get(Study, study_id, with_for_update=True)
    if row is None or row.claimed <= row.finished:
        return
    if how == "finish":
        row.finished += 1
        if row.state in ACTIVE_STATES and row.finished >= row.target_trials and not _held(row):
            row.state = "done"
            row.finished_at = _utcnow(session)
    else:
        row.claimed -= 1


def _fail_and_retry(
    engine: Engine, optuna_storage: BaseStorage, study_id: int | None, trial_id: int
) -> TrialState | None:
    """FAIL the trial if still RUNNING and, when this call failed it, enqueue one retry."""
    try:
        optuna_storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return optuna_storage.get_trial(trial_id).state  # finished meanwhile, or failed by Optuna
    except KeyError:
        return None  # its Optuna study was deleted
    trial = optuna_storage.get_trial(trial_id)
    if study_id is not None:
        try:
            optuna_name = get_study(engine, study_id).optuna_name
        except StudyNotFound:
            return trial.state
        _enqueue_retry(optuna_storage, optuna_name, trial)
    return trial.state


def _enqueue_retry(optuna_storage: BaseStorage, optuna_name: str, trial: FrozenTrial) -> None:
    if "retry_of" in trial.user_attrs or trial.system_attrs.get("failed_trial") is not None:
        return  # one retry only: a retry that dies again stays failed
    study = optuna.load_study(study_name=optuna_name, storage=optuna_storage)
    # A seed replicate's retry must train the same seed (the worker reads `replicate_seed`).
    kept = {k: trial.user_attrs[k] for k in RETRY_KEEPS_ATTRS if k in trial.user_attrs}
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, **kept})


def _fail_orphan_trials(engine: Engine, optuna_storage: BaseStorage, grace_seconds: float) -> None:
    """FAIL RUNNING trials of running studies that no registered worker holds.

    A trial younger than the grace period is left alone: its worker asked for it and has not
    heartbeated its id yet. Optuna stamps `datetime_start` with the local naive clock.
    """
    with _transaction(engine) as session:
        studies = list(
            session.execute(select(Study.id, Study.optuna_name).where(Study.state == "running"))
        )
        held = set(session.scalars(select(Worker.trial_id).where(Worker.trial_id.is_not(None))))
    started_before = datetime.now() - timedelta(seconds=grace_seconds)
    for study_id, optuna_name in studies:
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
            _fail_and_retry(engine, optuna_storage, study_id, trial._trial_id)
