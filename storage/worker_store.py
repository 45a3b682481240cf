"""The worker's one seam to storage: `WorkerStore`, every persistence call a worker makes.

A worker claims slots, heartbeats its row and its leases, asks and tells Optuna, records trial
attributes, reports epochs, reads what the pruner and the repeat check need, and does the final
steps a study owes — all through one of these, as procrastinate's worker goes through its job
manager and Optuna's study through `BaseStorage`. Two implementations: `SqlWorkerStore`
(`storage.sql_store`: our tables plus Optuna's RDB storage, or its gRPC proxy) and
`MemoryWorkerStore` (`storage.memory_store`: dicts plus Optuna's in-memory storage, for fast
tests). One contract suite (`tests/storage/test_worker_store.py`) holds both to the same rules.

The Optuna side is shared: `OptunaTrialCalls` below works on any Optuna storage (an RDB storage
takes the one-transaction paths of `trial_batch`, `trial_attrs` and `pruning_reads`; any other
storage the public API). A `Study` the store loads is bound to the store's Optuna storage, so
what Optuna's own API writes through it (a sampler's `suggest_*`) lands in the same place.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from storage import trial_store
from storage.final_steps import OwedStep
from storage.optuna_storage import STORAGE_ERRORS
from storage.pruning_reads import CompletedTrials, prune_decisions
from storage.queue.records import IllegalStateChange, StudyNotFound, StudyRecord, WorkerGone
from storage.queue.slots import DUPLICATE_ATTR
from storage.trial_batch import report_many, set_many_user_attrs

__all__ = [
    "DUPLICATE_ATTR",
    "NO_TRIAL_NUMBER",
    "STORAGE_ERRORS",
    "CompletedTrials",
    "IllegalStateChange",
    "OptunaTrialCalls",
    "OwedStep",
    "SlotWaiting",
    "StudyNotFound",
    "StudyRecord",
    "WorkerGone",
    "WorkerStore",
]

NO_TRIAL_NUMBER = trial_store.NO_TRIAL_NUMBER


class SlotWaiting(Protocol):
    """An idle worker's wait between claims (`storage.queue.SlotWaiter`)."""

    def wait(self, timeout: float, stop: threading.Event) -> bool: ...

    def close(self) -> None: ...


class WorkerStore(Protocol):
    """Every persistence call of a worker. Queue calls raise `WorkerGone` when the worker's row
    (or lease) is gone, `StudyNotFound` and `IllegalStateChange` as `storage.queue` does, and
    one of `STORAGE_ERRORS` while the storage cannot be reached."""

    optuna_storage: BaseStorage

    # --- the registry and its leases (`storage.queue.workers`, `slots`) ---
    def register_worker(
        self, *, host: str, device: str, pid: int, lease_of: int | None = None
    ) -> int: ...

    def unregister_worker(self, worker_id: int) -> None: ...

    def heartbeat(
        self,
        worker_id: int,
        study_id: int | None = None,
        trial_id: int | None = None,
        trial_number: int | None = None,
    ) -> None: ...

    def claim_trial_slot(
        self, worker_id: int, *, study_id: int | None = None, skip: Collection[int] = ()
    ) -> StudyRecord | None: ...

    def release_trial_slot(self, study_id: int, worker_id: int | None = None) -> StudyRecord: ...

    def finish_trial_slot(
        self, study_id: int, worker_id: int | None = None, *, hold_at: int | None = None
    ) -> StudyRecord: ...

    def end_search_early(self, study_id: int, worker_id: int | None = None) -> StudyRecord: ...

    def reap_stale_workers(self, grace_seconds: float) -> list[int]: ...

    def slot_waiter(self) -> SlotWaiting: ...

    # --- study rows (`storage.queue.studies`) ---
    def get_study(self, study_id: int) -> StudyRecord: ...

    def count_studies(self, state: str | None = None) -> int: ...

    def end_study_early(self, study_id: int) -> StudyRecord: ...

    def fail_study(self, study_id: int, error: str) -> StudyRecord: ...

    # --- final steps (`storage.final_steps`) ---
    def owed_steps(self) -> list[OwedStep]: ...

    def claim_step(self, owed: OwedStep, worker_id: int) -> bool: ...

    def open_replicates(self, study_id: int, worker_id: int, extra: int) -> StudyRecord | None: ...

    def extend_replicates(
        self, study_id: int, worker_id: int, extra: int
    ) -> StudyRecord | None: ...

    def record_score(
        self, study_id: int, worker_id: int, score: float | None, seconds: float | None = None
    ) -> bool: ...

    def release_step(self, study_id: int, worker_id: int) -> None: ...

    # --- Optuna: studies and trials (`OptunaTrialCalls`) ---
    def load_study(
        self,
        name: str,
        *,
        sampler: BaseSampler | None = None,
        pruner: BasePruner | None = None,
    ) -> optuna.Study: ...

    def set_study_attr(self, study: optuna.Study, key: str, value: Any) -> None: ...

    def ask(self, study: optuna.Study) -> optuna.Trial: ...

    def tell(
        self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any
    ) -> tuple[FrozenTrial | None, Exception | None]: ...

    def fail_for_retry(self, study: optuna.Study, trial: optuna.Trial, error: str) -> None: ...

    def fail_stored_trial(self, study: optuna.Study, trial: FrozenTrial) -> None: ...

    def enqueue_trial(
        self, study: optuna.Study, params: dict[str, Any], user_attrs: dict[str, Any]
    ) -> None: ...

    def set_user_attrs(self, items: Sequence[tuple[optuna.Trial, Mapping[str, Any]]]) -> None: ...

    def set_constraints(self, trial: optuna.Trial, violations: dict[str, float]) -> None: ...

    def report(self, reports: Sequence[tuple[optuna.Trial, int, float]]) -> None: ...

    def prune_decisions(
        self, trials: Sequence[optuna.Trial], completed: CompletedTrials
    ) -> list[bool]: ...

    def trials(
        self, study: optuna.Study, states: tuple[TrialState, ...] | None = None
    ) -> list[FrozenTrial]: ...

    def read_back(self, study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial: ...

    def first_with_attr(
        self,
        study: optuna.Study,
        key: str,
        value: Any,
        *,
        before: int,
        states: tuple[TrialState, ...] = (TrialState.COMPLETE,),
    ) -> FrozenTrial | None: ...

    def trial_id(self, trial: optuna.Trial) -> int: ...

    def has_user_attr(self, trial: optuna.Trial, key: str) -> bool: ...


class OptunaTrialCalls:
    """The Optuna half of a `WorkerStore`, on any Optuna storage (`self.optuna_storage`)."""

    optuna_storage: BaseStorage

    def load_study(
        self,
        name: str,
        *,
        sampler: BaseSampler | None = None,
        pruner: BasePruner | None = None,
    ) -> optuna.Study:
        """The Optuna study `name`; raises `KeyError` when it does not exist (yet)."""
        return optuna.load_study(
            study_name=name, storage=self.optuna_storage, sampler=sampler, pruner=pruner
        )

    def set_study_attr(self, study: optuna.Study, key: str, value: Any) -> None:
        study.set_user_attr(key, value)

    def ask(self, study: optuna.Study) -> optuna.Trial:
        return study.ask()

    def tell(
        self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any
    ) -> tuple[FrozenTrial | None, Exception | None]:
        """`trial_store.tell_or_read_back`: (told, None), or (None, why) when someone else (the
        reaper) finished the trial first."""
        return trial_store.tell_or_read_back(study, trial, **kwargs)

    def fail_for_retry(self, study: optuna.Study, trial: optuna.Trial, error: str) -> None:
        trial_store.fail_for_retry(study, trial, error)

    def fail_stored_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial_store.fail_stored_trial(study, trial)

    def enqueue_trial(
        self, study: optuna.Study, params: dict[str, Any], user_attrs: dict[str, Any]
    ) -> None:
        study.enqueue_trial(params, user_attrs=user_attrs)

    def set_user_attrs(self, items: Sequence[tuple[optuna.Trial, Mapping[str, Any]]]) -> None:
        """Each trial's attributes, in one transaction where the storage allows
        (`trial_batch.set_many_user_attrs`); a finished trial among them raises
        `UpdateFinishedTrialError` and nothing is written."""
        set_many_user_attrs(items)

    def set_constraints(self, trial: optuna.Trial, violations: dict[str, float]) -> None:
        trial_store.set_constraints(trial, violations)

    def report(self, reports: Sequence[tuple[optuna.Trial, int, float]]) -> None:
        """(trial, step, value) intermediate values, in one transaction where the storage
        allows (`trial_batch.report_many`)."""
        report_many(reports)

    def prune_decisions(
        self, trials: Sequence[optuna.Trial], completed: CompletedTrials
    ) -> list[bool]:
        return prune_decisions(trials, completed)

    def trials(
        self, study: optuna.Study, states: tuple[TrialState, ...] | None = None
    ) -> list[FrozenTrial]:
        return study.get_trials(deepcopy=False, states=states)

    def read_back(self, study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
        return trial_store.read_back(study, trial)

    def first_with_attr(
        self,
        study: optuna.Study,
        key: str,
        value: Any,
        *,
        before: int,
        states: tuple[TrialState, ...] = (TrialState.COMPLETE,),
    ) -> FrozenTrial | None:
        return trial_store.first_with_attr(study, key, value, before=before, states=states)

    def trial_id(self, trial: optuna.Trial) -> int:
        return trial_store.trial_id(trial)

    def has_user_attr(self, trial: optuna.Trial, key: str) -> bool:
        return trial_store.has_user_attr(trial, key)
