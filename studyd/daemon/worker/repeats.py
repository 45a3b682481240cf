"""Repeats: a trial whose run (canonical config + seed) the study already has takes that run's
outcome instead of counting again — a finished run's (`reused`), or a lower trial's that trained
it at the same time on another worker (`settled_twin`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.worker_store import DUPLICATE_ATTR, NO_TRIAL_NUMBER, WorkerStore
from studyd.daemon.records import REUSED_ATTRS

# How often a trial whose run a lower trial is still training looks whether it has finished.
TWIN_POLL_SECONDS = 0.2


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
