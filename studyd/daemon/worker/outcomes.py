"""Recording outcomes: a trial's results and constraints, Optuna's tell, and its slot settled,
given back, or its study failed. A trial the reaper already failed is dropped, never told twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.worker_store import (
    DUPLICATE_ATTR,
    IllegalStateChange,
    StudyNotFound,
    StudyRecord,
    WorkerGone,
)
from studyd.daemon.records import constraint_values, objective_values
from studyd.daemon.runs import distinct_runs, search_exhausted
from studyd.daemon.worker.repeats import settled_twin
from studyd.daemon.worker.state import DB_ERRORS, ServedStudy, StudyIdentity, WorkerState

logger = logging.getLogger(__name__)

# The first word of the `error` attribute of a trial stopped because its study was cancelled.
CANCELLED = "cancelled"


class Outcomes:
    """How one worker ends each trial and each slot."""

    def __init__(self, state: WorkerState, finalize: Callable[[], int]) -> None:
        self.state = state
        # Replicates and the test score are owed whoever settles the last slot (we, another
        # worker or the reaper): the finaliser claims each once.
        self.finalize = finalize
        # Per study: proposals in a row that repeated a run it has, and its `distinct_runs`.
        self.repeats: dict[int, int] = {}
        self.space_size: dict[int, int | None] = {}

    def conclude(
        self,
        record: StudyRecord,
        served: ServedStudy,
        trial: optuna.Trial,
        outcome: dict[str, Any],
        pruned: bool,
        lease: int | None,
        *,
        recorded: bool = False,
        duplicate: bool = False,
    ) -> None:
        """Record the outcome (unless `recorded` already), tell Optuna, settle the slot.

        A `duplicate` (a run the study already has) is told its known result, so the sampler
        learns it, but does not count: its slot goes back (`repeated`).
        """
        spec, study = served.spec, served.study
        patiently, store = self.state.patiently, self.state.store
        if not duplicate and "reused_from" not in outcome:
            twin = self.settled_twin(study, trial)
            if twin is not None and "reused_from" in twin:
                duplicate, outcome, pruned = True, twin, False
            elif twin is not None:
                duplicate, outcome = True, outcome | twin
        violations = constraint_values(spec.search.constraints, outcome)
        if duplicate:
            outcome = {DUPLICATE_ATTR: outcome.get("reused_from")} | outcome
            recorded = False
        try:
            if not recorded:
                record_one = [(trial, outcome)]
                patiently("recording the result", lambda: store.set_user_attrs(record_one))
            # Optuna's samplers and best_trial(s) read these (system attrs `constraints:<name>`).
            patiently("recording constraints", lambda: store.set_constraints(trial, violations))
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %s was failed by the reaper: result dropped", trial.number)
            return
        values = objective_values(spec.search.objective_names(), outcome)
        if pruned:
            told = self.tell(study, trial, state=TrialState.PRUNED)
        elif values is None:
            diverged = [(trial, {"error": "training diverged: the objective is not finite"})]
            store.set_user_attrs(diverged)
            told = self.tell(study, trial, state=TrialState.FAIL)
        else:
            told = self.tell(study, trial, values=values)
        if duplicate and told is not None:
            self.repeated(record, served, lease)
            return
        self.settle(record, served, told, lease)

    def settled_twin(self, study: optuna.Study, trial: optuna.Trial) -> dict[str, Any] | None:
        """`settled_twin` with this worker's stop flag, through database outages like every
        other step of `conclude` (an error here would leave the trained trial untold)."""
        patiently, store = self.state.patiently, self.state.store

        def read(earlier: FrozenTrial) -> FrozenTrial:
            return patiently("reading a trial", lambda: store.read_back(study, earlier))

        return patiently(
            "looking for the run's other trials",
            lambda: settled_twin(
                store, study, trial, interrupted=self.state.interrupted, read=read
            ),
        )

    def repeated(self, record: StudyRecord, served: ServedStudy, lease: int | None) -> None:
        """Give a duplicate's slot back, or end the search when it keeps repeating itself or
        has trained every configuration of a finite space."""
        repeats = self.repeats[record.id] = self.repeats.get(record.id, 0) + 1
        if record.id not in self.space_size:
            self.space_size[record.id] = distinct_runs(served.spec, served.data)
        why = search_exhausted(served.study, served.spec, self.space_size[record.id], repeats)
        ended = served.study.user_attrs.get("search_ended")
        if why is None and ended is None:
            self.release(record, lease)
            return
        # Once ended, a slot given back lowers the target with it (or it would be claimed again).
        why = why or ended
        state = self.state
        row = state.lease_row(lease)
        logger.info("study %s: %s", record.id, why)
        state.forget(record.id)
        try:
            state.patiently(
                "ending the search",
                lambda: state.store.set_study_attr(served.study, "search_ended", why),
            )
            state.patiently(
                "ending the search", lambda: state.store.end_search_early(record.id, worker_id=row)
            )
        except WorkerGone:
            state.gone.set()
            return
        except (IllegalStateChange, StudyNotFound):
            return  # ended meanwhile (another worker, a cancel)
        self.finalize()

    def record_all(self, outcomes: list[tuple[optuna.Trial, dict[str, Any]]]) -> bool:
        """A batch's outcomes in one transaction; False leaves them to `conclude` one by one
        (a trial the reaper failed, or a database hiccup, is then handled per trial)."""
        try:
            self.state.store.set_user_attrs(outcomes)
        except (*DB_ERRORS, optuna.exceptions.UpdateFinishedTrialError):
            return False
        return True

    def tell(self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> FrozenTrial | None:
        """Tell once; None when the reaper already failed the trial (a late result is dropped)."""
        return self.state.patiently(
            "telling the trial", lambda: self._tell_once(study, trial, **kwargs)
        )

    def _tell_once(
        self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any
    ) -> FrozenTrial | None:
        if self.state.gone.is_set():
            return None
        told, refused = self.state.store.tell(study, trial, **kwargs)
        if refused is not None:
            logger.warning("trial %s could not be told (%s): result dropped", trial.number, refused)
        return told

    def fail_for_retry(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """The database, not the spec, interrupted the trial: once it answers, FAIL the trial
        with one retry of its params (as the reaper does for a dead worker)."""
        self.state.patiently(
            "failing the trial",
            lambda: self.state.store.fail_for_retry(
                study, trial, "the database was unreachable mid-trial"
            ),
        )

    def settle(
        self,
        record: StudyRecord,
        served: ServedStudy,
        told: FrozenTrial | None,
        lease: int | None = None,
    ) -> None:
        state = self.state
        row = state.lease_row(lease)
        if told is None:
            return  # the reaper failed the trial and settled its slot
        spec = served.spec
        # With repeats, the search holds at its target until its replicates are enqueued.
        hold_at = spec.search.n_trials if spec.repeats else None
        try:
            after = state.patiently(
                "settling the slot",
                lambda: state.store.finish_trial_slot(record.id, worker_id=row, hold_at=hold_at),
            )
        except WorkerGone:
            if self._deleted(record):
                return
            logger.warning("slot of study %s was settled by the reaper", record.id)
            state.gone.set()
            return
        state.trials_run += 1
        self.repeats[record.id] = 0
        if after.state == "done":
            state.forget(record.id)
        self.finalize()

    def abandon(
        self,
        record: StudyRecord,
        study: optuna.Study,
        trial: optuna.Trial,
        lease: int | None = None,
    ) -> None:
        """SIGTERM or a cancelled study mid-trial: FAIL the trial with the reason in its `error`
        attribute (`cancelled: …` shows as fail (cancelled) in `studyd trials`), give the slot
        back (no retry: nothing died)."""
        if self.state.gone.is_set():
            return
        if self.state.cancelled.is_set():
            why = f"{CANCELLED}: the study was cancelled while this trial trained"
        else:
            why = f"worker stopped ({self.state.stop_reason}) mid-trial"
        with suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.state.store.set_user_attrs([(trial, {"error": why})])
        if self.tell(study, trial, state=TrialState.FAIL) is not None:
            self.release(record, lease)

    def release(self, record: StudyRecord, lease: int | None = None) -> None:
        state = self.state
        row = state.lease_row(lease)
        try:
            state.patiently(
                "giving the slot back",
                lambda: state.store.release_trial_slot(record.id, worker_id=row),
            )
        except WorkerGone:
            if not self._deleted(record):
                state.gone.set()
        except StudyNotFound:
            logger.warning("study %s was deleted: its slot went with it", record.id)
            state.forget(record.id)
        except IllegalStateChange:
            logger.warning("study %s had no slot to release", record.id)

    def fail_then_give_back(
        self, record: StudyRecord, study: optuna.Study, trial: optuna.Trial, lease: int | None
    ) -> None:
        """A database error left a trained `trial` untold: FAIL it with one retry, then give its
        slot back, so that the slot's next ask takes the retry. Left RUNNING, it waited for the
        reaper's grace period, and a study that reached its target meanwhile kept the retry
        WAITING for good. With the database still gone, the reaper is left to do it."""
        try:
            self.fail_for_retry(study, trial)
        except DB_ERRORS:
            logger.warning("trial %s is left to the reaper (database unreachable)", trial.number)
        self.give_back_after_error(record, lease)

    def give_back_after_error(self, record: StudyRecord, lease: int | None = None) -> None:
        """Release a slot whose trial is in an unknown state (retried through the grace period).

        Its trial, if RUNNING, is then held by no worker and the reaper fails it (and retries it).
        """
        try:
            self.release(record, lease)
        except DB_ERRORS:
            logger.error("could not give back the slot of study %s: stopping", record.id)
            self.state.gone.set()

    def vanished(self, record: StudyRecord, exc: Exception) -> bool:
        """True when `exc` came from `record`'s study being deleted under its trials: the errors
        Optuna then raises (`KeyError: no trial with trial_id`, `Record does not exist.`) are
        about our trial being gone, not about the spec or the worker. Our row goes last, so a
        cancelled study whose Optuna study is already gone counts too."""
        if isinstance(exc, (*DB_ERRORS, WorkerGone)):
            return False  # the database or the reaper: handled as such
        try:
            now = self.state.store.get_study(record.id)
        except StudyNotFound:
            return True
        except DB_ERRORS:
            return False
        if StudyIdentity.of(now) != StudyIdentity.of(record):
            return True
        return now.state == "cancelled" and isinstance(exc, (KeyError, ValueError))

    def _deleted(self, record: StudyRecord) -> bool:
        """Our lease is gone because the study was deleted (its id maybe taken by a new study),
        not because the reaper took our row: one line, and the worker goes on."""
        if not self.vanished(record, LookupError("lease gone")):
            return False
        logger.warning("study %s was deleted: its slot went with it", record.id)
        self.state.forget(record.id)
        return True

    def drop_vanished(self, claims: list[tuple[StudyRecord, int | None]], exc: Exception) -> None:
        """One line, and each slot given back where the study still counts it."""
        record = claims[0][0]
        logger.warning(
            "study %s was cancelled or deleted under its trial(s): dropped (%s: %s)",
            record.id,
            type(exc).__name__,
            exc,
        )
        self.state.forget(record.id)
        for claimed, lease in claims:
            with suppress(IllegalStateChange, StudyNotFound, WorkerGone, *DB_ERRORS):
                row = self.state.lease_row(lease)
                self.state.store.release_trial_slot(claimed.id, worker_id=row)

    def fail_study(self, record: StudyRecord, message: str) -> None:
        if self.vanished(record, LookupError(message)):
            # Deleted (its Optuna study first, so it looked never created): never fail a new
            # study that took its id.
            self.drop_vanished([(record, None)], StudyNotFound(message))
            return
        logger.error("failing study %s: %s", record.id, message)
        self.state.forget(record.id)
        self.release(record)
        # Already ended (another worker failed it, or it was cancelled or deleted): nothing to do.
        with suppress(IllegalStateChange, StudyNotFound):
            self.state.store.fail_study(record.id, message)
