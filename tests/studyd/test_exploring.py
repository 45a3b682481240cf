"""The exploring sampler: TPE sticks to a one-point choice the study rates best; trials marked
`explore` are drawn uniformly instead, reproducibly, and the mark ends with the trial."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from studyd.daemon.exploring import ExploringSampler


def _suggest(trial: optuna.Trial) -> str:
    variant = trial.suggest_categorical("variant", ["none", "standard"])
    if variant == "standard":
        trial.suggest_float("rate", 0.0, 0.8)
    return variant


def _sticky_study(seed: int = 0) -> optuna.Study:
    """A TPE study where `none` (no further knob) scored far above every `standard` run."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=ExploringSampler(optuna.samplers.TPESampler(seed=seed), seed)
    )
    for k in range(12):
        fixed = {"variant": "none"} if k % 2 else {"variant": "standard", "rate": 0.05 * k}
        study.enqueue_trial(fixed)
        trial = study.ask()
        variant = _suggest(trial)
        study.tell(trial, 0.9 if variant == "none" else 0.3)
    return study


def _proposals(study: optuna.Study, n: int, explore: bool) -> list[str]:
    out = []
    for _ in range(n):
        trial = study.ask()
        if explore:
            study.sampler.explore(trial.number)
        out.append(_suggest(trial))
        study.tell(trial, state=TrialState.FAIL)  # FAILs do not teach TPE: same model each ask
    return out


def test_tpe_sticks_to_the_best_one_point_choice_and_explored_trials_do_not():
    study = _sticky_study()
    model_based = _proposals(study, 30, explore=False)
    explored = _proposals(study, 30, explore=True)
    assert model_based.count("none") >= 24  # TPE's l(x)/g(x) favours the best choice
    assert 7 <= explored.count("none") <= 23  # uniform: 15 ± 8 (beyond 2.9 sd)


def test_explored_draws_are_seeded_and_the_mark_ends_with_the_trial():
    first = _sticky_study(seed=3)
    second = _sticky_study(seed=3)
    runs = []
    for study in (first, second):
        trial = study.ask()
        study.sampler.explore(trial.number)
        variant = _suggest(trial)
        runs.append((variant, trial.params.get("rate")))
        assert trial.number in study.sampler.marked
        study.tell(trial, 0.5)
        assert trial.number not in study.sampler.marked
    assert runs[0] == runs[1]
