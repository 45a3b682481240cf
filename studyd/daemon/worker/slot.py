"""Serving one claimed slot: the study's spec, data and Optuna study (cached), its time budget,
K (`sizing`) and the extra slots a stack takes on lease rows; then the trial path (`trials`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

from models.data import DatasetSplits, load_dataset
from storage.worker_store import IllegalStateChange, StudyNotFound, StudyRecord
from studyd.daemon.search import build_pruner, build_sampler
from studyd.daemon.training import TorchTrainer
from studyd.daemon.worker.deleted import drop_vanished, vanished
from studyd.daemon.worker.memory import HeapKeeper
from studyd.daemon.worker.repeats import Repeats
from studyd.daemon.worker.sizing import trials_per_slot
from studyd.daemon.worker.slot_end import Claim, SlotEnds
from studyd.daemon.worker.state import (
    DB_ERRORS,
    ServedStudy,
    StudyIdentity,
    StudyUnusable,
    WorkerState,
)
from studyd.daemon.worker.trials import Trainer, TrialPath
from studyd.spec import SpecError, StudySpec, validate_spec
from studyd.spec.family_space import missing_family

logger = logging.getLogger(__name__)

# A study whose Optuna study is still missing this long after submit was never fully created.
MISSING_STUDY_SECONDS = 60.0
# Seconds before claiming again a study whose Optuna study is not created yet.
NOT_READY_RETRY_S = 0.1
# Datasets kept in memory across studies.
DATA_CACHE_SIZE = 4


class SlotServer:
    """Serves the slots one worker claims."""

    def __init__(
        self, state: WorkerState, finalize: Callable[[], int], trainer: Trainer | None = None
    ) -> None:
        self.state = state
        self.finalize = finalize
        repeats = Repeats(state)
        trainer = trainer or TorchTrainer(state.device)
        self.ends = SlotEnds(state, repeats, trainer, finalize)
        self.trials = TrialPath(state, self.ends, repeats, trainer)
        self._data_cache: dict[tuple[str, int, int | None], DatasetSplits] = {}
        self.heap = HeapKeeper()

    def serve(self, record: StudyRecord) -> bool:
        """Serve the claimed slot `record`; True when the storage failed under its trials."""
        state, own = self.state, Claim(record, None)
        family = missing_family(record.spec)
        if family is not None:
            # Not this worker's study: workers with the plugin serve it; failing it would end it.
            logger.warning(
                "study %s needs model family %r, not installed here: left to other workers",
                record.id,
                family,
            )
            state.lacking.add(record.id)
            self.ends.give_back(own)
            return False
        try:
            served = self._prepare(record)
        except StudyUnusable as exc:
            self.ends.fail_study(own, str(exc))
            return False
        if served is None:
            # Its submit is still creating the Optuna study (or it was deleted: its slot goes in
            # one line): retry soon, not a poll period later.
            self.ends.give_back(own)
            state.stop.wait(min(state.options.poll, NOT_READY_RETRY_S))
            return False
        if _out_of_time(record, served.spec):
            self._end_early(own)
            return False
        # The study's slots claimed and not yet settled, this one aside: other workers' trials.
        in_flight = max(record.claimed - record.finished - 1, 0)
        k = trials_per_slot(
            state.options.batch_trials, served, state.device, record.finished, in_flight
        )
        more = self._claim_more(record, k - 1) if k > 1 else []
        state.cancelled.clear()
        state.training_study = StudyIdentity.of(record)
        claims = [own, *more]
        try:
            # With `auto` a claim of one trains as a stack too: a batchable trial alone trains
            # as a stack of one, cheaper per epoch than `train_model` (a study's first, ramped
            # trial; specs whose trials would not share stacks). `--batch-trials 1` keeps
            # `train_model`, the unbatched reference.
            stacked = bool(more) or state.options.batch_trials == "auto"
            return self.trials.run(claims, served, stacked=stacked)
        except Exception as exc:
            # Deleted under a running trial (cancel, then delete at once): drop it and go on.
            if not vanished(state, record, exc):
                raise
            drop_vanished(state, claims, exc)
            return False
        finally:
            state.training_study = None
            if state.cancelled.is_set():
                state.forget(record.id)
            self.heap.after_slot()

    def _end_early(self, own: Claim) -> None:
        """The spec's `search.timeout` ran out: no new trial; the study is done as it stands."""
        record = own.record
        self.ends.give_back(own)
        self.state.forget(record.id)
        try:
            ended = self.state.store.end_study_early(record.id)
        except (IllegalStateChange, StudyNotFound):
            return  # another worker ended it first (and scores it)
        logger.info("study %s: time budget spent after %s trials", record.id, ended.finished)
        self.finalize()

    def _prepare(self, record: StudyRecord) -> ServedStudy | None:
        """Spec, data and Optuna study of `record` (kept by its identity); None when not ready
        yet."""
        state = self.state
        kept = state.serving(record)
        if kept is not None:
            return kept
        try:
            spec = validate_spec(record.spec)
        except SpecError as exc:
            raise StudyUnusable(f"the spec no longer validates: {exc}") from exc
        data = self.dataset(spec)
        try:
            study = state.store.load_study(
                record.optuna_name,
                sampler=build_sampler(spec, seed_offset=state.worker_id or 0),
                pruner=build_pruner(spec),
            )
        except KeyError:
            age = (datetime.now(UTC).replace(tzinfo=None) - record.created_at).total_seconds()
            if age > MISSING_STUDY_SECONDS:
                raise StudyUnusable(
                    f"its Optuna study {record.optuna_name} was never created; submit it again"
                ) from None
            return None
        state.forget(record.id)  # a deleted study that had this id, if any
        served = state.served[StudyIdentity.of(record)] = ServedStudy(spec, data, study)
        return served

    def dataset(self, spec: StudySpec) -> DatasetSplits:
        """The spec's dataset splits, loaded once per (name, seed, subset) among the last few."""
        ds, options = spec.dataset, self.state.options
        key = (ds.name, ds.seed, ds.train_subset)
        if key not in self._data_cache:
            try:
                self._data_cache[key] = load_dataset(
                    ds.name,
                    data_dir=options.data_dir,
                    data_roots=options.data_roots or None,
                    seed=ds.seed,
                    train_subset=ds.train_subset,
                )
            except Exception as exc:  # noqa: BLE001 - any load failure makes the study unusable
                raise StudyUnusable(f"dataset {ds.name!r} could not be loaded: {exc}") from exc
            while len(self._data_cache) > DATA_CACHE_SIZE:
                self._data_cache.pop(next(iter(self._data_cache)))
        return self._data_cache[key]

    def _claim_more(self, record: StudyRecord, want: int) -> list[Claim]:
        """Up to `want` extra slots of `record`'s study for one batch, each on its own lease row."""
        state = self.state
        if state.options.max_trials is not None:
            want = min(want, state.options.max_trials - state.trials_run - 1)
        claims: list[Claim] = []
        try:
            for lease in self._lease_rows(want):
                more = state.store.claim_trial_slot(lease, study_id=record.id)
                if more is None:
                    break
                claims.append(Claim(more, lease))
        except DB_ERRORS:
            logger.warning("claiming more slots of study %s failed: a smaller batch", record.id)
        return claims

    def _lease_rows(self, n: int) -> list[int]:
        """`n` lease rows of this worker (`lease_of` its row): one per extra slot, so the queue's
        one-slot claims, the heartbeat and the reaper work unchanged for a batch, while
        `GET /workers` shows the process once with every trial it holds."""
        state = self.state
        while len(state.leases) < n:
            state.leases.append(
                state.store.register_worker(
                    host=state.host,
                    device=state.device,
                    pid=os.getpid(),
                    lease_of=state.worker_id,
                )
            )
        return state.leases[: max(n, 0)]


def _out_of_time(record: StudyRecord, spec: StudySpec) -> bool:
    timeout = spec.search.timeout
    if timeout is None or record.started_at is None:
        return False
    now = datetime.now(UTC).replace(tzinfo=None)  # the queue's timestamps are naive UTC
    return (now - record.started_at).total_seconds() > timeout
