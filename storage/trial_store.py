"""The worker's trial calls that Optuna's public API does not cover alone.

A trial's storage id (Optuna keeps it private), a tell whose reply was lost, a FAIL with one
retry of its params, an orphan FAILed, constraints written once, and the finished run a new
trial can reuse: one indexed query on an RDBStorage, a scan of the study's trials on any other
storage (the gRPC proxy). Only `storage/` touches Optuna's private attributes.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.trial_attrs import first_trial_with_attr, is_rdb

# Errors `Study.tell` raises for a trial that is already finished (a late or repeated tell).
TELL_ERRORS = (RuntimeError, optuna.exceptions.UpdateFinishedTrialError, ValueError)
# Above every trial number (Optuna stores them as 32-bit integers).
NO_TRIAL_NUMBER = 2**31 - 1
# User attributes an enqueued trial was given that its retry keeps.
RETRY_KEEPS_ATTRS = ("replicate_of", "replicate_seed", "baseline")


def trial_id(trial: optuna.Trial) -> int:
    """The trial's id in the storage (what the queue's lease records)."""
    return trial._trial_id


def has_user_attr(trial: optuna.Trial, key: str) -> bool:
    """`key in trial.user_attrs`, without the deep copy of every attribute that property makes
    (≈ 0.2 ms for a worker's ~30 config attributes: the pruning check asks it every epoch)."""
    return key in trial._cached_frozen_trial.user_attrs


def read_back(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as stored now, never from the study's cache (another process may have ended it)."""
    storage = study._storage
    return getattr(storage, "_backend", storage).get_trial(trial._trial_id)


def tell_or_read_back(
    study: optuna.Study, trial: optuna.Trial, **kwargs: Any
) -> tuple[FrozenTrial | None, Exception | None]:
    """`study.tell(trial, **kwargs)`; when the storage refuses it as finished: (the trial as
    stored, None) if our own tell landed before its reply was lost, (None, the error) if someone
    else finished it (the reaper). Raises when the trial is not finished: a real error."""
    try:
        return study.tell(trial, **kwargs), None
    except TELL_ERRORS as exc:
        # Only now read the trial back (not before every tell: one round trip saved per trial).
        current = read_back(study, trial)
        if not current.state.is_finished():
            raise
        if current.state == kwargs.get("state", TrialState.COMPLETE):
            return current, None
        return None, exc


def fail_for_retry(study: optuna.Study, trial: optuna.Trial, error: str) -> None:
    """FAIL a running trial with `error` and enqueue one retry of it (`enqueue_retry`).

    Safe to call again after a dropped connection: on a database storage a trial already FAILed
    with this `error` (our tell landed, its reply was lost) still gets its retry, once; a trial
    someone else finished (the reaper, which retries it itself) is left alone.
    """
    stored = read_back(study, trial)
    if not stored.state.is_finished():
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)
    elif stored.state != TrialState.FAIL or stored.user_attrs.get("error") != error:
        return
    elif not is_rdb(study._storage):
        # Through a gRPC proxy the check for an enqueued retry reads the proxy client's trial
        # list, whose freshness is not established here: one shot there, as before (a lost
        # reply can lose the retry; it can never enqueue two).
        return
    enqueue_retry(study, stored)


def enqueue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue `trial`'s params once more (`retry_of`), keeping `RETRY_KEEPS_ATTRS`.

    One retry only: a retry that fails again (ours, or Optuna's `failed_trial`) stays failed.
    The worker's database-outage path and the reaper both come here, so they retry alike.
    """
    if "retry_of" in trial.user_attrs or trial.system_attrs.get("failed_trial") is not None:
        return
    every_state = tuple(TrialState)
    if first_with_attr(study, "retry_of", trial.number, before=NO_TRIAL_NUMBER, states=every_state):
        return  # enqueued already (a call repeated after its reply was lost)
    # A seed replicate's retry must train the same seed (the worker reads `replicate_seed`) and
    # still count as a replicate; a baseline's retry is still the baseline.
    kept = {k: trial.user_attrs[k] for k in RETRY_KEEPS_ATTRS if k in trial.user_attrs}
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, **kept})


def fail_stored_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """FAIL a trial known only from storage (no live `Trial`: an orphan nobody will tell)."""
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def storage_best_number(study: optuna.Study) -> int | None:
    """The number of the trial Optuna's storage calls best (`get_best_trial`: what the
    dashboard's Best Trial panel shows; it ignores constraints and orders equal values in no set
    way); None for a multi-objective study or one without a complete trial."""
    if len(study.directions) > 1:
        return None
    try:
        return study._storage.get_best_trial(study._study_id).number
    except ValueError:
        return None


def set_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    """Each constraint's value (system attr `constraints:<name>`) unless already set."""
    if not violations:
        return  # no constraints: skip the read below
    already = trial.storage.get_trial_system_attrs(trial._trial_id)
    for name, value in violations.items():
        if f"constraints:{name}" not in already:  # a retried call must not warn
            trial.set_constraint(name, value)


def first_with_attr(
    study: optuna.Study,
    key: str,
    value: Any,
    *,
    before: int,
    states: tuple[TrialState, ...] = (TrialState.COMPLETE,),
) -> FrozenTrial | None:
    """The lowest-numbered trial below `before`, in one of `states` (COMPLETE unless told),
    whose user attribute `key` is `value`."""
    if is_rdb(study._storage):
        return first_trial_with_attr(
            study._storage, study._study_id, key, value, before=before, states=states
        )
    candidates = study.get_trials(deepcopy=False, states=states)
    for trial in sorted(candidates, key=lambda t: t.number):
        if trial.number < before and trial.user_attrs.get(key) == value:
            return trial
    return None
