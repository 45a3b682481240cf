"""The final steps a study owes once its search target is reached, claimed by one worker at a time.

A study owes `replicates` (its search holds at its target until the seed replicates are enqueued
and the target extended; with `repeats: {auto: true}` it stays held, round by round, until the
verdict is decided) and then `score` (its best trial evaluated once on the test split). Any
worker may do a step, whoever settled the last slot; a conditional UPDATE on `final_step_worker`
makes one claimant win, and a claim whose worker row is gone (reaped, unregistered) is free again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from storage.queue import StudyRecord
from storage.queue.records import study_record as _study_record
from storage.queue.sessions import transaction as _transaction
from storage.queue.sessions import utcnow as _utcnow
from storage.queue.wakeup import announce_slots
from storage.schema import Study, Worker


@dataclass(frozen=True)
class OwedStep:
    study_id: int
    optuna_name: str
    spec: dict[str, Any]
    step: str  # "replicates" or "score"


def _unclaimed() -> ColumnElement[bool]:
    live = select(Worker.id)
    return or_(Study.final_step_worker.is_(None), Study.final_step_worker.not_in(live))


def _due() -> ColumnElement[bool]:
    # Replicates are due when the held search has settled every slot; a study that ended early
    # (time budget) owes no replicates, only its score.
    return or_(
        and_(
            Study.final_step == "replicates",
            Study.state == "running",
            Study.finished >= Study.target_trials,
        ),
        and_(Study.final_step.in_(("replicates", "score")), Study.state == "done"),
    )


def owed_steps(engine: Engine) -> list[OwedStep]:
    """Studies with a final step due that no live worker is doing, oldest first."""
    query = (
        select(Study.id, Study.optuna_name, Study.spec, Study.state, Study.final_step)
        .where(_due(), _unclaimed())
        .order_by(Study.id)
    )
    with _transaction(engine) as session:
        rows = list(session.execute(query))
    return [
        OwedStep(i, name, spec, "score" if state == "done" else step)
        for i, name, spec, state, step in rows
    ]


def claim_step(engine: Engine, owed: OwedStep, worker_id: int) -> bool:
    """Take `owed` for `worker_id`; False when another worker has it or it is no longer due."""
    values: dict[str, Any] = {"final_step_worker": worker_id}
    if owed.step == "score":
        values["final_step"] = "score"  # a done study that still said "replicates" ended early
    with _transaction(engine) as session:
        taken = session.execute(
            update(Study).where(Study.id == owed.study_id, _due(), _unclaimed()).values(**values)
        )
        return taken.rowcount == 1


def _replicates_claimed(session: Session, study_id: int, worker_id: int) -> Study | None:
    """The held study's row, locked, while `worker_id` holds its `replicates` step; else None."""
    row = session.get(Study, study_id, with_for_update=True)
    mine = row is not None and row.final_step_worker == worker_id
    if not mine or row.final_step != "replicates" or row.state != "running":
        return None
    return row


def open_replicates(
    engine: Engine, study_id: int, worker_id: int, extra: int
) -> StudyRecord | None:
    """target + `extra`, next step `score`; `done` at once when there is nothing to replicate.

    None when `worker_id` no longer holds the claim (reaped meanwhile): nothing is changed.
    """
    with _transaction(engine) as session:
        row = _replicates_claimed(session, study_id, worker_id)
        if row is None:
            return None
        row.target_trials += extra
        row.final_step, row.final_step_worker = "score", None
        if row.finished >= row.target_trials:
            row.state = "done"
            row.finished_at = _utcnow(session)
        return _study_record(row)


def extend_replicates(
    engine: Engine, study_id: int, worker_id: int, extra: int
) -> StudyRecord | None:
    """target + `extra` (> 0) with the study still held at its new target and its `replicates`
    step given back: one round of `repeats: {auto: true}`, whose next round is due once these
    `extra` replicates are settled. None when `worker_id` no longer holds the claim."""
    if extra <= 0:
        raise ValueError("extra must be > 0: a round that adds nothing closes with open_replicates")
    with _transaction(engine) as session:
        row = _replicates_claimed(session, study_id, worker_id)
        if row is None:
            return None
        row.target_trials += extra
        row.final_step_worker = None
        announce_slots(session)  # the new replicates' slots are open now
        return _study_record(row)


def record_score(
    engine: Engine, study_id: int, worker_id: int, score: float | None, seconds: float | None = None
) -> bool:
    """Store the test score (None: nothing to score) with when it was recorded and the `seconds`
    its retraining took, and close the study's final steps, once."""
    with _transaction(engine) as session:
        scored: dict[str, Any] = {}
        if score is not None:
            scored = {
                "test_score": score,
                "test_scored_at": _utcnow(session),
                "test_score_seconds": seconds,
            }
        done = session.execute(
            update(Study)
            .where(
                Study.id == study_id,
                Study.final_step == "score",
                Study.final_step_worker == worker_id,
            )
            .values(final_step=None, final_step_worker=None, **scored)
        )
        return done.rowcount == 1


def release_step(engine: Engine, study_id: int, worker_id: int) -> None:
    """Give a claimed step back undone (interrupted, or the storage failed): another retries it."""
    with _transaction(engine) as session:
        session.execute(
            update(Study)
            .where(Study.id == study_id, Study.final_step_worker == worker_id)
            .values(final_step_worker=None)
        )
