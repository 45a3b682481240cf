"""Spec → trial: conditional parameters, every sampler, and rebuilding from a finished trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from studyd.daemon.fair_pruning import StratifiedPruner
from studyd.daemon.search import build_pruner, build_sampler, suggest_config
from studyd.spec import load_spec
from studyd.spec.parameters import baseline_params, grid_space, search_params

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDE = """
name: wide
model: {depth: [1, 3], width: [16, 64], per_layer_widths: true}
dropout:
  variants: [none, standard, vanilla, gaussian, dropconnect, standout, rdrop, multisample]
  placements: [hidden, input+hidden, last_hidden, pre_activation]
  per_layer_rates: true
  input_rate: [0.05, 0.3]
training: {batch_size: [16, 32, 64], optimizer: [adam, sgd], weight_decay: [1.0e-6, 1.0e-3],
           weight_decay_log: true}
search: {sampler: %s, pruner: none, seed: 3}
"""

OWN_PARAMS = {
    "rdrop": {"rdrop_alpha"},
    "multisample": {"multisample_k"},
    "standout": {"standout_alpha", "standout_beta"},
}


def _run(spec, n):
    study = optuna.create_study(sampler=build_sampler(spec), direction="maximize")
    out = []
    for i in range(n):
        trial = study.ask()
        model, train = suggest_config(trial, spec, (64, 10))
        out.append((trial.params, model, train))
        study.tell(trial, (i % 7) / 7)
    return study, out


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "gp"])
def test_every_sampler_draws_only_parameters_the_chosen_variant_uses(sampler):
    spec = load_spec(WIDE % sampler)
    n = 14 if sampler == "gp" else 40
    study, drawn = _run(spec, n)
    for params, model, train in drawn:
        variant = params["variant"]
        assert model.variant == variant
        for other, own in OWN_PARAMS.items():
            if other != variant:
                assert not own & params.keys(), (variant, params)
            else:
                assert own <= params.keys()
        if variant == "none":
            assert not {"placement", "rate", "input_rate"} & params.keys()
            assert not any(k.startswith("rate_") for k in params)
        elif variant == "standout":
            assert not any(k.startswith("rate") for k in params)
        else:
            rate_keys = [k for k in params if k.startswith("rate_")]
            if params["placement"] == "last_hidden":
                assert "rate" in params and not rate_keys
            else:
                assert len(rate_keys) == params["depth"]
            assert ("input_rate" in params) == ("input" in params["placement"])
            assert model.placements == params["placement"].split("+")
        assert len(model.hidden) == params["depth"]
        assert [f"width_{i}" for i in range(params["depth"])] == sorted(
            k for k in params if k.startswith("width_")
        )
        assert ("momentum" in params) is False and train.momentum == 0.9
    # Rebuilding from the stored trial gives the identical configs.
    for frozen, (_, model, train) in zip(study.trials, drawn, strict=True):
        assert suggest_config(frozen, spec, (64, 10)) == (model, train)


def test_fixed_scalars_are_never_suggested():
    spec = load_spec("name: f\ndropout: {variants: [standard], placements: [hidden]}")
    _, drawn = _run(spec, 3)
    for params, model, train in drawn:
        assert set(params) == {"width", "rate", "lr"}
        assert model.variant == "standard" and model.placements == ["hidden"]
        assert train.epochs == 10 and train.batch_size == 128


def test_data_shape_forms_agree():
    spec = load_spec("name: f")
    trial = optuna.trial.FixedTrial({"variant": "none", "width": 64, "lr": 0.01})

    class Shape:
        input_dim, num_classes = 8, 3

    a = suggest_config(trial, spec, (8, 3))
    assert suggest_config(trial, spec, 8, 3) == a == suggest_config(trial, spec, Shape())
    assert a[0].input_dim == 8 and a[0].num_classes == 3


def test_rebuilding_a_trial_from_another_spec_says_so():
    spec = load_spec("name: f")
    other = load_spec("name: g\nmodel: {depth: [1, 2]}")
    study = optuna.create_study()
    trial = study.ask()
    suggest_config(trial, spec, (4, 2))
    study.tell(trial, 0.5)
    with pytest.raises(ValueError, match="has no parameter 'depth'"):
        suggest_config(study.trials[0], other, (4, 2))


def test_grid_sampler_enumerates_the_finite_space_once():
    spec = load_spec(
        "name: g\nmodel: {depth: [1, 2], width: 16}\n"
        "dropout: {variants: [none, standard], rate: [0.2, 0.4, 0.6]}\n"
        "training: {lr: 0.01, epochs: 1}\nsearch: {sampler: grid, pruner: none, n_trials: 6}"
    )
    grid = grid_space(spec)
    assert grid == {"depth": [1, 2], "variant": ["none", "standard"], "rate": [0.2, 0.4, 0.6]}
    study, _ = _run(spec, 14)  # past the 12 grid points: asking on must not raise
    assert {t.system_attrs["grid_id"] for t in study.trials[:12]} == set(range(12))


def test_baselines_are_enqueued_first_and_drive_the_first_trials():
    spec = load_spec(Path(__file__).parents[2] / "examples/d2l.yaml")
    study = optuna.create_study(sampler=build_sampler(spec), direction="maximize")
    for params in baseline_params(spec):
        study.enqueue_trial(params)
    first = study.ask()
    model, _ = suggest_config(first, spec, (40, 10))
    assert model.variant == "standard" and model.rates == [0.2, 0.5]
    study.tell(first, 0.9)
    second = study.ask()
    assert suggest_config(second, spec, (40, 10))[0].variant == "none"


def test_search_params_names_every_possible_parameter():
    spec = load_spec(WIDE % "tpe")
    names = set(search_params(spec))
    assert {"width_0", "width_2", "rate", "rate_2", "input_rate", "multisample_k"} <= names


@pytest.mark.parametrize(
    ("pruner", "cls"),
    [
        ("none", optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ("percentile", optuna.pruners.PercentilePruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ],
)
def test_pruner_from_spec(pruner, cls):
    spec = load_spec(f"name: p\ntraining: {{epochs: 2}}\nsearch: {{pruner: {pruner}}}")
    built = build_pruner(spec)
    # The median and percentile pruners judge a trial within its own variant by default.
    assert isinstance(getattr(built, "inner", built), cls)
    assert isinstance(built, StratifiedPruner) == (pruner in ("median", "percentile"))


def test_the_default_pruner_waits_15_percent_of_the_epochs_and_one_trial_per_variant():
    built = build_pruner(load_spec("name: p\ntraining: {epochs: 40}"))
    assert isinstance(built, StratifiedPruner)
    assert (built.inner._n_warmup_steps, built.inner._n_startup_trials) == (6, 1)
    told = "search: {pruner: {name: median, warmup_epochs: 2, by_variant: false}}"
    plain = build_pruner(load_spec(f"name: p\ntraining: {{epochs: 40}}\n{told}"))
    assert type(plain) is optuna.pruners.MedianPruner and plain._n_warmup_steps == 2


def test_workers_get_different_seeds_so_they_do_not_draw_the_same_points():
    spec = load_spec("name: r\nsearch: {sampler: random, seed: 1}")
    draws = []
    for offset in (0, 1):
        study = optuna.create_study(sampler=build_sampler(spec, seed_offset=offset))
        trial = study.ask()
        suggest_config(trial, spec, (4, 2))
        draws.append(trial.params)
    assert draws[0] != draws[1]
