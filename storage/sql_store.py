"""`SqlWorkerStore`: the worker's store on our database (`storage.queue`, `storage.final_steps`)
and Optuna's storage on the same URL, an RDB storage or the gRPC proxy in front of it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from optuna.storages import BaseStorage
from sqlalchemy import Engine

from storage import final_steps, queue, study_extension
from storage.final_steps import OwedStep
from storage.queue import StudyRecord
from storage.worker_store import OptunaTrialCalls, SlotWaiting


@dataclass
class SqlWorkerStore(OptunaTrialCalls):
    """A `WorkerStore` over SQLAlchemy `engine` (our tables) and `optuna_storage`."""

    engine: Engine
    optuna_storage: BaseStorage

    def register_worker(
        self, *, host: str, device: str, pid: int, lease_of: int | None = None
    ) -> int:
        return queue.register_worker(
            self.engine, host=host, device=device, pid=pid, lease_of=lease_of
        )

    def unregister_worker(self, worker_id: int) -> None:
        queue.unregister_worker(self.engine, worker_id)

    def heartbeat(
        self,
        worker_id: int,
        study_id: int | None = None,
        trial_id: int | None = None,
        trial_number: int | None = None,
    ) -> None:
        queue.heartbeat(self.engine, worker_id, study_id, trial_id, trial_number)

    def claim_trial_slot(
        self, worker_id: int, *, study_id: int | None = None, skip: Collection[int] = ()
    ) -> StudyRecord | None:
        return queue.claim_trial_slot(self.engine, worker_id, study_id=study_id, skip=skip)

    def release_trial_slot(self, study_id: int, worker_id: int | None = None) -> StudyRecord:
        return queue.release_trial_slot(self.engine, study_id, worker_id=worker_id)

    def finish_trial_slot(
        self, study_id: int, worker_id: int | None = None, *, hold_at: int | None = None
    ) -> StudyRecord:
        return queue.finish_trial_slot(self.engine, study_id, worker_id=worker_id, hold_at=hold_at)

    def end_search_early(self, study_id: int, worker_id: int | None = None) -> StudyRecord:
        return queue.end_search_early(self.engine, study_id, worker_id=worker_id)

    def reap_stale_workers(self, grace_seconds: float) -> list[int]:
        return queue.reap_stale_workers(self.engine, self.optuna_storage, grace_seconds)

    def slot_waiter(self) -> SlotWaiting:
        return queue.SlotWaiter(self.engine)

    def get_study(self, study_id: int) -> StudyRecord:
        return queue.get_study(self.engine, study_id)

    def count_studies(self, state: str | None = None) -> int:
        return queue.count_studies(self.engine, state)

    def end_study_early(self, study_id: int) -> StudyRecord:
        return queue.end_study_early(self.engine, study_id)

    def fail_study(self, study_id: int, error: str) -> StudyRecord:
        return queue.fail_study(self.engine, study_id, error)

    def owed_steps(self) -> list[OwedStep]:
        return final_steps.owed_steps(self.engine)

    def claim_step(self, owed: OwedStep, worker_id: int) -> bool:
        return final_steps.claim_step(self.engine, owed, worker_id)

    def open_replicates(self, study_id: int, worker_id: int, extra: int) -> StudyRecord | None:
        return final_steps.open_replicates(self.engine, study_id, worker_id, extra)

    def extend_replicates(self, study_id: int, worker_id: int, extra: int) -> StudyRecord | None:
        return final_steps.extend_replicates(self.engine, study_id, worker_id, extra)

    def record_score(
        self, study_id: int, worker_id: int, score: float | None, seconds: float | None = None
    ) -> bool:
        return final_steps.record_score(self.engine, study_id, worker_id, score, seconds)

    def release_step(self, study_id: int, worker_id: int) -> None:
        final_steps.release_step(self.engine, study_id, worker_id)

    # --- submitting (not a worker call: `studyd.daemon.service.submit_spec` and tests) ---
    def submit_study(self, **fields: Any) -> StudyRecord:
        """`storage.queue.submit_study` (name, spec, target_trials, priority, idempotency_key,
        final_step)."""
        return queue.submit_study(self.engine, **fields)

    def wake_workers(self) -> None:
        queue.wake_workers(self.engine)

    def extend_study(self, study_id: int, extra: int, *, replicates: bool) -> StudyRecord:
        """`storage.study_extension.extend_finished_study` (what `POST /studies/ID/extend` does)."""
        return study_extension.extend_finished_study(
            self.engine, study_id, extra, replicates=replicates
        )
