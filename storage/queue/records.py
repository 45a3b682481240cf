"""What the queue hands out: study and worker records, and the queue's exceptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from storage.schema import Study, Worker


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
    test_scored_at: datetime | None
    test_score_seconds: float | None

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
    # Trial numbers this process holds: its own row's and its stack's leases' (`lease_of`).
    trials: tuple[int, ...] = ()


def study_record(row: Study) -> StudyRecord:
    return StudyRecord(**{f: getattr(row, f) for f in StudyRecord.__dataclass_fields__})


def worker_record(row: Worker) -> WorkerRecord:
    names = [f for f in WorkerRecord.__dataclass_fields__ if f != "trials"]
    return WorkerRecord(**{f: getattr(row, f) for f in names})
