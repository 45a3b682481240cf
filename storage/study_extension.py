"""A finished study carries on: a done or cancelled study gets N more trial slots (→ queued).

The queue's own transitions end a study (`storage.queue.studies`); this is the one that reopens
it, in one transaction over the same row and the same helpers, so claims see either the finished
study or the extended one, never half of it. After it the study runs like any other: workers
claim its slots (queued → running), the sampler continues from every trial the Optuna study
already holds (a configuration it has measured is answered from its known result and its slot
given back, so the N runs are distinct), and the last slot ends it (running → done).

What it owes again: with seed replicates (`replicates=True`, the spec's `repeats`), the
`replicates` step, so the extended search is held at its new target and the finaliser
replicates the configurations that now lead and have none yet (only those: each replicate is
enqueued once, and only the ones still waiting are added to the target); then, as without,
its test score (`final_step` "score": the best trial may have changed).
"""

from __future__ import annotations

from sqlalchemy import Engine

from storage.queue.records import IllegalStateChange, StudyRecord, study_record
from storage.queue.sessions import locked_study, transaction
from storage.queue.wakeup import announce_slots

EXTENDABLE_STATES = ("done", "cancelled")


def extend_finished_study(
    engine: Engine, study_id: int, extra: int, *, replicates: bool
) -> StudyRecord:
    """done/cancelled → queued with target = finished + `extra`; its final steps are owed again:
    `replicates` (the study's spec has `repeats`) and the test score, or the score alone.

    `IllegalStateChange` for a study that is queued, running or failed, or whose cancelled
    trials are still settling (claimed > finished: their workers have not given them back yet).
    """
    check_extra(extra)
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        refuse_unless_extendable(study_id, row.state, row.claimed, row.finished)
        row.state = "queued"
        row.target_trials = row.finished + extra
        # The time budget (`search.timeout`) counts from the first claim of each run.
        row.started_at = None
        row.finished_at = None
        row.error = None
        row.test_score = row.test_scored_at = row.test_score_seconds = None
        row.final_step = "replicates" if replicates else "score"
        row.final_step_worker = None
        announce_slots(session)
        return study_record(row)


def check_extra(extra: int) -> None:
    if extra < 1:
        raise ValueError("extra must be >= 1")


def refuse_unless_extendable(study_id: int, state: str, claimed: int, finished: int) -> None:
    """`IllegalStateChange` unless the study may be extended (the rule both stores keep)."""
    if state not in EXTENDABLE_STATES:
        what = "has failed: submit its spec again" if state == "failed" else "is " + state
        raise IllegalStateChange(
            f"study {study_id} {what}; only a done or cancelled study can be extended"
        )
    if claimed != finished:
        raise IllegalStateChange(
            f"study {study_id} still has {claimed - finished} trial(s) settling "
            "after its cancel; extend it again in a few seconds"
        )
