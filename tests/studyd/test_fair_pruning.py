"""The stratified pruner judges a trial against finished trials of its own variant only."""

from __future__ import annotations

import optuna
import pytest

from studyd.daemon.fair_pruning import StratifiedPruner, scaled_warmup, variant_of

VARIANTS = ["none", "standard"]
CHOICE = optuna.distributions.CategoricalDistribution(VARIANTS)


def _study(startup: int = 2) -> optuna.Study:
    median = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    return optuna.create_study(direction="maximize", pruner=StratifiedPruner(median))


def _finished(study: optuna.Study, variant: str, first_epoch: float) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params={"variant": variant},
            distributions={"variant": CHOICE},
            value=first_epoch,
            intermediate_values={0: first_epoch},
        )
    )


def _judged(study: optuna.Study, variant: str, first_epoch: float) -> bool:
    """Whether a running trial of `variant` is pruned after reporting `first_epoch`."""
    study.enqueue_trial({"variant": variant})
    trial = study.ask()
    trial.suggest_categorical("variant", VARIANTS)
    trial.report(first_epoch, 0)
    return trial.should_prune()


@pytest.fixture
def slow_dropout_study() -> optuna.Study:
    """`none` learns fast (0.9 after one epoch), `standard` slowly (0.3): dropout's way."""
    study = _study()
    for value in (0.9, 0.92):
        _finished(study, "none", value)
    for value in (0.3, 0.34):
        _finished(study, "standard", value)
    return study


def test_a_slow_dropout_trial_is_judged_against_dropout_trials_only(slow_dropout_study):
    # Against every variant (median 0.62) a 0.33 would be pruned; against standard's (0.32) not.
    assert not _judged(slow_dropout_study, "standard", 0.33)


def test_a_trial_below_its_own_variant_median_is_still_pruned(slow_dropout_study):
    assert _judged(slow_dropout_study, "standard", 0.2)
    assert _judged(slow_dropout_study, "none", 0.5)


def test_start_up_trials_count_per_variant():
    study = _study(startup=2)
    for value in (0.9, 0.92, 0.95):
        _finished(study, "none", value)
    _finished(study, "standard", 0.3)
    # One finished standard trial is fewer than the two start-up trials: nothing to judge by.
    assert not _judged(study, "standard", 0.01)


def test_a_finished_trial_of_unknown_variant_counts_for_every_variant():
    study = _study(startup=1)
    study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={0: 0.9}))
    assert _judged(study, "standard", 0.5)


def test_an_infeasible_finished_trial_is_no_reference():
    study = _study(startup=1)
    wide = optuna.trial.create_trial(
        params={"variant": "standard"},
        distributions={"variant": CHOICE},
        value=0.99,
        intermediate_values={0: 0.99},
        system_attrs={"constraints:param_count <= 20000": 22977.0},
    )
    study.add_trial(wide)
    # The only finished standard trial broke the bound: nothing to judge a feasible one by.
    assert not _judged(study, "standard", 0.5)
    _finished(study, "standard", 0.6)
    assert _judged(study, "standard", 0.5)


def test_the_variant_attribute_serves_when_the_spec_has_one_variant():
    trial = optuna.trial.create_trial(value=0.5, user_attrs={"variant": "gaussian"})
    assert variant_of(trial) == "gaussian"
    assert variant_of(optuna.trial.create_trial(value=0.5)) is None


@pytest.mark.parametrize(("epochs", "warmup"), [(1, 1), (3, 1), (8, 1), (40, 6), (200, 30)])
def test_warm_up_is_15_percent_of_the_epochs(epochs, warmup):
    assert scaled_warmup(epochs) == warmup


def test_the_bench_replay_shows_the_bias_the_stratified_pruner_removes():
    """Curves where dropout learns slowly but ends higher: Optuna's median over all variants
    prunes every later dropout trial early; within the variant, the best one completes."""
    from bench.fair_pruning import Trained, build, kendall_tau, leader, ranking, replay

    def curve(start: float, end: float) -> list[float]:
        return [start + (end - start) * e / 9 for e in range(10)]

    runs = [Trained("none", curve(0.8, 0.85)) for _ in range(5)]
    runs += [Trained("standard", curve(0.3, 0.9 - 0.01 * k)) for k in range(4)]
    variants = ["none", "standard"]
    unpruned = replay(runs, build("none", 10))
    assert leader(unpruned.best, variants) == "standard"
    old = replay(runs, build("median", 10))
    assert "standard" not in old.best and old.pruned == ["standard"] * 4
    fair = replay(runs, build("strat:s=1:w=0.15", 10))
    assert leader(fair.best, variants) == "standard" and fair.epochs < unpruned.epochs
    assert kendall_tau(ranking(fair.best, variants), ranking(unpruned.best, variants)) == 1.0
