"""Studies in the queue: submit, read, list, count, score, end and delete."""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage
from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from storage.engine import read_connection
from storage.queue.records import IllegalStateChange, StudyNotFound, StudyRecord, study_record
from storage.queue.sessions import locked_study, reading, transaction, utcnow
from storage.schema import FINAL_STATES, Study, Worker


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
    Idle PostgreSQL workers wake at `wake_workers`, which the caller sends once the study can be
    served (its Optuna study made); without it they find it within their poll period.
    """
    if target_trials < 1:
        raise ValueError("target_trials must be at least 1")
    try:
        with transaction(engine) as session:
            if idempotency_key is not None:
                existing = session.scalar(
                    select(Study).where(Study.idempotency_key == idempotency_key)
                )
                if existing is not None:
                    return study_record(existing)
            row = Study(
                name=name,
                spec=spec,
                state="queued",
                priority=priority,
                target_trials=target_trials,
                claimed=0,
                finished=0,
                created_at=utcnow(session),
                idempotency_key=idempotency_key,
                final_step=final_step,
            )
            session.add(row)
            session.flush()
            row.optuna_name = f"{name}-{row.id}"
            return study_record(row)
    except IntegrityError:
        # Two submits with one key raced (PostgreSQL): the loser returns the winner's study.
        if idempotency_key is None:
            raise
        with transaction(engine) as session:
            existing = session.scalar(select(Study).where(Study.idempotency_key == idempotency_key))
            if existing is None:
                raise
            return study_record(existing)


# The record's columns by a Core select: the API reads one study per request, and loading it
# through the ORM (`Session.get`: a session, an identity map, an instance) was 40-55% of a
# `GET /studies/{id}` or `/summary` at 10 000 trials. Built once, so its compiled form is cached.
_STUDY_BY_ID = select(*(Study.__table__.c[f] for f in StudyRecord.__dataclass_fields__)).where(
    Study.id == bindparam("study_id")
)


def get_study(engine: Engine | Connection, study_id: int) -> StudyRecord:
    with read_connection(engine) as conn:
        row = conn.execute(_STUDY_BY_ID, {"study_id": study_id}).first()
    if row is None:
        raise StudyNotFound(f"study {study_id} does not exist")
    return StudyRecord(*row)


def list_studies(
    engine: Engine, state: str | None = None, *, limit: int = 50, offset: int = 0
) -> list[StudyRecord]:
    """A page of studies, newest first."""
    query = select(Study).order_by(Study.id.desc()).limit(limit).offset(offset)
    if state is not None:
        query = query.where(Study.state == state)
    with reading(engine) as session:
        return [study_record(row) for row in session.scalars(query)]


def count_studies(engine: Engine, state: str | None = None) -> int:
    query = select(func.count()).select_from(Study)
    if state is not None:
        query = query.where(Study.state == state)
    with reading(engine) as session:
        return int(session.scalar(query) or 0)


def set_test_score(engine: Engine, study_id: int, score: float) -> StudyRecord:
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        row.test_score = score
        return study_record(row)


def _end_study(engine: Engine, study_id: int, state: str, error: str | None = None) -> StudyRecord:
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        if row.state in FINAL_STATES:
            raise IllegalStateChange(f"study {study_id} is already {row.state}")
        row.state = state
        row.finished_at = utcnow(session)
        if error is not None:
            row.error = error
        return study_record(row)


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
    with transaction(engine) as session:
        session.execute(delete(Study).where(Study.id == study_id))
        # A worker still finishing a trial of the study (cancelled, then deleted at once) must not
        # keep a lease on its id: released or reaped later, it would settle a slot of whichever
        # study holds that id next.
        session.execute(
            update(Worker)
            .where(Worker.study_id == study_id)
            .values(study_id=None, trial_id=None, trial_number=None)
        )
