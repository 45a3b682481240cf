"""The API's best trial (`storage.trials.best_trial`, SQL over Optuna's tables) is the one the
daemon's finaliser retrains for the test score (`studyd.daemon.records.best_trial`): the best
feasible trial, else the best of all, the lowest number among equals."""

from __future__ import annotations

import optuna
import pytest

from storage import trials
from studyd.daemon.records import best_trial


def _study(optuna_storage, direction: str, told: list[tuple[float, float | None]]):
    """Trials told each value in order, with constraint `pc` the second item (None: none)."""
    study = optuna.create_study(storage=optuna_storage, direction=direction)
    for value, violation in told:
        trial = study.ask()
        if violation is not None:
            trial.set_constraint("pc", violation)
        study.tell(trial, value)
    return study


def _numbers(engine, study) -> tuple[int, int]:
    api = trials.best_trial(engine, study.study_name)
    return api.number, best_trial(study).number


def test_a_feasible_trial_below_a_page_of_better_infeasible_ones_is_the_best(
    engine, optuna_storage
):
    infeasible = [(0.9 + i / 1000, 1.0) for i in range(70)]  # more than one page of them
    study = _study(optuna_storage, "maximize", [*infeasible, (0.5, 0.0), (0.5, -2.0), (0.4, -1)])
    assert _numbers(engine, study) == (70, 70)


def test_with_no_feasible_trial_the_best_of_all(engine, optuna_storage):
    study = _study(optuna_storage, "maximize", [(0.3, 1.0), (0.8, 2.0), (0.8, float("inf"))])
    assert _numbers(engine, study) == (1, 1)


def test_minimising_feasible_first(engine, optuna_storage):
    study = _study(optuna_storage, "minimize", [(0.1, 0.5), (0.4, -0.5), (0.3, 0.0), (0.3, -1)])
    assert _numbers(engine, study) == (2, 2)


@pytest.mark.parametrize("direction,best", [("maximize", 1), ("minimize", 0)])
def test_without_constraints_the_best_value_and_lowest_number(
    engine, optuna_storage, direction, best
):
    study = _study(optuna_storage, direction, [(0.2, None), (0.7, None), (0.7, None), (0.2, None)])
    assert _numbers(engine, study) == (best, best)
