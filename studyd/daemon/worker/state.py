"""What every part of one worker shares: database handles, identity, stop flags, served studies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import optuna

from models.data import DatasetSplits
from storage.worker_store import STORAGE_ERRORS, CompletedTrials, StudyRecord, WorkerStore
from studyd.daemon.worker.options import WorkerOptions
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Storage trouble: the queue's SQL, Optuna's storage (which wraps SQLAlchemy's errors), or the
# gRPC proxy in front of it (down, or its database down): give the slot back and retry.
DB_ERRORS = STORAGE_ERRORS


class OutageLog:
    """One warning when the database stops answering `what`, one line when it answers again:
    a 20 s outage is two lines in the log, not a traceback per retry."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None

    def failed(self, exc: Exception) -> None:
        if self.since is None:
            self.since = time.monotonic()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            logger.warning("%s: the database is unreachable (%s); retrying", self.what, first)

    def answered(self) -> None:
        if self.since is not None:
            down = time.monotonic() - self.since
            logger.info("%s: the database answers again after %.0f s", self.what, down)
            self.since = None


class Stop(Exception):
    """Training was interrupted by SIGTERM or by losing the worker's row."""


class StudyUnusable(Exception):
    """The study cannot run here at all (data will not load, spec invalid): fail it."""


@dataclass(frozen=True)
class StudyIdentity:
    """What names one submitted study for good. Its id alone does not: a deleted study's id can
    come back (SQLite reuses the largest rowid), and so can its Optuna name (`name-id`); the
    instant it was created does not come back with them."""

    id: int
    optuna_name: str | None
    created_at: datetime

    @classmethod
    def of(cls, record: StudyRecord) -> StudyIdentity:
        return cls(record.id, record.optuna_name, record.created_at)


@dataclass
class ServedStudy:
    """What the worker keeps per study: its spec, data and Optuna study (sampler state lives on)."""

    spec: StudySpec
    data: DatasetSplits
    study: optuna.Study
    # Its COMPLETE trials as the pruner last read them (`storage.pruning_reads`).
    completed: CompletedTrials = field(default_factory=CompletedTrials)
    # What `sizing` reads of it once (`sizing.StudyShape`), kept while it runs.
    shape: Any = None


@dataclass
class WorkerState:
    """One worker process: where it stores, who it is, and whether it must stop."""

    store: WorkerStore  # every database call (`storage.worker_store`)
    options: WorkerOptions
    device: str
    host: str
    worker_id: int | None = None
    trials_run: int = 0
    # SIGTERM / stop(): finish up and exit; why, for the trial it interrupts.
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = "SIGTERM"
    # Our row was reaped: never tell again.
    gone: threading.Event = field(default_factory=threading.Event)
    # The heartbeat cannot reach the database now: the whole database is down, not one write
    # refused, so a write waits for it however long it takes (the trial goes on meanwhile).
    db_down: threading.Event = field(default_factory=threading.Event)
    # No reaping before this `time.monotonic()`: after an outage every row is stale, and the
    # other workers need a grace to heartbeat again before their trials count as dead.
    reap_after: float = 0.0
    # Whether this outage's past-the-grace line was logged (one line per state change).
    lost_line: bool = False
    # The study being trained was cancelled or deleted: stop its trials at the next epoch.
    training_study: StudyIdentity | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Keyed by identity, never by id: a new study that took a deleted one's id must not be
    # served the deleted one's spec, data or Optuna study (and sampler).
    served: dict[StudyIdentity, ServedStudy] = field(default_factory=dict)
    # Extra worker rows, one per extra slot of a stack.
    leases: list[int] = field(default_factory=list)
    # Studies whose model family is not installed here: never claimed again by this worker.
    lacking: set[int] = field(default_factory=set)

    def stopping(self) -> bool:
        return self.stop.is_set() or self.gone.is_set()

    def interrupted(self) -> bool:
        return self.stopping() or self.cancelled.is_set()

    def serving(self, record: StudyRecord) -> ServedStudy | None:
        return self.served.get(StudyIdentity.of(record))

    def forget(self, study_id: int) -> None:
        """Drop what is kept for the study `study_id` (ended, cancelled or deleted)."""
        for identity in [i for i in self.served if i.id == study_id]:
            self.served.pop(identity, None)

    def lease_row(self, lease: int | None) -> int | None:
        """The worker row holding a slot: `lease`, or the worker's own row."""
        return self.worker_id if lease is None else lease

    def patiently(self, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)`, retried for up to the grace period, and for as long as the
        heartbeat finds the whole database down (a worker that cannot reach its database is not
        broken: it waits, then carries on). A stopping worker waits no longer than the grace."""
        deadline = time.monotonic() + self.options.grace
        tries = 0
        while True:
            try:
                result = call(*args, **kwargs)
            except DB_ERRORS:
                if self._give_up(deadline):
                    raise
                if tries == 0:  # one line, not one a second
                    logger.warning("%s failed (database unreachable?): retrying", what)
                tries += 1
                time.sleep(1.0)
                continue
            if tries:
                logger.info("%s: the database answers again", what)
            return result

    def _give_up(self, deadline: float) -> bool:
        if self.gone.is_set():
            return True
        if time.monotonic() < deadline:
            return False
        return self.stop.is_set() or not self.db_down.is_set()
