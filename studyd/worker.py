"""The worker: claim a trial slot → ask Optuna → train → report each epoch → tell → settle the slot.

Many workers (processes, machines) serve one study at once; the queue's slot count keeps them from
overshooting its target. A background thread heartbeats the worker's row and runs the reaper, so a
dead worker's trial is failed and its slot given back while everyone else is busy training.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import optuna
import torch
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Engine

from models.data import DatasetSplits, load_dataset
from models.diagnostics import regularisation_diagnostics
from models.training import EpochMetrics, TrainResult, resolve_device, train_model
from storage import queue
from storage.optuna_storage import STORAGE_ERRORS
from storage.queue import IllegalStateChange, StudyNotFound, StudyRecord, WorkerGone
from studyd.finalize import StudyFinalizer
from studyd.records import (
    REUSED_ATTRS,
    config_attrs,
    constraint_values,
    diagnostic_attrs,
    objective_values,
    result_attrs,
)
from studyd.runs import finished_run, trial_config
from studyd.search import build_pruner, build_sampler
from studyd.spec import SpecError, StudySpec, validate_spec

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Storage trouble: the queue's SQL, Optuna's storage (which wraps SQLAlchemy's errors), or the
# gRPC proxy in front of it (down, or its database down): give the slot back and retry.
DB_ERRORS = STORAGE_ERRORS
# Seconds between slots after consecutive storage failures: 1, 2, 4, ... up to this.
MAX_BACKOFF = 30.0
# A study whose Optuna study is still missing this long after submit was never fully created.
MISSING_STUDY_SECONDS = 60.0
# Stochastic passes for the MC-dropout diagnostics of each trial (on the validation split).
MC_PASSES = 20


@dataclass
class WorkerOptions:
    """How one worker runs; the CLI fills it from flags and `Settings`."""

    device: str = "auto"
    max_trials: int | None = None
    once: bool = False
    heartbeat: float = 5.0
    grace: float = 30.0
    poll: float = 1.0
    reaper_period: float = 10.0
    data_dir: Path = Path("./data")
    data_roots: list[Path] = field(default_factory=list)
    # CPU threads for torch; None: 1 on a CPU device, since several CPU workers per machine with
    # oversubscribed OpenMP threads were measured 3x slower on 2 cores; torch's default on CUDA.
    threads: int | None = None


class _Stop(Exception):
    """Training was interrupted by SIGTERM or by losing the worker's row."""


@dataclass
class _Served:
    """What the worker keeps per study: its spec, data and Optuna study (sampler state lives on)."""

    spec: StudySpec
    data: DatasetSplits
    study: optuna.Study


class Worker:
    """One worker process's loop; `run()` returns the number of trials it settled."""

    def __init__(self, engine: Engine, optuna_storage: BaseStorage, options: WorkerOptions):
        self.engine = engine
        self.storage = optuna_storage
        self.options = options
        self.device = str(resolve_device(options.device))
        threads = options.threads or (1 if self.device == "cpu" else None)
        if threads is not None:
            torch.set_num_threads(threads)
        self.host = socket.gethostname()
        self.worker_id: int | None = None
        self.trials_run = 0
        self._stop = threading.Event()  # SIGTERM / stop(): finish up and exit
        self._gone = threading.Event()  # our row was reaped: never tell again
        self._served: dict[int, _Served] = {}
        self._data_cache: dict[tuple[str, int, int | None], DatasetSplits] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """Ask the worker to stop within one epoch (the current trial is failed cleanly)."""
        if not self._stop.is_set():
            logger.info("worker %s: stop requested", self.worker_id)
        self._stop.set()

    def run(self) -> int:
        self.worker_id = queue.register_worker(
            self.engine, host=self.host, device=self.device, pid=os.getpid()
        )
        logger.info("worker %s registered on %s (%s)", self.worker_id, self.host, self.device)
        self._install_signal_handlers()
        beat = threading.Thread(target=self._heartbeat_loop, name="studyd-heartbeat", daemon=True)
        beat.start()
        try:
            self._loop()
        finally:
            self._stop.set()
            beat.join(timeout=self.options.heartbeat + 5)
            if not self._gone.is_set():
                queue.unregister_worker(self.engine, self.worker_id)
            logger.info("worker %s stopped after %s trials", self.worker_id, self.trials_run)
        return self.trials_run

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)

    def _loop(self) -> None:
        opts = self.options
        failures = 0  # consecutive slots the storage failed: back off while it is down
        while not self._stopping():
            if opts.max_trials is not None and self.trials_run >= opts.max_trials:
                return
            try:
                record = queue.claim_trial_slot(self.engine, self.worker_id)
                if record is None:
                    self.finalize()
                    if opts.once and self._queue_is_empty():
                        return
                    self._stop.wait(opts.poll)
                    continue
            except WorkerGone:
                # Reaped between slots (the heartbeat thread may not have noticed yet).
                logger.error("worker %s was reaped: stopping", self.worker_id)
                self._gone.set()
                return
            except DB_ERRORS:
                logger.exception("claiming a slot failed: retrying")
                self._stop.wait(max(opts.poll, 1.0))
                continue
            try:
                self._serve_slot(record)
                failures = 0
            except WorkerGone:
                logger.error("worker %s was reaped mid-slot: stopping", self.worker_id)
                self._gone.set()
            except DB_ERRORS:
                logger.exception("study %s: the database failed mid-slot", record.id)
                self._give_back_after_error(record)
                failures += 1
                self._stop.wait(min(2.0 ** (failures - 1), MAX_BACKOFF))

    def _give_back_after_error(self, record: StudyRecord) -> None:
        """Release a slot whose trial is in an unknown state (retried through the grace period).

        Its trial, if RUNNING, is then held by no worker and the reaper fails it (and retries it).
        """
        try:
            self._release(record)
        except DB_ERRORS:
            logger.error("could not give back the slot of study %s: stopping", record.id)
            self._gone.set()

    @property
    def gone(self) -> bool:
        """True when the worker stopped because its row was reaped or the database was lost."""
        return self._gone.is_set()

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._gone.is_set()

    def _queue_is_empty(self) -> bool:
        # With --once, wait while another worker still holds slots: if it dies, its slots come
        # back through the reaper and must be served.
        return sum(queue.count_studies(self.engine, s) for s in ("queued", "running")) == 0

    def _heartbeat_loop(self) -> None:
        """Heartbeat every `heartbeat` s; reap every `reaper_period` s; stop if our row is gone."""
        opts = self.options
        last_ok = last_reap = time.monotonic()
        while not self._stop.wait(opts.heartbeat):
            try:
                queue.heartbeat(self.engine, self.worker_id)
                last_ok = time.monotonic()
            except WorkerGone:
                logger.error("worker %s was reaped: stopping without telling", self.worker_id)
                self._gone.set()
                return
            except Exception:  # noqa: BLE001 - a database hiccup: retry until the grace runs out
                logger.exception("heartbeat failed")
                if time.monotonic() - last_ok > opts.grace:
                    logger.error("heartbeats failed for %.0f s: stopping", opts.grace)
                    self._gone.set()
                    return
            if time.monotonic() - last_reap >= opts.reaper_period:
                last_reap = time.monotonic()
                self.reap()
                self.finalize(scoring=False)

    def finalize(self, *, scoring: bool = True) -> int:
        """Do the final steps (replicates, test score) studies owe; see `studyd.finalize`."""
        finalizer = StudyFinalizer(
            self.engine, self.storage, self.worker_id, self._dataset, self.device, self._stopping
        )
        try:
            return finalizer.run(scoring=scoring)
        except Exception:  # noqa: BLE001 - retried after the next slot or reaper period
            logger.exception("finaliser failed")
            return 0

    def reap(self) -> list[int]:
        try:
            return queue.reap_stale_workers(self.engine, self.storage, self.options.grace)
        except Exception:  # noqa: BLE001 - the reaper is retried next period
            logger.exception("reaper failed")
            return []

    # --- one slot ----------------------------------------------------------------------------

    def _serve_slot(self, record: StudyRecord) -> None:
        try:
            served = self._prepare(record)
        except _StudyUnusable as exc:
            self._fail_study(record, str(exc))
            return
        if served is None:
            self._release(record)
            self._stop.wait(self.options.poll)
            return
        if _out_of_time(record, served.spec):
            self._end_early(record, served)
            return
        self._run_trial(record, served)

    def _end_early(self, record: StudyRecord, served: _Served) -> None:
        """The spec's `search.timeout` ran out: no new trial; the study is done as it stands."""
        self._release(record)
        self._served.pop(record.id, None)
        try:
            ended = queue.end_study_early(self.engine, record.id)
        except (IllegalStateChange, StudyNotFound):
            return  # another worker ended it first (and scores it)
        logger.info("study %s: time budget spent after %s trials", record.id, ended.finished)
        self.finalize()

    def _prepare(self, record: StudyRecord) -> _Served | None:
        """Spec, data and Optuna study of `record` (cached); None when not ready yet."""
        if record.id in self._served:
            return self._served[record.id]
        try:
            spec = validate_spec(record.spec)
        except SpecError as exc:
            raise _StudyUnusable(f"the spec no longer validates: {exc}") from exc
        data = self._dataset(spec)
        try:
            study = optuna.load_study(
                study_name=record.optuna_name,
                storage=self.storage,
                sampler=build_sampler(spec, seed_offset=self.worker_id or 0),
                pruner=build_pruner(spec),
            )
        except KeyError:
            age = (datetime.now(UTC).replace(tzinfo=None) - record.created_at).total_seconds()
            if age > MISSING_STUDY_SECONDS:
                raise _StudyUnusable(
                    f"its Optuna study {record.optuna_name} was never created; submit it again"
                ) from None
            return None
        self._served[record.id] = _Served(spec, data, study)
        return self._served[record.id]

    def _dataset(self, spec: StudySpec) -> DatasetSplits:
        ds = spec.dataset
        key = (ds.name, ds.seed, ds.train_subset)
        if key not in self._data_cache:
            try:
                self._data_cache[key] = load_dataset(
                    ds.name,
                    data_dir=self.options.data_dir,
                    data_roots=self.options.data_roots or None,
                    seed=ds.seed,
                    train_subset=ds.train_subset,
                )
            except Exception as exc:  # noqa: BLE001 - any load failure makes the study unusable
                raise _StudyUnusable(f"dataset {ds.name!r} could not be loaded: {exc}") from exc
            while len(self._data_cache) > 4:
                self._data_cache.pop(next(iter(self._data_cache)))
        return self._data_cache[key]

    def _run_trial(self, record: StudyRecord, served: _Served) -> None:
        spec, data, study = served.spec, served.data, served.study
        trial = study.ask()
        try:
            queue.heartbeat(
                self.engine,
                self.worker_id,
                record.id,
                trial_id=trial._trial_id,
                trial_number=trial.number,
            )
        except DB_ERRORS:
            self._patiently("failing the trial", lambda: _fail_for_retry(study, trial))
            raise
        try:
            model_cfg, train_cfg = trial_config(trial, spec, data)
            where = {"device": self.device, "worker_id": self.worker_id, "host": self.host}
            attrs = config_attrs(model_cfg, train_cfg, spec.dataset.name, **where)
            _set_attrs(trial, attrs)
            earlier = finished_run(study, attrs["run_key"], before=trial.number)
            if earlier is not None:
                # The same canonical config and seed already finished: its result is this one's.
                outcome = {
                    k: earlier.user_attrs[k] for k in REUSED_ATTRS if k in earlier.user_attrs
                }
                outcome["reused_from"] = earlier.number
                pruned = False
            else:
                result, pruned = self._train(trial, spec, model_cfg, train_cfg, data)
                outcome = result_attrs(result)
                if not pruned:
                    diagnostics = regularisation_diagnostics(
                        result.model,
                        data.x_val,
                        data.y_val,
                        mc_passes=MC_PASSES,
                        seed=train_cfg.seed,
                    )
                    outcome |= diagnostic_attrs(diagnostics)
        except _Stop:
            self._abandon(record, study, trial)
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            # The reaper failed this trial (we looked dead) and settled its slot: drop it.
            logger.warning("trial %s was failed by the reaper: result dropped", trial.number)
            return
        except DB_ERRORS:
            # The database, not the spec: once it answers, FAIL the trial with one retry of its
            # params (as the reaper does for a dead worker), then the loop gives the slot back.
            # Left RUNNING, the reaper would miss it once the study is done.
            self._patiently("failing the trial", lambda: _fail_for_retry(study, trial))
            raise
        except Exception as exc:  # noqa: BLE001 - the spec cannot train: fail the study, readably
            message = f"trial {trial.number} could not train: {type(exc).__name__}: {exc}"
            logger.exception("study %s: %s", record.id, message)
            self._tell(study, trial, state=TrialState.FAIL)
            self._fail_study(record, message)
            return
        violations = constraint_values(spec.search.constraints, outcome)
        try:
            self._patiently("recording the result", lambda: _set_attrs(trial, outcome))
            # Optuna's samplers and best_trial(s) read these (system attrs `constraints:<name>`).
            self._patiently("recording constraints", lambda: _set_constraints(trial, violations))
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %s was failed by the reaper: result dropped", trial.number)
            return
        values = objective_values(spec.search.objective_names(), outcome)
        if pruned:
            told = self._tell(study, trial, state=TrialState.PRUNED)
        elif values is None:
            trial.set_user_attr("error", "training diverged: the objective is not finite")
            told = self._tell(study, trial, state=TrialState.FAIL)
        else:
            told = self._tell(study, trial, values=values)
        self._settle(record, served, told)

    def _train(self, trial, spec, model_cfg, train_cfg, data) -> tuple[TrainResult, bool]:
        """Train with per-epoch reports; (result, pruned). Raises `_Stop` when told to stop."""
        metric = spec.search.metric
        # A seed replicate is evidence for the verdict: it always runs to the end.
        replicate = "replicate_of" in trial.user_attrs
        can_prune = (
            not spec.search.objectives and spec.search.pruner.name != "none" and not replicate
        )
        pruned = False

        def on_epoch(m: EpochMetrics) -> bool:
            nonlocal pruned
            if self._stopping():
                return True
            # After the last epoch there is nothing left to save: the trial is complete.
            last = m.epoch + 1 >= train_cfg.epochs
            value = getattr(m, metric)
            try:
                if not spec.search.objectives and math.isfinite(value):
                    trial.report(value, step=m.epoch)
                if can_prune and not last and trial.should_prune():
                    pruned = True
                    return True
            except DB_ERRORS:
                # A lost report costs one point of the curve; the training goes on.
                logger.warning("trial %s: epoch %s could not be reported", trial.number, m.epoch)
            return False

        result = train_model(model_cfg, train_cfg, data, device=self.device, on_epoch=on_epoch)
        if self._stopping() and not pruned and len(result.history) < train_cfg.epochs:
            raise _Stop()
        return result, pruned

    def _tell(self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> FrozenTrial | None:
        """Tell once; None when the reaper already failed the trial (a late result is dropped)."""
        return self._patiently("telling the trial", lambda: self._tell_once(study, trial, **kwargs))

    def _tell_once(
        self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any
    ) -> FrozenTrial | None:
        if self._gone.is_set():
            return None
        current = self.storage.get_trial(trial._trial_id)
        if current.state.is_finished():
            if current.state == kwargs.get("state", TrialState.COMPLETE):
                return current  # our own tell landed before its reply was lost
            logger.warning("trial %s was already %s: result dropped", trial.number, current.state)
            return None
        try:
            return study.tell(trial, **kwargs)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError) as exc:
            logger.warning("trial %s could not be told (%s): result dropped", trial.number, exc)
            return None

    def _patiently(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried through a database outage for up to the grace period."""
        deadline = time.monotonic() + self.options.grace
        while True:
            try:
                return call()
            except DB_ERRORS:
                if self._gone.is_set() or time.monotonic() >= deadline:
                    raise
                logger.warning("%s failed (database unreachable?): retrying", what)
                time.sleep(1.0)

    def _settle(self, record: StudyRecord, served: _Served, told: FrozenTrial | None) -> None:
        if told is None:
            return  # the reaper failed the trial and settled its slot
        spec = served.spec
        # With repeats, the search holds at its target until its replicates are enqueued.
        hold_at = spec.search.n_trials if spec.repeats else None
        try:
            after = self._patiently(
                "settling the slot",
                lambda: queue.finish_trial_slot(
                    self.engine, record.id, worker_id=self.worker_id, hold_at=hold_at
                ),
            )
        except WorkerGone:
            logger.warning("slot of study %s was settled by the reaper", record.id)
            self._gone.set()
            return
        self.trials_run += 1
        if after.state == "done":
            self._served.pop(record.id, None)
        # Replicates and the test score are owed whoever settles the last slot (we, another
        # worker or the reaper): the finaliser claims each once.
        self.finalize()

    def _abandon(self, record: StudyRecord, study: optuna.Study, trial: optuna.Trial) -> None:
        """SIGTERM mid-trial: FAIL the trial and give the slot back (no retry: nothing died)."""
        if self._gone.is_set():
            return
        with suppress(optuna.exceptions.UpdateFinishedTrialError):
            trial.set_user_attr("error", "worker stopped (SIGTERM) mid-trial")
        if self._tell(study, trial, state=TrialState.FAIL) is not None:
            self._release(record)

    def _release(self, record: StudyRecord) -> None:
        try:
            self._patiently(
                "giving the slot back",
                lambda: queue.release_trial_slot(self.engine, record.id, worker_id=self.worker_id),
            )
        except WorkerGone:
            self._gone.set()
        except IllegalStateChange:
            logger.warning("study %s had no slot to release", record.id)

    def _fail_study(self, record: StudyRecord, message: str) -> None:
        logger.error("failing study %s: %s", record.id, message)
        self._served.pop(record.id, None)
        self._release(record)
        # Already ended (another worker failed it, or it was cancelled or deleted): nothing to do.
        with suppress(IllegalStateChange, StudyNotFound):
            queue.fail_study(self.engine, record.id, message)


def _out_of_time(record: StudyRecord, spec: StudySpec) -> bool:
    timeout = spec.search.timeout
    if timeout is None or record.started_at is None:
        return False
    now = datetime.now(UTC).replace(tzinfo=None)  # the queue's timestamps are naive UTC
    return (now - record.started_at).total_seconds() > timeout


def _fail_for_retry(study: optuna.Study, trial: optuna.Trial) -> None:
    """FAIL a trial the database interrupted and enqueue its params once (`retry_of`)."""
    if study._storage.get_trial(trial._trial_id).state.is_finished():
        return
    trial.set_user_attr("error", "the database was unreachable mid-trial")
    study.tell(trial, state=TrialState.FAIL)
    if "retry_of" not in trial.user_attrs:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


class _StudyUnusable(Exception):
    """The study cannot run here at all (data will not load, spec invalid): fail it."""


def _set_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _set_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    already = trial.storage.get_trial_system_attrs(trial._trial_id)
    for name, value in violations.items():
        if f"constraints:{name}" not in already:  # a retried call must not warn
            trial.set_constraint(name, value)
