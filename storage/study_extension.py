"""A finished study carries on: a done or cancelled study gets N more trial slots (→ queued).

The queue's own transitions end a study (`storage.queue.studies`); this is the one that reopens
it, in one transaction over the same row and the same helpers, so claims see either the finished
study or the extended one, never half of it. After it the study runs like any other: workers
claim its slots (queued → running), the sampler continues from every trial the Optuna study
already holds (a configuration it has measured is answered from its known result and its slot
given back, so the N runs are distinct), and the last slot ends it (running → done).

What it owes again once done: its test score (`final_step` "score": the best trial may have
changed). A study whose seed replicates were never opened (cancelled during its search) still
owes them first. One whose replicates ran does not get new ones for a new leader: the verdict
keeps choosing among replicated configurations (`analysis.verdict`), so it stays valid, and
the extension's new configurations show unreplicated until replicates are owed again by the
finaliser (a hook for after the worker's storage seam: `final_steps.open_replicates` counts
every replicate the study has, so re-opening it would over-extend the target).
"""

from __future__ import annotations

from sqlalchemy import Engine

from storage.queue.records import IllegalStateChange, StudyRecord, study_record
from storage.queue.sessions import locked_study, transaction
from storage.queue.wakeup import announce_slots

EXTENDABLE_STATES = ("done", "cancelled")


def extend_finished_study(engine: Engine, study_id: int, extra: int) -> StudyRecord:
    """done/cancelled → queued with target = finished + `extra`; its test score is owed again.

    `IllegalStateChange` for a study that is queued, running or failed, or whose cancelled
    trials are still settling (claimed > finished: their workers have not given them back yet).
    """
    if extra < 1:
        raise ValueError("extra must be >= 1")
    with transaction(engine) as session:
        row = locked_study(session, study_id)
        if row.state not in EXTENDABLE_STATES:
            what = (
                "has failed: submit its spec again" if row.state == "failed" else "is " + row.state
            )
            raise IllegalStateChange(
                f"study {study_id} {what}; only a done or cancelled study can be extended"
            )
        if row.claimed != row.finished:
            raise IllegalStateChange(
                f"study {study_id} still has {row.claimed - row.finished} trial(s) settling "
                "after its cancel; extend it again in a few seconds"
            )
        row.state = "queued"
        row.target_trials = row.finished + extra
        # The time budget (`search.timeout`) counts from the first claim of each run.
        row.started_at = None
        row.finished_at = None
        row.error = None
        row.test_score = row.test_scored_at = row.test_score_seconds = None
        if row.final_step != "replicates":  # never opened: still owed before the score
            row.final_step = "score"
        row.final_step_worker = None
        announce_slots(session)
        return study_record(row)
