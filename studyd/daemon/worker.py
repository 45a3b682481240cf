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

from models.batched import batch_key, train_batched
from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits, load_dataset
from models.diagnostics import regularisation_diagnostics
from models.training import EpochMetrics, TrainResult, resolve_device, train_model
from storage import queue
from storage.optuna_storage import STORAGE_ERRORS
from storage.queue import IllegalStateChange, StudyNotFound, StudyRecord, WorkerGone
from storage.trial_attrs import first_complete_trial_with_attr, is_rdb
from storage.trial_batch import report_many, set_many_user_attrs
from studyd.daemon.finalize import StudyFinalizer
from studyd.daemon.records import (
    REUSED_ATTRS,
    config_attrs,
    constraint_values,
    diagnostic_attrs,
    objective_values,
    result_attrs,
)
from studyd.daemon.runs import finished_run, trial_config
from studyd.daemon.search import architecture_count, build_pruner, build_sampler
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
# `--batch-trials auto`: K on a CPU (K = 8 gave ≥ 2× the trials/hour of K = 1 on mnist1d with
# one thread, bench/throughput), and the most on a GPU, where free memory decides below that.
AUTO_CPU_TRIALS = 8
AUTO_MAX_TRIALS = 32


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
    # Trials trained at once as one stacked model (models.batched): an int, or "auto".
    batch_trials: int | str = "auto"


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
        # The study being trained was cancelled or deleted: stop its trials at the next epoch.
        self._training_study: int | None = None
        self._cancelled = threading.Event()
        self._served: dict[int, _Served] = {}
        self._leases: list[int] = []  # extra worker rows, one per extra slot of a batch
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
                for row in [*self._leases, self.worker_id]:
                    queue.unregister_worker(self.engine, row)
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

    def _give_back_after_error(self, record: StudyRecord, lease: int | None = None) -> None:
        """Release a slot whose trial is in an unknown state (retried through the grace period).

        Its trial, if RUNNING, is then held by no worker and the reaper fails it (and retries it).
        """
        try:
            self._release(record, lease)
        except DB_ERRORS:
            logger.error("could not give back the slot of study %s: stopping", record.id)
            self._gone.set()

    @property
    def gone(self) -> bool:
        """True when the worker stopped because its row was reaped or the database was lost."""
        return self._gone.is_set()

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._gone.is_set()

    def _interrupted(self) -> bool:
        return self._stopping() or self._cancelled.is_set()

    def _check_cancelled(self) -> None:
        """Flag the study being trained when it was cancelled or deleted (heartbeat thread)."""
        study_id = self._training_study
        if study_id is None:
            return
        try:
            state = queue.get_study(self.engine, study_id).state
        except StudyNotFound:
            state = "deleted"
        if state in ("cancelled", "deleted") and not self._cancelled.is_set():
            logger.info("study %s was %s: stopping its trials at the next epoch", study_id, state)
            self._cancelled.set()

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
                for row in [self.worker_id, *self._leases]:
                    queue.heartbeat(self.engine, row)
                last_ok = time.monotonic()
                self._check_cancelled()
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
        """Do the final steps (replicates, test score) studies owe; see `studyd.daemon.finalize`."""
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
        k = self._batch_trials(served)
        more = self._claim_more(record, k - 1) if k > 1 else []
        self._cancelled.clear()
        self._training_study = record.id
        try:
            if more:
                self._run_batch([(record, self.worker_id), *more], served)
            else:
                self._run_trial(record, served)
        finally:
            self._training_study = None
            if self._cancelled.is_set():
                self._served.pop(record.id, None)

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
        study = served.study
        trial = self._begin(record, served, self.worker_id)
        try:
            model_cfg, train_cfg, outcome = self._configure(trial, served)
            pruned = False
            if outcome is None:
                result, pruned = self._train(trial, served.spec, model_cfg, train_cfg, served.data)
                outcome = self._outcome(result, pruned, served, train_cfg)
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
        self._conclude(record, served, trial, outcome, pruned, self.worker_id)

    def _begin(self, record: StudyRecord, served: _Served, lease: int | None) -> optuna.Trial:
        """Ask for a trial and record it on the slot's lease (a lost database FAILs it, retried)."""
        study = served.study
        trial = study.ask()
        try:
            queue.heartbeat(
                self.engine, lease, record.id, trial_id=trial._trial_id, trial_number=trial.number
            )
        except DB_ERRORS:
            self._patiently("failing the trial", lambda: _fail_for_retry(study, trial))
            raise
        return trial

    def _configure(
        self, trial: optuna.Trial, served: _Served
    ) -> tuple[ModelConfig, TrainConfig, dict[str, Any] | None]:
        """The trial's configs, recorded; plus the outcome of a finished equal run, if any."""
        return self._configure_all([trial], served)[0]

    def _configure_all(
        self, trials: list[optuna.Trial], served: _Served
    ) -> list[tuple[ModelConfig, TrainConfig, dict[str, Any] | None]]:
        """`_configure` for each trial, their config attributes recorded in one transaction."""
        spec = served.spec
        where = {"device": self.device, "worker_id": self.worker_id, "host": self.host}
        configs = [trial_config(trial, spec, served.data) for trial in trials]
        attrs = [config_attrs(m, t, spec.dataset.name, **where) for m, t in configs]
        set_many_user_attrs(list(zip(trials, attrs, strict=True)))
        planned = []
        for trial, (model_cfg, train_cfg), recorded in zip(trials, configs, attrs, strict=True):
            earlier = _finished_run(served.study, recorded["run_key"], before=trial.number)
            if earlier is None:
                planned.append((model_cfg, train_cfg, None))
                continue
            # The same canonical config and seed already finished: its result is this one's.
            planned.append((model_cfg, train_cfg, _reused(earlier.user_attrs, earlier.number)))
        return planned

    def _outcome(
        self, result: TrainResult, pruned: bool, served: _Served, train_cfg: TrainConfig
    ) -> dict[str, Any]:
        outcome = result_attrs(result)
        if not pruned:
            data = served.data
            diagnostics = regularisation_diagnostics(
                result.model, data.x_val, data.y_val, mc_passes=MC_PASSES, seed=train_cfg.seed
            )
            outcome |= diagnostic_attrs(diagnostics)
        return outcome

    def _conclude(
        self,
        record: StudyRecord,
        served: _Served,
        trial: optuna.Trial,
        outcome: dict[str, Any],
        pruned: bool,
        lease: int | None,
        *,
        recorded: bool = False,
    ) -> None:
        """Record the outcome (unless `recorded` already), tell Optuna, settle the slot."""
        spec, study = served.spec, served.study
        violations = constraint_values(spec.search.constraints, outcome)
        try:
            if not recorded:
                record_one = [(trial, outcome)]
                self._patiently("recording the result", lambda: set_many_user_attrs(record_one))
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
        self._settle(record, served, told, lease)

    def _record_all(self, outcomes: list[tuple[optuna.Trial, dict[str, Any]]]) -> bool:
        """A batch's outcomes in one transaction; False leaves them to `_conclude` one by one
        (a trial the reaper failed, or a database hiccup, is then handled per trial)."""
        try:
            set_many_user_attrs(outcomes)
        except (*DB_ERRORS, optuna.exceptions.UpdateFinishedTrialError):
            return False
        return True

    def _can_prune(self, trial: optuna.Trial, spec: StudySpec) -> bool:
        # A seed replicate is evidence for the verdict: it always runs to the end.
        replicate = "replicate_of" in trial.user_attrs
        return not spec.search.objectives and spec.search.pruner.name != "none" and not replicate

    def _report_epoch(
        self, trial: optuna.Trial, spec: StudySpec, train_cfg: TrainConfig, m: EpochMetrics
    ) -> bool:
        """Report the epoch's metric; True when the pruner stops the trial here."""
        self._report_stack([(trial, m)], spec)
        return self._should_prune(trial, spec, train_cfg, m)

    def _report_stack(
        self, reports: list[tuple[optuna.Trial, EpochMetrics]], spec: StudySpec
    ) -> None:
        """Report each trial's epoch metric, a stack's in one transaction (`report_many`)."""
        if spec.search.objectives:
            return  # multi-objective: Optuna takes no intermediate values
        metric = spec.search.metric
        items = [(t, m.epoch, getattr(m, metric)) for t, m in reports]
        try:
            report_many([(t, step, v) for t, step, v in items if math.isfinite(v)])
        except DB_ERRORS:
            # A lost report costs one point of the curve; the training goes on.
            logger.warning("epoch %s of %s trial(s) could not be reported", items[0][1], len(items))

    def _should_prune(
        self, trial: optuna.Trial, spec: StudySpec, train_cfg: TrainConfig, m: EpochMetrics
    ) -> bool:
        """True when the pruner stops the trial after epoch `m` (never after its last epoch)."""
        # After the last epoch there is nothing left to save: the trial is complete.
        if m.epoch + 1 >= train_cfg.epochs or not self._can_prune(trial, spec):
            return False
        try:
            return trial.should_prune()
        except DB_ERRORS:
            logger.warning("trial %s: epoch %s could not be judged", trial.number, m.epoch)
            return False

    def _train(self, trial, spec, model_cfg, train_cfg, data) -> tuple[TrainResult, bool]:
        """Train with per-epoch reports; (result, pruned). Raises `_Stop` when told to stop."""
        pruned = False

        def on_epoch(m: EpochMetrics) -> bool:
            nonlocal pruned
            if self._interrupted():
                return True
            pruned = self._report_epoch(trial, spec, train_cfg, m)
            return pruned

        result = train_model(model_cfg, train_cfg, data, device=self.device, on_epoch=on_epoch)
        if self._interrupted() and not pruned and len(result.history) < train_cfg.epochs:
            raise _Stop()
        return result, pruned

    # --- batched trials ----------------------------------------------------------------------

    def _claim_more(self, record: StudyRecord, want: int) -> list[tuple[StudyRecord, int]]:
        """Up to `want` extra slots of `record`'s study for one batch, each on its own lease row."""
        if self.options.max_trials is not None:
            want = min(want, self.options.max_trials - self.trials_run - 1)
        claims: list[tuple[StudyRecord, int]] = []
        try:
            for lease in self._lease_rows(want):
                more = queue.claim_trial_slot(self.engine, lease, study_id=record.id)
                if more is None:
                    break
                claims.append((more, lease))
        except DB_ERRORS:
            logger.warning("claiming more slots of study %s failed: a smaller batch", record.id)
        return claims

    def _batch_trials(self, served: _Served) -> int:
        """K: the option, or with `auto` what the device's free memory holds (at most 32) when
        the spec's trials would form stacks of two or more; 1 when they would mostly train alone
        (a searched width, say), since claimed slots then wait in line instead of going to other
        workers."""
        k = self.options.batch_trials
        if k != "auto":
            return max(int(k), 1)
        data, space = served.data, served.spec.model
        if 2 * architecture_count(served.spec) > _auto_cap(self.device):
            return 1
        return auto_batch_trials(
            self.device,
            data.input_dim,
            _dim_max(space.width),
            _dim_max(space.depth),
            data.num_classes,
            _dim_max(served.spec.training.batch_size),
        )

    def _lease_rows(self, n: int) -> list[int]:
        """`n` extra worker rows (same host and pid): one lease per extra slot, so the queue's
        one-slot leases, the heartbeat and the reaper work unchanged for a batch."""
        while len(self._leases) < n:
            self._leases.append(
                queue.register_worker(
                    self.engine, host=self.host, device=self.device, pid=os.getpid()
                )
            )
        return self._leases[: max(n, 0)]

    def _run_batch(self, claims: list[tuple[StudyRecord, int | None]], served: _Served) -> None:
        """Ask one trial per claimed slot, train those sharing a `batch_key` as one stack (the
        rest alone), tell each, settle each slot; errors are handled per batch as `_run_trial`
        handles them per trial."""
        study = served.study
        begun: list[tuple[StudyRecord, int | None, optuna.Trial]] = []
        try:
            for record, lease in claims:
                begun.append((record, lease, self._begin(record, served, lease)))
            configs = self._configure_all([trial for *_, trial in begun], served)
            planned = [(*b, *c) for b, c in zip(begun, configs, strict=True)]
            outcomes = self._train_all(planned, served)
        except _Stop:
            for record, lease, trial in begun:
                self._abandon(record, study, trial, lease)
            for record, lease in claims[len(begun) :]:
                self._release(record, lease)
            return
        except DB_ERRORS:
            for _, _, trial in begun:
                self._patiently("failing the trial", lambda t=trial: _fail_for_retry(study, t))
            for record, lease in claims:
                self._give_back_after_error(record, lease)
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            # Every lease row is heartbeated together: the reaper took them all (we looked dead).
            logger.warning("trials %s were failed by the reaper", [t.number for *_, t in begun])
            return
        except Exception as exc:  # noqa: BLE001 - the spec cannot train: fail the study, readably
            message = f"a batch of trials could not train: {type(exc).__name__}: {exc}"
            logger.exception("study %s: %s", claims[0][0].id, message)
            for _, _, trial in begun:
                self._tell(study, trial, state=TrialState.FAIL)
            for record, lease in claims[1:]:
                self._release(record, lease)
            self._fail_study(claims[0][0], message)
            return
        results = [(p[2], outcome) for p, (outcome, _) in zip(planned, outcomes, strict=True)]
        recorded = self._record_all(results)
        for (record, lease, trial, *_), (outcome, pruned) in zip(planned, outcomes, strict=True):
            try:
                self._conclude(record, served, trial, outcome, pruned, lease, recorded=recorded)
            except DB_ERRORS:
                logger.exception("study %s: the database failed settling a trial", record.id)
                self._give_back_after_error(record, lease)

    def _train_all(self, planned: list[tuple], served: _Served) -> list[tuple[dict, bool]]:
        """(outcome, pruned) per planned trial: reused, trained in a stack, or trained alone.

        Trials of one batch with the same canonical run (`run_key`) train once: the others take
        its outcome with `reused_from`, as a later trial takes a finished run's.
        """
        out: list[tuple[dict, bool] | None] = [None] * len(planned)
        groups: dict[Any, list[int]] = {}
        first_of: dict[str, int] = {}
        twins: dict[int, int] = {}
        for i, (*_, trial, model_cfg, train_cfg, reused) in enumerate(planned):
            if reused is not None:
                out[i] = (reused, False)
                continue
            run_key = trial.user_attrs.get("run_key")
            if run_key in first_of:
                twins[i] = first_of[run_key]
                continue
            first_of[run_key] = i
            key = batch_key(model_cfg, train_cfg)
            groups.setdefault(("alone", i) if key is None else key, []).append(i)
        for members in groups.values():
            trained = self._train_group([planned[i] for i in members], served)
            for i, (result, pruned) in zip(members, trained, strict=True):
                out[i] = (self._outcome(result, pruned, served, planned[i][4]), pruned)
        for i, j in twins.items():
            outcome, pruned = out[j]  # type: ignore[misc]
            out[i] = (_reused(outcome, planned[j][2].number), pruned)
        return out

    def _train_group(self, group: list[tuple], served: _Served) -> list[tuple[TrainResult, bool]]:
        """One stack (`train_batched`) with each trial's report and pruning decision per epoch."""
        spec = served.spec
        if len(group) == 1:
            _, _, trial, model_cfg, train_cfg, _ = group[0]
            return [self._train(trial, spec, model_cfg, train_cfg, served.data)]
        pruned = [False] * len(group)

        def on_epoch(_epoch: int, metrics: list[EpochMetrics | None]) -> list[bool]:
            if self._interrupted():
                return [True] * len(group)
            live = [(k, m) for k, m in enumerate(metrics) if m is not None]
            self._report_stack([(group[k][2], m) for k, m in live], spec)
            for k, m in live:
                _, _, trial, _, train_cfg, _ = group[k]
                pruned[k] = self._should_prune(trial, spec, train_cfg, m)
            return pruned

        results = train_batched(
            [g[3] for g in group],
            [g[4] for g in group],
            served.data,
            device=self.device,
            on_epoch=on_epoch,
        )
        for k, result in enumerate(results):
            if self._interrupted() and not pruned[k] and len(result.history) < group[k][4].epochs:
                raise _Stop()
        return list(zip(results, pruned, strict=True))

    def _tell(self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> FrozenTrial | None:
        """Tell once; None when the reaper already failed the trial (a late result is dropped)."""
        return self._patiently("telling the trial", lambda: self._tell_once(study, trial, **kwargs))

    def _tell_once(
        self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any
    ) -> FrozenTrial | None:
        if self._gone.is_set():
            return None
        try:
            return study.tell(trial, **kwargs)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
            # Only now read the trial back (not before every tell: one round trip saved per trial).
            current = self.storage.get_trial(trial._trial_id)
            if not current.state.is_finished():
                raise  # not a late or repeated tell: a real error
            if current.state == kwargs.get("state", TrialState.COMPLETE):
                return current  # our own tell landed before its reply was lost
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

    def _settle(
        self,
        record: StudyRecord,
        served: _Served,
        told: FrozenTrial | None,
        lease: int | None = None,
    ) -> None:
        lease = self.worker_id if lease is None else lease
        if told is None:
            return  # the reaper failed the trial and settled its slot
        spec = served.spec
        # With repeats, the search holds at its target until its replicates are enqueued.
        hold_at = spec.search.n_trials if spec.repeats else None
        try:
            after = self._patiently(
                "settling the slot",
                lambda: queue.finish_trial_slot(
                    self.engine, record.id, worker_id=lease, hold_at=hold_at
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

    def _abandon(
        self,
        record: StudyRecord,
        study: optuna.Study,
        trial: optuna.Trial,
        lease: int | None = None,
    ) -> None:
        """SIGTERM or a cancelled study mid-trial: FAIL the trial, give the slot back (no retry:
        nothing died)."""
        if self._gone.is_set():
            return
        why = "study cancelled" if self._cancelled.is_set() else "worker stopped (SIGTERM)"
        with suppress(optuna.exceptions.UpdateFinishedTrialError):
            trial.set_user_attr("error", f"{why} mid-trial")
        if self._tell(study, trial, state=TrialState.FAIL) is not None:
            self._release(record, lease)

    def _release(self, record: StudyRecord, lease: int | None = None) -> None:
        lease = self.worker_id if lease is None else lease
        try:
            self._patiently(
                "giving the slot back",
                lambda: queue.release_trial_slot(self.engine, record.id, worker_id=lease),
            )
        except WorkerGone:
            self._gone.set()
        except (IllegalStateChange, StudyNotFound):
            logger.warning("study %s had no slot to release", record.id)

    def _fail_study(self, record: StudyRecord, message: str) -> None:
        logger.error("failing study %s: %s", record.id, message)
        self._served.pop(record.id, None)
        self._release(record)
        # Already ended (another worker failed it, or it was cancelled or deleted): nothing to do.
        with suppress(IllegalStateChange, StudyNotFound):
            queue.fail_study(self.engine, record.id, message)


def auto_batch_trials(
    device: str, input_dim: int, width: int, depth: int, classes: int, batch_size: int
) -> int:
    """K for `--batch-trials auto`: AUTO_CPU_TRIALS on a CPU; on a GPU as many trials as half its
    free memory holds, at most AUTO_MAX_TRIALS. Per trial (float32): weights, gradient and two
    Adam moments (4 × parameters) plus a batch's activations kept for backward (≈ 3 × B × width
    × depth)."""
    params = input_dim * width + (depth - 1) * width * width + width * classes
    per_trial = 4 * (4 * params + 3 * batch_size * width * depth)
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(_auto_cap(device), int(0.5 * free) // per_trial))


def _auto_cap(device: str) -> int:
    """The most trials `auto` stacks on `device`."""
    return AUTO_MAX_TRIALS if device.startswith("cuda") else AUTO_CPU_TRIALS


def _dim_max(dim: Any) -> int:
    """The largest value a spec `Dim` can take."""
    return int(max(x for x in (dim.value, dim.high, *(dim.choices or ())) if x is not None))


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


def _reused(outcome: dict[str, Any], number: int) -> dict[str, Any]:
    """The outcome a trial takes from trial `number`, which ran its canonical config and seed."""
    return {k: outcome[k] for k in REUSED_ATTRS if k in outcome} | {"reused_from": number}


def _finished_run(study: optuna.Study, run_key: str, *, before: int) -> FrozenTrial | None:
    """`runs.finished_run` as one indexed query, not a load of every trial of the study."""
    if not is_rdb(study._storage):
        return finished_run(study, run_key, before=before)
    return first_complete_trial_with_attr(
        study._storage, study._study_id, "run_key", run_key, before=before
    )


def _set_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    if not violations:
        return  # no constraints: skip the read below
    already = trial.storage.get_trial_system_attrs(trial._trial_id)
    for name, value in violations.items():
        if f"constraints:{name}" not in already:  # a retried call must not warn
            trial.set_constraint(name, value)
