"""Repeats: a trial whose run (canonical config + seed) the study already has takes that run's
outcome instead of counting again — a finished run's (`reused`), or a lower trial's that trained
it at the same time on another worker (`settled_twin`). `Repeats` keeps one worker's count of
repeats in a row per study: after a few the next proposals are drawn at random (`explore`), and
a search that keeps repeating itself, or has trained every run of a finite space, ends.

Where repeats are also handled: the worker path takes a finished run's outcome at configure time
(`trials.TrialPath.configure`) and a twin's within one stack; `slot_end` tells a repeat and gives
its slot back; the reaper and `storage.queue.slots` never count a trial marked `duplicate_of`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.worker_store import DUPLICATE_ATTR, NO_TRIAL_NUMBER, WorkerStore
from studyd.daemon.config_constraints import infeasible_search_end
from studyd.daemon.exploring import ExploringSampler
from studyd.daemon.records import REUSED_ATTRS
from studyd.daemon.runs import distinct_runs, search_exhausted
from studyd.daemon.worker.results import TrialResult
from studyd.daemon.worker.state import ServedStudy, WorkerState

# How often a trial whose run a lower trial is still training looks whether it has finished.
TWIN_POLL_SECONDS = 0.2
# Proposals in a row that repeated a run the study has, after which each next proposal is drawn
# at random (`exploring.ExploringSampler`) until a new run counts.
EXPLORE_AFTER_REPEATS = 2


class Repeats:
    """One worker's repeats in a row per study, and the look for a run's twin."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.in_a_row: dict[int, int] = {}
        self.infeasible_in_a_row: dict[int, int] = {}
        self.space_size: dict[int, int | None] = {}  # per study: its `distinct_runs`

    def before_training(self, study_id: int, study: optuna.Study, trial: optuna.Trial) -> None:
        """After EXPLORE_AFTER_REPEATS repeats in a row, `trial` is drawn at random."""
        explore = self.in_a_row.get(study_id, 0) >= EXPLORE_AFTER_REPEATS
        if explore and isinstance(study.sampler, ExploringSampler):
            study.sampler.explore(trial.number)  # its params are suggested at configure time

    def counted(self, study_id: int) -> None:
        """A new run counted: the repeats (and infeasible proposals) in a row start again."""
        self.in_a_row[study_id] = 0
        self.infeasible_in_a_row[study_id] = 0

    def infeasible_search_ends(self, study_id: int, reason: str, served: ServedStudy) -> str | None:
        """One more proposal told infeasible untrained: why the search ends now, or None."""
        n = self.infeasible_in_a_row[study_id] = self.infeasible_in_a_row.get(study_id, 0) + 1
        return infeasible_search_end(n, reason) or served.study.user_attrs.get("search_ended")

    def search_ends(self, study_id: int, served: ServedStudy) -> str | None:
        """One more repeat of `study_id`: why its search ends now, or None (it goes on)."""
        repeats = self.in_a_row[study_id] = self.in_a_row.get(study_id, 0) + 1
        if study_id not in self.space_size:
            self.space_size[study_id] = distinct_runs(served.spec, served.data)
        why = search_exhausted(served.study, served.spec, self.space_size[study_id], repeats)
        return why or served.study.user_attrs.get("search_ended")

    def take_twin(self, result: TrialResult, served: ServedStudy) -> TrialResult:
        """`result`, or a repeat when another trial of its run counts (`settled_twin`), read
        through database outages like every other step of ending a slot."""
        untrained = result.untrained_infeasible is not None
        if result.duplicate or untrained or result.trial is None:
            return result
        if "reused_from" in (result.attrs or {}):
            return result
        state, study, trial = self.state, served.study, result.trial
        store = state.store

        def read(earlier: FrozenTrial) -> FrozenTrial:
            return state.patiently("reading a trial", store.read_back, study, earlier)

        twin = state.patiently(
            "looking for the run's other trials",
            settled_twin,
            store,
            study,
            trial,
            interrupted=state.interrupted,
            read=read,
        )
        if twin is None:
            return result
        if "reused_from" in twin:
            return dataclasses.replace(result, attrs=twin, pruned=False, duplicate=True)
        return dataclasses.replace(result, attrs=(result.attrs or {}) | twin, duplicate=True)


def settled_twin(
    store: WorkerStore,
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    interrupted: Callable[[], bool],
    read: Callable[[FrozenTrial], FrozenTrial],
) -> dict[str, Any] | None:
    """The outcome a trained trial takes when another trial trained the same run: a lower one's
    once it completes (waited for while it trains), or a higher one's that completed first; its
    own marked as a repeat when `interrupted` while waiting. None: no other trial of the run
    completed, and this one counts. A repeat told its own outcome (stopped while the lower one
    still trains) is the same run's result to rounding: another worker may have trained the
    lower one unstacked.

    Two workers can propose one run at once, each before the other's finished: the lower trial
    counts and the higher is told the known result without counting, whichever finishes first.
    Waiting only on lower numbers, a worker settling its stack in trial order, cannot deadlock.
    A seed replicate always counts.
    """
    attrs = trial.user_attrs
    if "replicate_of" in attrs or "run_key" not in attrs:
        return None
    earlier = store.first_with_attr(
        study,
        "run_key",
        attrs["run_key"],
        before=trial.number,
        states=(TrialState.COMPLETE, TrialState.RUNNING),
    )
    while earlier is not None and earlier.state == TrialState.RUNNING:
        if interrupted():
            # Stopped (the study ended, say, as that very trial completed): its result if it
            # has one by now, so that the repeat is told it; else this trial's own.
            earlier = read(earlier)
            if earlier.state == TrialState.RUNNING:
                return {DUPLICATE_ATTR: earlier.number}
            break
        time.sleep(TWIN_POLL_SECONDS)
        earlier = read(earlier)
    # The run's counted trial is its lowest COMPLETE one: below this trial (the one waited for,
    # or another when that one was pruned or failed), or above it — a higher trial that looked
    # before this one's run was recorded (asked, not yet configured), saw no lower twin and
    # completed first.
    first = store.first_with_attr(
        study,
        "run_key",
        attrs["run_key"],
        before=NO_TRIAL_NUMBER,
        states=(TrialState.COMPLETE,),
    )
    if first is None or first.number == trial.number or "replicate_of" in first.user_attrs:
        return None
    return reused(first.user_attrs, first.number)


def reused(outcome: dict[str, Any], number: int) -> dict[str, Any]:
    """The outcome a trial takes from trial `number`, which ran its canonical config and seed."""
    return {k: outcome[k] for k in REUSED_ATTRS if k in outcome} | {"reused_from": number}


def is_duplicate(trial: optuna.Trial) -> bool:
    """A reused run that does not count towards the target: a search proposal (a seed
    replicate, enqueued by the finaliser, counts whatever it reuses)."""
    return "replicate_of" not in trial.user_attrs
