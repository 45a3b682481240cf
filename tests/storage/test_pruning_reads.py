"""A stack's pruning decisions from one read decide exactly as Optuna's `Trial.should_prune`."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.trial import TrialState

from storage.pruning_reads import ONE_READ_PRUNERS, CompletedTrials, prune_decisions

PRUNERS = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    "percentile": lambda: optuna.pruners.PercentilePruner(
        70.0, n_startup_trials=1, n_warmup_steps=0, interval_steps=2
    ),
    "nop": optuna.pruners.NopPruner,
    # Reads and writes other trials' rungs: asked per trial, as before.
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
}


def _curve(rng: random.Random, epochs: int) -> list[float]:
    level = rng.uniform(0.2, 0.9)
    return [min(1.0, level + 0.02 * e + rng.gauss(0, 0.05)) for e in range(epochs)]


class _Twin:
    """One study and another process's handle on it (what it completes, the worker must see)."""

    def __init__(self, storage, name: str) -> None:
        self.study = optuna.create_study(
            storage=storage, direction="maximize", pruner=PRUNERS[name]()
        )
        self.other = optuna.load_study(study_name=self.study.study_name, storage=storage)

    def complete_elsewhere(self, curve: list[float], value: float) -> None:
        done = self.other.ask()
        for epoch, v in enumerate(curve):
            done.report(v, epoch)
        self.other.tell(done, value)


@pytest.mark.parametrize("name", list(PRUNERS))
def test_decisions_replay_optunas_pruner_on_the_same_events(optuna_storage, name):
    """Twin studies see the same events; one decides by `prune_decisions`, the other by
    `Trial.should_prune`. A pruner that keeps no state is also asked again on the first."""
    rng = random.Random(7)
    ours, optunas = _Twin(optuna_storage, name), _Twin(optuna_storage, name)
    twins = (ours, optunas)
    for _ in range(2):
        curve = _curve(rng, 6)
        for twin in twins:
            twin.complete_elsewhere(curve, curve[-1])
    completed = CompletedTrials()
    stacks = [[twin.study.ask() for _ in range(6)] for twin in twins]
    curves = [_curve(rng, 6) for _ in range(6)]
    verdicts = []
    for epoch in range(6):
        for stack in stacks:
            for trial, curve in zip(stack, curves, strict=True):
                trial.report(curve[epoch], epoch)
        decided = prune_decisions(stacks[0], completed)
        assert decided == [trial.should_prune() for trial in stacks[1]], f"epoch {epoch}"
        if type(ours.study.pruner) in ONE_READ_PRUNERS:
            assert decided == [trial.should_prune() for trial in stacks[0]], f"epoch {epoch}"
        verdicts += decided
        if epoch in (1, 3):  # trials complete between epochs, elsewhere
            curve, value = _curve(rng, 6), rng.uniform(0.2, 0.9)
            for twin in twins:
                twin.complete_elsewhere(curve, value)
        if epoch == 2:  # and fail: never among the pruner's completed trials
            for twin in twins:
                twin.other.tell(twin.other.ask(), state=TrialState.FAIL)
    if name != "nop":
        assert any(verdicts) and not all(verdicts)  # the replay decided both ways


def test_completed_trials_are_the_studys_and_loaded_once(optuna_storage, monkeypatch):
    study = optuna.create_study(storage=optuna_storage, direction="maximize")
    completed = CompletedTrials()
    assert completed.read(study) == []
    first = study.ask()
    first.report(0.5, 0)
    study.tell(first, 0.5)
    running = study.ask()
    running.report(0.1, 0)
    read = completed.read(study)
    assert read == study.get_trials(states=(TrialState.COMPLETE,))
    assert read[0].intermediate_values == {0: 0.5}

    study.tell(running, 0.7)
    loads: list[int] = []
    backend = study._storage._backend
    real_get_trial = backend.get_trial
    monkeypatch.setattr(backend, "get_trial", lambda i: loads.append(i) or real_get_trial(i))
    read = completed.read(study)
    completed.read(study)
    assert loads == [running._trial_id]  # the newly completed one, once
    assert [t.number for t in read] == [0, 1]
    assert read == study.get_trials(states=(TrialState.COMPLETE,))
