"""Trial slots and their leases: claim, release, finish, and a held search's target extension.

`settle_slot` is the reaper's and `unregister_worker`'s way to settle a slot a worker left behind.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from storage.queue.records import IllegalStateChange, StudyRecord, WorkerGone, study_record
from storage.queue.sessions import locked_study, transaction, utcnow
from storage.queue.wakeup import announce_slots
from storage.schema import ACTIVE_STATES, Study, Worker

# The user attribute of a trial told the known result of a run its study already has: it does not
# count towards the target, so its slot is given back (by its worker, or by the reaper).
DUPLICATE_ATTR = "duplicate_of"


def claim_trial_slot(
    engine: Engine, worker_id: int, *, study_id: int | None = None, skip: Collection[int] = ()
) -> StudyRecord | None:
    """Take one trial slot of the highest-priority, then oldest, runnable study; never past target.

    With `study_id`, only a slot of that study (a batching worker fills its batch from one study).
    `skip`: studies this worker cannot serve (a model family it lacks), left to other workers.

    SQLite: the whole transaction holds the write lock (BEGIN IMMEDIATE). PostgreSQL: the row is
    locked with SKIP LOCKED so concurrent claimers move on to the next study instead of queueing.
    The conditional UPDATE re-checks `claimed < target_trials` either way.
    """
    runnable = ((Study.state.in_(ACTIVE_STATES)) & (Study.claimed < Study.target_trials),)
    if study_id is not None:
        runnable = (*runnable, Study.id == study_id)
    if skip:
        runnable = (*runnable, Study.id.not_in(list(skip)))
    with transaction(engine) as session:
        now = utcnow(session)
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
        return study_record(session.get(Study, picked, populate_existing=True))


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
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        _clear_lease(session, study_id, worker_id)
        if row.claimed <= row.finished:
            raise IllegalStateChange(f"study {study_id} has no unfinished slot to release")
        row.claimed -= 1
        announce_slots(session)
        return study_record(row)


def finish_trial_slot(
    engine: Engine, study_id: int, worker_id: int | None = None, *, hold_at: int | None = None
) -> StudyRecord:
    """Count a finished trial (finished + 1); a running study is `done` at finished ≥ target.

    With `hold_at`, a study whose target is still exactly `hold_at` stays running at its target
    instead: the caller adds trials (seed replicates) with `extend_target`, which ends it.
    """
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        _clear_lease(session, study_id, worker_id)
        if row.finished >= row.claimed:
            raise IllegalStateChange(f"study {study_id} has no claimed slot to finish")
        row.finished += 1
        held = _held(row) or (hold_at is not None and row.target_trials == hold_at)
        if row.state in ACTIVE_STATES and row.finished >= row.target_trials and not held:
            row.state = "done"
            row.finished_at = utcnow(session)
        return study_record(row)


def end_search_early(engine: Engine, study_id: int, worker_id: int | None = None) -> StudyRecord:
    """Stop handing out slots: `worker_id`'s slot goes back and the target drops to what is
    claimed, so trials still in flight finish and count, and the last one ends the study (or
    holds it for its replicates, as reaching the target would).
    """
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        if row.state not in ACTIVE_STATES:
            raise IllegalStateChange(f"study {study_id} is {row.state}: its target is final")
        if worker_id is not None:
            _clear_lease(session, study_id, worker_id)
            if row.claimed > row.finished:
                row.claimed -= 1
        row.target_trials = max(row.claimed, row.finished)
        if row.finished >= row.target_trials and not _held(row):
            row.state = "done"
            row.finished_at = utcnow(session)
        return study_record(row)


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
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        if row.state not in ACTIVE_STATES:
            raise IllegalStateChange(f"study {study_id} is {row.state}: its target is final")
        row.target_trials += extra
        if extra:
            announce_slots(session)
        if row.finished >= row.target_trials:
            row.state = "done"
            row.finished_at = utcnow(session)
        return study_record(row)


def settle_slot(session: Session, study_id: int | None, how: str) -> None:
    """Settle a slot a worker left behind (`how`: "finish" or "release"); none open, nothing."""
    if study_id is None:
        return
    row = session.get(Study, study_id, with_for_update=True)
    if row is None or row.claimed <= row.finished:
        return
    if how == "finish":
        row.finished += 1
        if row.state in ACTIVE_STATES and row.finished >= row.target_trials and not _held(row):
            row.state = "done"
            row.finished_at = utcnow(session)
    else:
        row.claimed -= 1
        announce_slots(session)
