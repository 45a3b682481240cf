"""A stack's reports and attributes in one transaction read back exactly as Optuna's own calls."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError

from storage.trial_batch import report_many, set_many_user_attrs
from storage.trial_store import has_user_attr


def test_reports_of_a_stack_read_back_like_trial_report(optuna_storage):
    study = optuna.create_study(storage=optuna_storage, direction="maximize")
    stack, alone = [study.ask() for _ in range(4)], study.ask()
    values = [0.25, 0.5, math.inf, -1e-300]
    for epoch in range(2):
        report_many([(t, epoch, v + epoch) for t, v in zip(stack, values, strict=True)])
        alone.report(values[0] + epoch, epoch)
    for trial, value in zip(stack, values, strict=True):
        stored = optuna_storage.get_trial(trial._trial_id).intermediate_values
        assert stored == {0: value, 1: value + 1}
        assert trial._cached_frozen_trial.intermediate_values == stored  # what pruners read
    assert optuna_storage.get_trial(stack[0]._trial_id).intermediate_values == (
        optuna_storage.get_trial(alone._trial_id).intermediate_values
    )
    # As with Trial.report, the first report of a step wins.
    report_many([(stack[0], 1, 99.0), (stack[1], 2, 7.0), (stack[1], 2, 8.0)])
    assert optuna_storage.get_trial(stack[0]._trial_id).intermediate_values[1] == 1.25
    assert optuna_storage.get_trial(stack[1]._trial_id).intermediate_values[2] == 7.0


def test_a_report_repeated_after_its_reply_was_lost_replaces_the_stored_step(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    stack = [study.ask() for _ in range(3)]
    report_many([(t, 0, 0.1 * i) for i, t in enumerate(stack)])
    report_many([(t, 1, 0.5) for t in stack])
    # The write landed but its reply did not: the worker still holds steps 1 (and 0 of one).
    for trial in stack:
        del trial._cached_frozen_trial.intermediate_values[1]
    del stack[2]._cached_frozen_trial.intermediate_values[0]
    report_many([(t, 1, 0.5) for t in stack] + [(stack[2], 0, 0.2)])
    for i, trial in enumerate(stack):
        assert optuna_storage.get_trial(trial._trial_id).intermediate_values == {0: 0.1 * i, 1: 0.5}


def test_a_finished_trial_in_the_stack_writes_nothing(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    live, done = study.ask(), study.ask()
    study.tell(done, state=optuna.trial.TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        report_many([(live, 0, 0.5), (done, 0, 0.5)])
    with pytest.raises(UpdateFinishedTrialError):
        set_many_user_attrs([(live, {"a": 1}), (done, {"a": 2})])
    assert optuna_storage.get_trial(live._trial_id).intermediate_values == {}
    assert optuna_storage.get_trial(live._trial_id).user_attrs == {}


def test_attrs_of_a_stack_read_back_like_set_user_attr_and_upsert(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    stack = [study.ask() for _ in range(3)]
    set_many_user_attrs(
        [(t, {"k": i, "curve": [i, None], "name": "σ"}) for i, t in enumerate(stack)]
    )
    set_many_user_attrs([(stack[0], {"k": 10, "new": True}), (stack[2], {})])
    expected = [
        {"k": 10, "curve": [0, None], "name": "σ", "new": True},
        {"k": 1, "curve": [1, None], "name": "σ"},
        {"k": 2, "curve": [2, None], "name": "σ"},
    ]
    for trial, attrs in zip(stack, expected, strict=True):
        assert optuna_storage.get_trial(trial._trial_id).user_attrs == attrs
        assert trial.user_attrs == attrs


def test_has_user_attr_answers_as_user_attrs_does(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    enqueued = {"replicate_of": 0}
    study.enqueue_trial({}, user_attrs=enqueued)
    replicate, proposal = study.ask(), study.ask()
    set_many_user_attrs([(proposal, {"run_key": "k"}), (replicate, {"run_key": "k"})])
    proposal.set_user_attr("late", True)
    for trial in (replicate, proposal):
        for key in ("replicate_of", "run_key", "late", "absent"):
            assert has_user_attr(trial, key) == (key in trial.user_attrs)
    assert has_user_attr(replicate, "replicate_of") and not has_user_attr(proposal, "replicate_of")
