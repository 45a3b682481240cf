"""The study queue, trial-slot leases, the worker registry and the reaper of dead workers.

A worker's *lease* is the trial slot it holds: `claim_trial_slot` records the study on the worker's
row, `heartbeat(..., trial_id=, trial_number=)` adds the Optuna trial once asked, and
`finish_trial_slot` / `release_trial_slot` with `worker_id=` settle the slot and clear the lease in
one transaction. The reaper settles the leases of workers whose heartbeat went stale, so a slot is
counted exactly once whoever settles it.

`records` holds the records and exceptions, `sessions` the transactions, `studies` the study
rows, `slots` the slots and leases, `workers` the registry, `reaper` the reaper; callers use
`storage.queue.X` for all of them.
"""

from storage.queue.reaper import reap_stale_workers
from storage.queue.records import (
    IllegalStateChange,
    StudyNotFound,
    StudyRecord,
    WorkerGone,
    WorkerRecord,
)
from storage.queue.slots import (
    DUPLICATE_ATTR,
    claim_trial_slot,
    end_search_early,
    extend_target,
    finish_trial_slot,
    release_trial_slot,
)
from storage.queue.studies import (
    cancel_study,
    count_studies,
    delete_study,
    end_study_early,
    fail_study,
    get_study,
    list_studies,
    set_test_score,
    submit_study,
)
from storage.queue.wakeup import SlotWaiter, slot_open, wake_workers
from storage.queue.workers import heartbeat, list_workers, register_worker, unregister_worker

__all__ = [
    "DUPLICATE_ATTR",
    "IllegalStateChange",
    "SlotWaiter",
    "StudyNotFound",
    "StudyRecord",
    "WorkerGone",
    "WorkerRecord",
    # storage.final_steps's imports of these predate this package.
    "cancel_study",
    "claim_trial_slot",
    "count_studies",
    "delete_study",
    "end_search_early",
    "end_study_early",
    "extend_target",
    "fail_study",
    "finish_trial_slot",
    "get_study",
    "heartbeat",
    "list_studies",
    "list_workers",
    "reap_stale_workers",
    "register_worker",
    "release_trial_slot",
    "set_test_score",
    "slot_open",
    "submit_study",
    "unregister_worker",
    "wake_workers",
]
