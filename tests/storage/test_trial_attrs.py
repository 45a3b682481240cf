"""Batched user attributes and the finished-run look-up read back exactly as Optuna's own calls."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from storage.trial_attrs import first_trial_with_attr, set_trial_user_attrs

ATTRS = {
    "config": {"hidden": [64, 32], "rates": [0.5, 0.25], "variant": "standard"},
    "curve": [{"epoch": 0, "val_acc": 0.5}, {"epoch": 1, "val_acc": None}],
    "variant": "standard",
    "param_count": 1234,
    "gap": -0.0125,
    "unicode": "σ² = p/(1−p)",
}


def test_batched_attrs_read_back_like_set_user_attr_and_upsert(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    mine, theirs = study.ask(), study.ask()
    set_trial_user_attrs(optuna_storage, mine._trial_id, ATTRS)
    for key, value in ATTRS.items():
        theirs.set_user_attr(key, value)
    assert optuna_storage.get_trial(mine._trial_id).user_attrs == ATTRS
    assert (
        optuna_storage.get_trial(mine._trial_id).user_attrs
        == optuna_storage.get_trial(theirs._trial_id).user_attrs
    )
    # A second write of a key replaces it (the unique key is (trial_id, key)); others stay.
    set_trial_user_attrs(optuna_storage, mine._trial_id, {"variant": "gaussian", "new": 1})
    assert optuna_storage.get_trial(mine._trial_id).user_attrs == {
        **ATTRS,
        "variant": "gaussian",
        "new": 1,
    }


def test_batched_attrs_on_a_finished_trial_raise_like_optuna(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_trial_user_attrs(optuna_storage, trial._trial_id, {"late": 1})
    with pytest.raises(KeyError):
        set_trial_user_attrs(optuna_storage, 10_000, {"x": 1})
    assert "late" not in optuna_storage.get_trial(trial._trial_id).user_attrs


def test_first_trial_with_attr_finds_the_lowest_complete_below(optuna_storage):
    study = optuna.create_study(storage=optuna_storage)
    states = [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
    for state in states:
        trial = study.ask()
        trial.set_user_attr("run_key", "abc")
        if state == TrialState.COMPLETE:
            study.tell(trial, 0.5)
        elif state == TrialState.FAIL:
            study.tell(trial, state=state)
    other = study.ask()
    other.set_user_attr("run_key", "other")
    study.tell(other, 0.9)

    def find(key, before):
        return first_trial_with_attr(optuna_storage, study._study_id, "run_key", key, before=before)

    assert find("abc", 10).number == 1
    assert find("abc", 1) is None
    assert find("other", 10).number == 4
    assert find("missing", 10) is None
