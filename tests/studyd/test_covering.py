"""Every requested variant gets a trial before the sampler's own taste decides."""

from __future__ import annotations

import optuna
import pytest

from studyd.daemon.covering import untried_variant
from studyd.daemon.search import build_sampler, suggest_config
from studyd.spec import load_spec

SPEC = """
name: cover
dropout: {variants: [none, standard, gaussian, dropconnect, rdrop]}
search: {sampler: %s, n_trials: 12, seed: 0}
baselines: [{variant: standard, rate: 0.5}]
"""


def _variants(sampler: str, n: int) -> list[str]:
    spec = load_spec(SPEC % sampler)
    study = optuna.create_study(direction="maximize", sampler=build_sampler(spec))
    study.enqueue_trial({"variant": "standard", "rate": 0.5})  # the spec's baseline, at submit
    drawn = []
    for i in range(n):
        trial = study.ask()
        model_cfg, _ = suggest_config(trial, spec, (64, 10))
        drawn.append(model_cfg.variant)
        study.tell(trial, 0.5 + i / 100)
    return drawn


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp"])
def test_the_baselines_then_each_untried_variant_in_the_spec_s_order(sampler):
    drawn = _variants(sampler, 7)
    assert drawn[:5] == ["standard", "none", "gaussian", "dropconnect", "rdrop"]


def test_once_every_variant_has_a_trial_the_sampler_decides():
    study = optuna.create_study()
    choices = ["none", "standard"]
    dist = {"variant": optuna.distributions.CategoricalDistribution(choices)}
    study.add_trial(
        optuna.trial.create_trial(params={"variant": "none"}, distributions=dist, value=1)
    )
    study.enqueue_trial({"variant": "standard"})
    study.enqueue_trial({"variant": "standard"})
    current = study.ask()  # takes the first enqueued trial; the second still waits
    assert untried_variant(study, current, choices) is None
    assert untried_variant(study, current, [*choices, "gaussian"]) == "gaussian"


def test_trials_asked_together_take_different_untried_variants():
    """Two workers create their trials before either writes its variant: the later trial takes
    the variant after the one the earlier will take (it took the same one, a duplicate run)."""
    spec = load_spec(SPEC % "tpe")
    study = optuna.create_study(direction="maximize", sampler=build_sampler(spec))
    first, second = study.ask(), study.ask()  # both created, neither has sampled yet
    second_cfg, _ = suggest_config(second, spec, (64, 10))
    first_cfg, _ = suggest_config(first, spec, (64, 10))
    assert (first_cfg.variant, second_cfg.variant) == ("none", "standard")
    third = study.ask()
    assert suggest_config(third, spec, (64, 10))[0].variant == "gaussian"


def test_a_finished_trial_without_a_variant_holds_no_variant_back():
    study = optuna.create_study()
    choices = ["none", "standard"]
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert untried_variant(study, study.ask(), choices) == "none"
