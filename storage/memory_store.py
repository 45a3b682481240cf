"""`MemoryWorkerStore`: the worker's store in one process's memory, for fast tests.

The queue and the registry are plain dicts under one lock, with the SQL store's rules (a claim
never passes the target, a lease is cleared once, a reaped worker's trial is failed and retried
once, a held search waits for its replicates); the trials live in Optuna's `InMemoryStorage`.
What it does not model: other processes (it is one process's memory), PostgreSQL's wake-ups
(its waiter polls), and the API's reads. `tests/storage/test_worker_store.py` holds it to the
same contract as `SqlWorkerStore` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from storage.final_steps import OwedStep
from storage.queue.reaper import REAPED_ERROR
from storage.queue.records import IllegalStateChange, StudyNotFound, StudyRecord, WorkerGone
from storage.queue.slots import DUPLICATE_ATTR
from storage.study_extension import check_extra, refuse_unless_extendable
from storage.trial_store import enqueue_retry
from storage.worker_store import OptunaTrialCalls

ACTIVE = ("queued", "running")
# How often an idle worker's wait looks for an open slot.
WAIT_POLL_S = 0.02


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the queue's timestamps are naive UTC


@dataclass
class _Study:
    """A study row: `StudyRecord`'s fields plus the final step and who holds it."""

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
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    test_score: float | None = None
    idempotency_key: str | None = None
    test_scored_at: datetime | None = None
    test_score_seconds: float | None = None
    final_step: str | None = None
    final_step_worker: int | None = None

    def record(self) -> StudyRecord:
        return StudyRecord(**{f.name: getattr(self, f.name) for f in fields(StudyRecord)})

    def done(self) -> None:
        self.state, self.finished_at = "done", _now()

    def held(self) -> bool:
        """A search owing seed replicates stays running at its target."""
        return self.final_step == "replicates"


@dataclass
class _Worker:
    id: int
    host: str
    device: str
    pid: int
    last_heartbeat: float  # time.monotonic()
    study_id: int | None = None
    trial_id: int | None = None
    trial_number: int | None = None
    lease_of: int | None = None  # an extra slot's row of this worker's stack


class MemoryWorkerStore(OptunaTrialCalls):
    """A `WorkerStore` in memory (thread-safe: a worker's heartbeat thread shares it)."""

    def __init__(self) -> None:
        self.optuna_storage = optuna.storages.InMemoryStorage()
        self._lock = threading.RLock()
        self._studies: dict[int, _Study] = {}
        self._workers: dict[int, _Worker] = {}
        self._ids = {"study": 0, "worker": 0}  # never reused, as PostgreSQL's sequences

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _study(self, study_id: int) -> _Study:
        row = self._studies.get(study_id)
        if row is None:
            raise StudyNotFound(f"study {study_id} not found")
        return row

    # --- the registry and its leases ---
    def register_worker(
        self, *, host: str, device: str, pid: int, lease_of: int | None = None
    ) -> int:
        with self._lock:
            worker_id = self._next("worker")
            self._workers[worker_id] = _Worker(
                worker_id, host, device, pid, time.monotonic(), lease_of=lease_of
            )
            return worker_id

    def unregister_worker(self, worker_id: int) -> None:
        with self._lock:
            row = self._workers.pop(worker_id, None)
            if row is not None:
                self._settle(row.study_id, "release")

    def heartbeat(
        self,
        worker_id: int,
        study_id: int | None = None,
        trial_id: int | None = None,
        trial_number: int | None = None,
    ) -> None:
        with self._lock:
            row = self._workers.get(worker_id)
            if row is None:
                raise WorkerGone(f"worker {worker_id} was reaped or unregistered")
            row.last_heartbeat = time.monotonic()
            for name, value in (("study_id", study_id), ("trial_id", trial_id)):
                if value is not None:
                    setattr(row, name, value)
            if trial_number is not None:
                row.trial_number = trial_number

    def claim_trial_slot(
        self, worker_id: int, *, study_id: int | None = None, skip: Collection[int] = ()
    ) -> StudyRecord | None:
        with self._lock:
            open_ = [
                s
                for s in self._studies.values()
                if s.state in ACTIVE
                and s.claimed < s.target_trials
                and (study_id is None or s.id == study_id)
                and s.id not in skip
            ]
            if not open_:
                return None
            worker = self._workers.get(worker_id)
            if worker is None:
                raise WorkerGone(f"worker {worker_id} is not registered")
            row = min(open_, key=lambda s: (-s.priority, s.created_at, s.id))
            row.claimed += 1
            row.state = "running"
            row.started_at = row.started_at or _now()
            worker.study_id, worker.trial_id, worker.trial_number = row.id, None, None
            worker.last_heartbeat = time.monotonic()
            return row.record()

    def _clear_lease(self, study_id: int, worker_id: int | None) -> None:
        if worker_id is None:
            return
        worker = self._workers.get(worker_id)
        if worker is None or worker.study_id != study_id:
            raise WorkerGone(f"worker {worker_id} holds no slot of study {study_id}")
        worker.study_id = worker.trial_id = worker.trial_number = None

    def release_trial_slot(self, study_id: int, worker_id: int | None = None) -> StudyRecord:
        with self._lock:
            row = self._study(study_id)
            self._clear_lease(study_id, worker_id)
            if row.claimed <= row.finished:
                raise IllegalStateChange(f"study {study_id} has no unfinished slot to release")
            row.claimed -= 1
            return row.record()

    def finish_trial_slot(
        self, study_id: int, worker_id: int | None = None, *, hold_at: int | None = None
    ) -> StudyRecord:
        with self._lock:
            row = self._study(study_id)
            self._clear_lease(study_id, worker_id)
            if row.finished >= row.claimed:
                raise IllegalStateChange(f"study {study_id} has no claimed slot to finish")
            row.finished += 1
            held = row.held() or (hold_at is not None and row.target_trials == hold_at)
            if row.state in ACTIVE and row.finished >= row.target_trials and not held:
                row.done()
            return row.record()

    def end_search_early(self, study_id: int, worker_id: int | None = None) -> StudyRecord:
        with self._lock:
            row = self._study(study_id)
            if row.state not in ACTIVE:
                raise IllegalStateChange(f"study {study_id} is {row.state}: its target is final")
            if worker_id is not None:
                self._clear_lease(study_id, worker_id)
                if row.claimed > row.finished:
                    row.claimed -= 1
            row.target_trials = max(row.claimed, row.finished)
            if row.finished >= row.target_trials and not row.held():
                row.done()
            return row.record()

    def _settle(self, study_id: int | None, how: str) -> None:
        """A slot a worker left behind: counted ("finish") or given back ("release")."""
        row = self._studies.get(study_id) if study_id is not None else None
        if row is None or row.claimed <= row.finished:
            return
        if how == "release":
            row.claimed -= 1
            return
        row.finished += 1
        if row.state in ACTIVE and row.finished >= row.target_trials and not row.held():
            row.done()

    def reap_stale_workers(self, grace_seconds: float) -> list[int]:
        """Fail and retry the trials of workers silent for `grace_seconds`, settle their slots
        (a trial already told counts), delete their rows (`storage.queue.reaper`'s rules)."""
        cutoff = time.monotonic() - grace_seconds
        with self._lock:
            stale = [w for w in self._workers.values() if w.last_heartbeat < cutoff]
            for worker in stale:
                settle = "release"
                if worker.trial_id is not None and worker.study_id is not None:
                    state = self._fail_and_retry(worker.study_id, worker.trial_id)
                    told = state in (TrialState.COMPLETE, TrialState.PRUNED)
                    if told and not self._duplicate(worker.trial_id):
                        settle = "finish"
                self._settle(worker.study_id, settle)
                del self._workers[worker.id]
            return [w.id for w in stale]

    def _fail_and_retry(self, study_id: int, trial_id: int) -> TrialState | None:
        storage = self.optuna_storage
        try:
            storage.set_trial_user_attr(trial_id, "error", REAPED_ERROR)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return storage.get_trial(trial_id).state
        except KeyError:
            return None  # its Optuna study was deleted
        row = self._studies.get(study_id)
        trial = storage.get_trial(trial_id)
        if row is not None:
            enqueue_retry(self.load_study(row.optuna_name), trial)
        return trial.state

    def _duplicate(self, trial_id: int) -> bool:
        return DUPLICATE_ATTR in self.optuna_storage.get_trial(trial_id).user_attrs

    def slot_waiter(self) -> _PollingWaiter:
        return _PollingWaiter(self)

    def slot_open(self) -> bool:
        with self._lock:
            return any(
                s.state in ACTIVE and s.claimed < s.target_trials for s in self._studies.values()
            )

    # --- study rows ---
    def submit_study(
        self,
        *,
        name: str,
        spec: dict[str, Any],
        target_trials: int,
        priority: int = 0,
        idempotency_key: str | None = None,
        final_step: str | None = None,
    ) -> StudyRecord:
        if target_trials < 1:
            raise ValueError("target_trials must be at least 1")
        with self._lock:
            for row in self._studies.values():
                if idempotency_key is not None and row.idempotency_key == idempotency_key:
                    return row.record()
            study_id = self._next("study")
            row = _Study(
                id=study_id,
                name=name,
                optuna_name=f"{name}-{study_id}",
                spec=spec,
                state="queued",
                priority=priority,
                target_trials=target_trials,
                claimed=0,
                finished=0,
                created_at=_now(),
                idempotency_key=idempotency_key,
                final_step=final_step,
            )
            self._studies[study_id] = row
            return row.record()

    def wake_workers(self) -> None:
        """Nothing to wake: an idle worker's wait polls `slot_open`."""

    def get_study(self, study_id: int) -> StudyRecord:
        with self._lock:
            return self._study(study_id).record()

    def count_studies(self, state: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self._studies.values() if state is None or s.state == state)

    def _end(self, study_id: int, state: str, error: str | None = None) -> StudyRecord:
        with self._lock:
            row = self._study(study_id)
            if row.state not in ACTIVE:
                raise IllegalStateChange(f"study {study_id} is already {row.state}")
            row.state, row.error, row.finished_at = state, error, _now()
            return row.record()

    def end_study_early(self, study_id: int) -> StudyRecord:
        return self._end(study_id, "done")

    def fail_study(self, study_id: int, error: str) -> StudyRecord:
        return self._end(study_id, "failed", error)

    def cancel_study(self, study_id: int) -> StudyRecord:
        return self._end(study_id, "cancelled")

    def extend_study(self, study_id: int, extra: int, *, replicates: bool) -> StudyRecord:
        """done/cancelled → queued with `extra` more slots (`storage.study_extension`'s rules)."""
        check_extra(extra)
        with self._lock:
            row = self._study(study_id)
            refuse_unless_extendable(study_id, row.state, row.claimed, row.finished)
            row.state, row.target_trials = "queued", row.finished + extra
            row.started_at = row.finished_at = row.error = None
            row.test_score = row.test_scored_at = row.test_score_seconds = None
            row.final_step = "replicates" if replicates else "score"
            row.final_step_worker = None
            return row.record()

    def delete_study(self, study_id: int) -> None:
        """Drop the study row and its Optuna study (what `DELETE /studies/ID` does)."""
        with self._lock:
            row = self._study(study_id)
            del self._studies[study_id]
            for worker in self._workers.values():
                if worker.study_id == study_id:
                    worker.study_id = worker.trial_id = worker.trial_number = None
        with suppress(KeyError):  # never created
            optuna.delete_study(study_name=row.optuna_name, storage=self.optuna_storage)

    # --- final steps (`storage.final_steps`' rules) ---
    def _due(self, row: _Study) -> bool:
        if row.final_step == "replicates" and row.state == "running":
            return row.finished >= row.target_trials
        return row.final_step in ("replicates", "score") and row.state == "done"

    def _unclaimed(self, row: _Study) -> bool:
        return row.final_step_worker is None or row.final_step_worker not in self._workers

    def owed_steps(self) -> list[OwedStep]:
        with self._lock:
            return [
                OwedStep(
                    s.id,
                    s.optuna_name,
                    s.spec,
                    "score" if s.state == "done" else str(s.final_step),
                )
                for s in sorted(self._studies.values(), key=lambda s: s.id)
                if self._due(s) and self._unclaimed(s)
            ]

    def claim_step(self, owed: OwedStep, worker_id: int) -> bool:
        with self._lock:
            row = self._studies.get(owed.study_id)
            if row is None or not self._due(row) or not self._unclaimed(row):
                return False
            row.final_step_worker = worker_id
            if owed.step == "score":
                row.final_step = "score"
            return True

    def _replicates_claimed(self, study_id: int, worker_id: int) -> _Study | None:
        """The held study while `worker_id` holds its `replicates` step; else None."""
        row = self._studies.get(study_id)
        mine = row is not None and row.final_step_worker == worker_id
        if not mine or row.final_step != "replicates" or row.state != "running":
            return None
        return row

    def open_replicates(self, study_id: int, worker_id: int, extra: int) -> StudyRecord | None:
        with self._lock:
            row = self._replicates_claimed(study_id, worker_id)
            if row is None:
                return None
            row.target_trials += extra
            row.final_step, row.final_step_worker = "score", None
            if row.finished >= row.target_trials:
                row.done()
            return row.record()

    def extend_replicates(self, study_id: int, worker_id: int, extra: int) -> StudyRecord | None:
        if extra <= 0:
            raise ValueError(
                "extra must be > 0: a round that adds nothing closes with open_replicates"
            )
        with self._lock:
            row = self._replicates_claimed(study_id, worker_id)
            if row is None:
                return None
            row.target_trials += extra
            row.final_step_worker = None
            return row.record()

    def record_score(
        self, study_id: int, worker_id: int, score: float | None, seconds: float | None = None
    ) -> bool:
        with self._lock:
            row = self._studies.get(study_id)
            if row is None or row.final_step != "score" or row.final_step_worker != worker_id:
                return False
            if score is not None:
                row.test_score, row.test_scored_at = score, _now()
                row.test_score_seconds = seconds
            row.final_step = row.final_step_worker = None
            return True

    def release_step(self, study_id: int, worker_id: int) -> None:
        with self._lock:
            row = self._studies.get(study_id)
            if row is not None and row.final_step_worker == worker_id:
                row.final_step_worker = None

    # --- what tests look at ---
    def worker_rows(self) -> list[tuple[int, int | None, int | None]]:
        """(worker id, study id, trial id) of every registered worker."""
        with self._lock:
            return [(w.id, w.study_id, w.trial_id) for w in self._workers.values()]

    def age_worker(self, worker_id: int, seconds: float) -> None:
        """Make a worker's last heartbeat `seconds` older (a worker that went silent)."""
        with self._lock:
            self._workers[worker_id].last_heartbeat -= seconds


class _PollingWaiter:
    """An idle worker's wait on the memory store: returns once a slot is open or `stop` is set."""

    def __init__(self, store: MemoryWorkerStore) -> None:
        self.store = store

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.store.slot_open():
                return True
            if stop.wait(min(WAIT_POLL_S, left)):
                return False
        return False

    def close(self) -> None:
        """Nothing held."""
