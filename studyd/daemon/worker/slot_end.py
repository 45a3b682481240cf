"""How a slot ends: `decide` reads a trial's result record and says how (`SlotEnd`); `SlotEnds`
does it — tells Optuna, then counts the slot, gives it back, or fails the study. Every ending of
a slot, trained or interrupted, goes through here. A trial the reaper already failed is dropped,
never told twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from enum import Enum
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.worker_store import (
    DUPLICATE_ATTR,
    IllegalStateChange,
    StudyNotFound,
    WorkerGone,
)
from studyd.daemon.worker.deleted import deleted, drop_vanished, vanished
from studyd.daemon.worker.repeats import Repeats
from studyd.daemon.worker.results import Claim, Ending, TrialResult
from studyd.daemon.worker.state import DB_ERRORS, ServedStudy, WorkerState
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)

# The first word of the `error` attribute of a trial stopped because its study was cancelled.
CANCELLED = "cancelled"


class Scores(Protocol):
    """Optuna's values and constraints from a trial's attributes (the `trials.Trainer`)."""

    def objective_values(self, spec: StudySpec, attrs: dict[str, Any]) -> list[float] | None: ...

    def constraint_values(self, spec: StudySpec, attrs: dict[str, Any]) -> dict[str, float]: ...

    def infeasible_mark(self, violations: dict[str, float]) -> dict[str, str]: ...


class SlotEnd(Enum):
    """How a slot ends."""

    COUNT = "count"  # tell the result; the slot counts towards the target
    REPEAT = "repeat"  # tell a known run's result; the slot goes back (or the search ends)
    ABANDON = "abandon"  # FAIL the trial with why; the slot goes back (nothing died: no retry)
    RETRY = "retry"  # FAIL the trial with one retry of its params; the slot goes back
    FAIL = "fail"  # FAIL the trial; the slot goes back (and its study fails)
    GIVE_BACK = "give back"  # no trial was asked: the slot goes back
    DROP = "drop"  # nothing: the reaper ended the trial and settled the slot


def decide(result: TrialResult) -> SlotEnd:
    """How `result`'s slot ends."""
    if result.ending is Ending.REAPED:
        return SlotEnd.DROP
    if result.trial is None:
        return SlotEnd.GIVE_BACK
    if result.ending is Ending.TRAINED:
        # An untrained infeasible proposal is no trained run: its slot goes back like a repeat's.
        repeat = result.duplicate or result.untrained_infeasible is not None
        return SlotEnd.REPEAT if repeat else SlotEnd.COUNT
    return {
        Ending.STOPPED: SlotEnd.ABANDON,
        Ending.STORAGE: SlotEnd.RETRY,
        Ending.UNTRAINABLE: SlotEnd.FAIL,
    }[result.ending]


class SlotEnds:
    """Ends one worker's slots as `decide` says."""

    def __init__(
        self,
        state: WorkerState,
        repeats: Repeats,
        scores: Scores,
        finalize: Callable[[], int],
    ) -> None:
        self.state = state
        self.repeats = repeats
        self.scores = scores
        # Replicates and the test score are owed whoever settles the last slot (we, another
        # worker or the reaper): the finaliser claims each once.
        self.finalize = finalize

    def end_trained(self, results: list[TrialResult], served: ServedStudy) -> bool:
        """End trained slots: their attributes in one transaction, then each trial's tell and
        slot. True when the storage failed one (its trial is FAILed for a retry)."""
        store = self.state.store
        try:
            store.set_user_attrs([(r.trial, r.attrs or {}) for r in results if r.trial])
            recorded = True
        except (*DB_ERRORS, optuna.exceptions.UpdateFinishedTrialError):
            recorded = False  # each is then written (or dropped, or retried) on its own
        failed = False
        for result in results:
            try:
                self._tell_and_settle(self.repeats.take_twin(result, served), served, recorded)
            except DB_ERRORS:
                record = result.claim.record
                logger.exception("study %s: the database failed settling a trial", record.id)
                self._end(TrialResult(result.claim, result.trial, Ending.STORAGE), served)
                failed = True
        return failed

    def end_interrupted(self, results: list[TrialResult], served: ServedStudy, why: str) -> None:
        """End slots an interruption left; an untrainable spec then fails the study (`why`)."""
        for result in results:
            self._end(result, served)
        if results and results[0].ending is Ending.UNTRAINABLE:
            self.fail_study(results[0].claim, why, give_back=False)

    def _end(self, result: TrialResult, served: ServedStudy) -> None:
        end, trial, claim = decide(result), result.trial, result.claim
        if end is SlotEnd.DROP:
            number = None if trial is None else trial.number
            logger.warning("trial %s was failed by the reaper: result dropped", number)
        elif end is SlotEnd.GIVE_BACK or trial is None:
            self.give_back(claim)
        elif end is SlotEnd.ABANDON:
            self._abandon(claim, served.study, trial)
        elif end is SlotEnd.RETRY:
            try:
                self.fail_for_retry(served.study, trial)
            except DB_ERRORS:
                logger.warning(
                    "trial %s is left to the reaper (database unreachable)", trial.number
                )
            self.give_back(claim)
        elif end is SlotEnd.FAIL:
            self._tell(served.study, trial, state=TrialState.FAIL)
            self.give_back(claim)
        else:  # COUNT, REPEAT: a trained result goes `end_trained`'s way
            self._tell_and_settle(result, served, recorded=False)

    def _tell_and_settle(self, result: TrialResult, served: ServedStudy, recorded: bool) -> None:
        """Record the outcome (unless `recorded` already), tell Optuna, count the slot or (a
        repeat: the sampler learns the known result, the slot does not count) give it back."""
        trial, attrs, pruned = result.trial, dict(result.attrs or {}), result.pruned
        assert trial is not None
        spec, study, store = served.spec, served.study, self.state.store
        patiently = self.state.patiently
        if result.duplicate:
            attrs = {DUPLICATE_ATTR: attrs.get("reused_from")} | attrs
            recorded = False
        # Optuna's samplers and best_trial(s) read these (system attrs `constraints:<name>`).
        violations = self.scores.constraint_values(spec, attrs)
        mark = self.scores.infeasible_mark(
            violations
        )  # where the dashboard's trials table shows it
        if mark and not mark.items() <= attrs.items():
            attrs, recorded = attrs | mark, False
        try:
            if not recorded:
                patiently("recording the result", store.set_user_attrs, [(trial, attrs)])
            patiently("recording constraints", store.set_constraints, trial, violations)
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %s was failed by the reaper: result dropped", trial.number)
            return
        values = self.scores.objective_values(spec, attrs)
        if pruned:
            told = self._tell(study, trial, state=TrialState.PRUNED)
        elif values is None:
            diverged = {"error": "training diverged: the objective is not finite"}
            store.set_user_attrs([(trial, diverged)])
            told = self._tell(study, trial, state=TrialState.FAIL)
        else:
            told = self._tell(study, trial, values=values)
        if told is None:
            return  # the reaper failed the trial and settled its slot
        if decide(result) is SlotEnd.REPEAT:
            self._repeated(result.claim, served, result.untrained_infeasible)
        else:
            self._count(result.claim, served)

    def _count(self, claim: Claim, served: ServedStudy) -> None:
        state, record = self.state, claim.record
        # With repeats, the search holds at its target until its replicates are enqueued.
        hold_at = served.spec.search.n_trials if served.spec.repeats else None
        row = state.lease_row(claim.lease)
        try:
            after = state.patiently(
                "settling the slot",
                state.store.finish_trial_slot,
                record.id,
                worker_id=row,
                hold_at=hold_at,
            )
        except WorkerGone:
            if deleted(state, record):
                return
            logger.warning("slot of study %s was settled by the reaper", record.id)
            state.gone.set()
            return
        state.trials_run += 1
        self.repeats.counted(record.id)
        if after.state == "done":
            state.forget(record.id)
        self.finalize()

    def _repeated(self, claim: Claim, served: ServedStudy, infeasible: str | None = None) -> None:
        """Give a repeat's (or an untrained infeasible proposal's) slot back, or end the search
        when it keeps repeating itself, has trained every configuration of a finite space, or
        keeps proposing configurations a constraint rules out before training."""
        record, state = claim.record, self.state
        if infeasible is not None:
            why = self.repeats.infeasible_search_ends(record.id, infeasible, served)
        else:
            why = self.repeats.search_ends(record.id, served)
        if why is None:
            self.give_back(claim)
            return
        # Once ended, a slot given back lowers the target with it (or it would be claimed again).
        logger.info("study %s: %s", record.id, why)
        state.forget(record.id)
        row = state.lease_row(claim.lease)
        try:
            state.patiently(
                "ending the search", state.store.set_study_attr, served.study, "search_ended", why
            )
            state.patiently(
                "ending the search", state.store.end_search_early, record.id, worker_id=row
            )
        except WorkerGone:
            state.gone.set()
            return
        except (IllegalStateChange, StudyNotFound):
            return  # ended meanwhile (another worker, a cancel)
        self.finalize()

    def _abandon(self, claim: Claim, study: optuna.Study, trial: optuna.Trial) -> None:
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
        if self._tell(study, trial, state=TrialState.FAIL) is not None:
            self.give_back(claim)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> FrozenTrial | None:
        """Tell once; None when the reaper already failed the trial (a late result is dropped)."""
        state = self.state

        def once() -> FrozenTrial | None:
            if state.gone.is_set():
                return None
            told, refused = state.store.tell(study, trial, **kwargs)
            if refused is not None:
                number = trial.number
                logger.warning("trial %s could not be told (%s): result dropped", number, refused)
            return told

        return state.patiently("telling the trial", once)

    def fail_for_retry(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """The database, not the spec, interrupted the trial: once it answers, FAIL the trial
        with one retry of its params (as the reaper does for a dead worker)."""
        error = "the database was unreachable mid-trial"
        self.state.patiently(
            "failing the trial", self.state.store.fail_for_retry, study, trial, error
        )

    def give_back(self, claim: Claim) -> None:
        """Give a slot back (retried through an outage for the grace period). A trial it held,
        if still RUNNING, is then held by no worker and the reaper fails (and retries) it; a
        database still down stops the worker."""
        state, record = self.state, claim.record
        try:
            state.patiently(
                "giving the slot back",
                state.store.release_trial_slot,
                record.id,
                worker_id=state.lease_row(claim.lease),
            )
        except WorkerGone:
            if not deleted(state, record):
                state.gone.set()
        except StudyNotFound:
            logger.warning("study %s was deleted: its slot went with it", record.id)
            state.forget(record.id)
        except IllegalStateChange:
            logger.warning("study %s had no slot to release", record.id)
        except DB_ERRORS:
            logger.error("could not give back the slot of study %s: stopping", record.id)
            state.gone.set()

    def fail_study(self, claim: Claim, message: str, *, give_back: bool = True) -> None:
        """The study cannot run here at all: give its slot back (unless its ending did) and
        fail it."""
        state, record = self.state, claim.record
        if give_back:
            if vanished(state, record, LookupError(message)):
                # Deleted (its Optuna study first, so it looked never created): never fail a
                # new study that took its id.
                drop_vanished(state, [claim], StudyNotFound(message))
                return
            self.give_back(claim)
        logger.error("failing study %s: %s", record.id, message)
        state.forget(record.id)
        # Already ended (another worker failed it, or it was cancelled or deleted): nothing to do.
        with suppress(IllegalStateChange, StudyNotFound):
            state.store.fail_study(record.id, message)
