"""The worker's claim loop: register, heartbeat, claim a slot, serve it, back off while the
storage is down, and leave cleanly on SIGTERM. Everything else is delegated (`slot`, `heartbeat`,
`studyd.daemon.finalize`)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import optuna
import torch
from optuna.storages import BaseStorage
from sqlalchemy import Engine

from models.training import resolve_device
from storage.sql_store import SqlWorkerStore
from storage.worker_store import WorkerGone, WorkerStore
from studyd.daemon.dashboard_note import write_study_note
from studyd.daemon.finalize import NoteWriter, StudyFinalizer
from studyd.daemon.model_artifact import model_keeper
from studyd.daemon.worker.heartbeat import heartbeating
from studyd.daemon.worker.options import WorkerOptions
from studyd.daemon.worker.slot import SlotServer
from studyd.daemon.worker.slot_end import Claim
from studyd.daemon.worker.startup import until_the_database_answers
from studyd.daemon.worker.state import DB_ERRORS, OutageLog, WorkerState
from studyd.daemon.worker.trials import Trainer
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)

# Seconds between slots after consecutive storage failures: 1, 2, 4, ... up to this.
MAX_BACKOFF = 30.0


class Worker:
    """One worker process's loop; `run()` returns the number of trials it settled."""

    def __init__(self, engine: Engine, optuna_storage: BaseStorage, options: WorkerOptions):
        store = SqlWorkerStore(engine, optuna_storage)

        def note(study: optuna.Study, spec: StudySpec, score: float | None) -> None:
            write_study_note(engine, study, spec, test_score=score)

        self._start(store, options, note)

    @classmethod
    def on(
        cls,
        store: WorkerStore,
        options: WorkerOptions,
        *,
        trainer: Trainer | None = None,
        note: NoteWriter | None = None,
    ) -> Worker:
        """A worker on any `WorkerStore` (the in-memory one in tests) with any `Trainer` (the
        models package's by default); `note` writes a finished study's dashboard note (none by
        default: the note reads our SQL tables)."""
        worker = cls.__new__(cls)
        worker._start(store, options, note, trainer)
        return worker

    def _start(
        self,
        store: WorkerStore,
        options: WorkerOptions,
        note: NoteWriter | None,
        trainer: Trainer | None = None,
    ) -> None:
        device = str(resolve_device(options.device))
        # None: 1 thread on a CPU (oversubscribed OpenMP threads of several workers per machine
        # were measured 3x slower on 2 cores), torch's default on CUDA.
        threads = options.threads or (1 if device == "cpu" else None)
        if threads is not None:
            torch.set_num_threads(threads)
        self.state = WorkerState(store, options, device, socket.gethostname())
        self.note = note
        self.slots = SlotServer(self.state, self.finalize, trainer)
        self.waiter = store.slot_waiter()
        self._reaper_outage = OutageLog("reaper")
        self._finaliser_outage = OutageLog("finaliser")
        self._claim_outage = OutageLog("claiming a slot")

    @property
    def device(self) -> str:
        return self.state.device

    @property
    def worker_id(self) -> int | None:
        return self.state.worker_id

    @property
    def trials_run(self) -> int:
        return self.state.trials_run

    @property
    def gone(self) -> bool:
        """True when the worker stopped because its row was reaped or the database was lost."""
        return self.state.gone.is_set()

    def stop(self, *_: Any) -> None:
        """Ask the worker to stop within one epoch (the current trial is failed cleanly)."""
        if not self.state.stop.is_set():
            logger.info("worker %s: stop requested", self.worker_id)
        self.state.stop.set()

    def run(self) -> int:
        state = self.state

        def register() -> int:
            return state.store.register_worker(
                host=state.host, device=state.device, pid=os.getpid()
            )

        def defer_reaping() -> None:
            # Started in an outage: the other workers' rows are as stale as the database is old.
            state.reap_after = time.monotonic() + state.options.grace

        state.worker_id = until_the_database_answers("registering", register, defer_reaping)
        logger.info("worker %s registered on %s (%s)", state.worker_id, state.host, state.device)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        try:
            with heartbeating(state, self._reaper_tick):
                self._loop()
        finally:
            if not state.gone.is_set():
                for row in [*state.leases, state.worker_id]:
                    state.store.unregister_worker(row)
            self.waiter.close()
            logger.info("worker %s stopped after %s trials", state.worker_id, state.trials_run)
        return state.trials_run

    def _loop(self) -> None:
        state, opts = self.state, self.state.options
        failures = 0  # consecutive slots the storage failed: back off while it is down
        while not state.stopping():
            if opts.max_trials is not None and state.trials_run >= opts.max_trials:
                return
            try:
                record = state.store.claim_trial_slot(state.worker_id, skip=state.lacking)
                self._claim_outage.answered()
                if record is None:
                    self.finalize()
                    if opts.once and self._queue_is_empty():
                        return
                    # Woken early when a slot opens: a new study starts within ~0.1 s, not a poll.
                    self.waiter.wait(opts.poll, state.stop)
                    continue
            except WorkerGone:
                # Reaped between slots (the heartbeat thread may not have noticed yet).
                logger.error("worker %s was reaped: stopping", state.worker_id)
                state.gone.set()
                return
            except DB_ERRORS as exc:
                self._claim_outage.failed(exc)
                state.stop.wait(max(opts.poll, 1.0))
                continue
            try:
                storage_failed = self.slots.serve(record)
            except WorkerGone:
                logger.error("worker %s was reaped mid-slot: stopping", state.worker_id)
                state.gone.set()
                continue
            except DB_ERRORS as exc:
                logger.warning(
                    "study %s: the database failed mid-slot (%s)", record.id, type(exc).__name__
                )
                self.slots.ends.give_back(Claim(record, None))
                storage_failed = True
            failures = failures + 1 if storage_failed else 0
            if storage_failed:
                state.stop.wait(min(2.0 ** (failures - 1), MAX_BACKOFF))

    def _queue_is_empty(self) -> bool:
        # With --once, wait while another worker still holds slots: if it dies, its slots come
        # back through the reaper and must be served.
        # Studies of a family this worker lacks are other workers' to serve.
        store = self.state.store
        open_ = sum(store.count_studies(s) for s in ("queued", "running"))
        return open_ <= len(self.state.lacking)

    def _reaper_tick(self) -> None:
        self.reap()
        self.finalize(scoring=False)

    def finalize(self, *, scoring: bool = True) -> int:
        """Do the final steps (replicates, test score) studies owe; see `studyd.daemon.finalize`."""
        state = self.state
        finalizer = StudyFinalizer(
            state.store,
            state.worker_id,
            self.slots.dataset,
            state.device,
            state.stopping,
            self.note,
            keep_model=model_keeper(state.options.data_dir),
        )
        try:
            done = finalizer.run(scoring=scoring)
        except DB_ERRORS as exc:  # retried after the next slot or reaper period
            self._finaliser_outage.failed(exc)
            return 0
        except Exception:  # noqa: BLE001 - retried after the next slot or reaper period
            logger.exception("finaliser failed")
            return 0
        self._finaliser_outage.answered()
        if done and scoring:
            self.slots.heap.after_slot()  # a test run trains the best network again
        return done

    def reap(self) -> list[int]:
        try:
            reaped = self.state.store.reap_stale_workers(self.state.options.grace)
        except DB_ERRORS as exc:  # retried next period
            self._reaper_outage.failed(exc)
            return []
        except Exception:  # noqa: BLE001 - the reaper is retried next period
            logger.exception("reaper failed")
            return []
        self._reaper_outage.answered()
        return reaped
