"""Canonical configurations: equal networks get one form and one key."""

from __future__ import annotations

import itertools

import pytest
import torch

from models.config import ModelConfig, TrainConfig
from models.mlp import build_mlp
from studyd.analysis.canonical import (
    canonicalize,
    canonicalize_model,
    canonicalize_train,
    config_key,
)

BASE = {"input_dim": 64, "num_classes": 10, "hidden": [128, 64]}
TRAIN = TrainConfig()


def mc(**kw) -> ModelConfig:
    return ModelConfig(**{**BASE, **kw})


def test_all_zero_rates_become_none_with_rates_and_knobs_cleared():
    cfg = mc(variant="rdrop", rates=[0.0, 0.0], placements=["hidden", "input"], rdrop_alpha=3.0)
    canon = canonicalize_model(cfg)
    assert canon.variant == "none"
    assert canon.rates == []
    assert canon.input_rate == 0.0
    assert canon.rdrop_alpha == 1.0
    assert canon == canonicalize_model(mc())


def test_none_ignores_rates_placements_and_variant_params():
    a = mc(variant="none", rates=[0.3, 0.5], placements=["input", "last_hidden"], input_rate=0.2)
    b = mc(variant="none", multisample_k=8, standout_alpha=2.0)
    assert canonicalize_model(a) == canonicalize_model(b) == canonicalize_model(mc())
    assert config_key(a, TRAIN) == config_key(b, TRAIN)


def test_placement_whose_rates_are_all_zero_is_removed():
    cfg = mc(variant="standard", rates=[0.2, 0.5], placements=["input", "hidden"], input_rate=0.0)
    canon = canonicalize_model(cfg)
    assert canon.placements == ["hidden"]
    assert canon.variant == "standard"
    assert canon.rates == [0.2, 0.5]


def test_input_rate_is_cleared_when_input_placement_is_absent():
    a = mc(variant="gaussian", rates=[0.2, 0.5], input_rate=0.3)
    b = mc(variant="gaussian", rates=[0.2, 0.5], input_rate=0.0)
    assert canonicalize_model(a) == canonicalize_model(b)


def test_last_hidden_alone_reads_only_the_last_rate():
    a = mc(variant="standard", rates=[0.1, 0.5], placements=["last_hidden"])
    b = mc(variant="standard", rates=[0.7, 0.5], placements=["last_hidden"])
    assert canonicalize_model(a).rates == [0.0, 0.5]
    assert config_key(a, TRAIN) == config_key(b, TRAIN)
    c = mc(variant="standard", rates=[0.5, 0.0], placements=["last_hidden"])
    assert canonicalize_model(c).variant == "none"


def test_placements_are_a_set():
    a = mc(variant="standard", rates=[0.2, 0.5], placements=["hidden", "input"], input_rate=0.1)
    b = mc(
        variant="standard",
        rates=[0.2, 0.5],
        placements=["input", "hidden", "input"],
        input_rate=0.1,
    )
    assert canonicalize_model(a).placements == ["input", "hidden"]
    assert config_key(a, TRAIN) == config_key(b, TRAIN)


def test_last_hidden_beside_hidden_is_redundant():
    a = mc(variant="standard", rates=[0.2, 0.5], placements=["hidden", "last_hidden"])
    b = mc(variant="standard", rates=[0.2, 0.5], placements=["hidden"])
    assert config_key(a, TRAIN) == config_key(b, TRAIN)


def test_standout_takes_no_rate_so_its_sites_stay_and_rates_are_cleared():
    a = mc(variant="standout", rates=[0.0, 0.0], placements=["hidden"], standout_alpha=2.0)
    b = mc(variant="standout", rates=[0.4, 0.1], placements=["hidden"], standout_alpha=2.0)
    canon = canonicalize_model(a)
    assert canon.variant == "standout"
    assert (canon.placements, canon.rates, canon.standout_alpha) == (["hidden"], [], 2.0)
    assert config_key(a, TRAIN) == config_key(b, TRAIN)
    assert canonicalize_model(mc(variant="standout", placements=[])).variant == "none"


def test_other_variants_params_are_reset_but_own_are_kept():
    a = mc(variant="rdrop", rates=[0.3, 0.3], rdrop_alpha=2.5, multisample_k=7, standout_beta=1.0)
    canon = canonicalize_model(a)
    assert canon.rdrop_alpha == 2.5
    assert (canon.multisample_k, canon.standout_beta) == (4, 0.0)
    b = mc(variant="rdrop", rates=[0.3, 0.3], rdrop_alpha=0.5)
    assert config_key(a, TRAIN) != config_key(b, TRAIN)


def test_multisample_with_one_mask_is_standard():
    a = mc(variant="multisample", rates=[0.3, 0.3], multisample_k=1)
    b = mc(variant="standard", rates=[0.3, 0.3])
    assert config_key(a, TRAIN) == config_key(b, TRAIN)
    c = mc(variant="multisample", rates=[0.3, 0.3], multisample_k=2)
    assert config_key(c, TRAIN) != config_key(b, TRAIN)


def test_rdrop_without_kl_is_multisample_with_two_masks():
    a = mc(variant="rdrop", rates=[0.3, 0.3], rdrop_alpha=0.0, multisample_k=8)
    b = mc(variant="multisample", rates=[0.3, 0.3], multisample_k=2)
    assert canonicalize_model(a) == canonicalize_model(b)


def test_momentum_only_matters_to_sgd():
    cfg = mc()
    assert canonicalize_train(TrainConfig(optimizer="adam", momentum=0.5)) == TrainConfig()
    k_sgd = [config_key(cfg, TrainConfig(optimizer="sgd", momentum=m)) for m in (0.5, 0.9)]
    assert k_sgd[0] != k_sgd[1]


def test_key_is_stable_hex_and_seed_is_optional():
    cfg = mc(variant="standard", rates=[0.2, 0.5])
    key = config_key(cfg, TRAIN)
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == config_key(ModelConfig.model_validate(cfg.model_dump(mode="json")), TRAIN)
    s1, s2 = TrainConfig(seed=1), TrainConfig(seed=2)
    assert config_key(cfg, s1) != config_key(cfg, s2)
    assert config_key(cfg, s1, with_seed=False) == config_key(cfg, s2, with_seed=False)
    assert key == config_key(cfg, TRAIN)  # no hidden state between calls


def test_canonical_form_is_a_fixed_point_and_still_valid():
    cfg = mc(variant="dropconnect", rates=[0.0, 0.4], placements=["pre_activation", "input"])
    model, train = canonicalize(cfg, TRAIN)
    assert canonicalize(model, train) == (model, train)
    ModelConfig.model_validate(model.model_dump(mode="json"))


def test_a_space_with_three_canonical_configs_gives_three_keys_over_ten_draws():
    # Spec-like space: variant in {none, standard, rdrop}, rate in {0, 0.5}, rdrop_alpha in
    # {1, 2} (rdrop only), placement in {hidden, input+hidden}. Canonical classes:
    # none (every p = 0 or variant none), standard@0.5, rdrop@0.5 — alpha and the placement's
    # inert input site (input_rate 0) are pinned so that exactly 3 distinct runs remain.
    draws = []
    grid = itertools.product(
        [0.0, 0.5], [["hidden"], ["input", "hidden"]], ["none", "standard", "rdrop"]
    )
    for rate, placements, variant in grid:
        draws.append(mc(variant=variant, rates=[rate, rate], placements=placements, input_rate=0.0))
    draws = draws[:10]
    assert len(draws) == 10
    assert len({d.model_dump_json() for d in draws}) == 10
    keys = {config_key(d, TRAIN) for d in draws}
    assert len(keys) == 3
    assert {canonicalize_model(d).variant for d in draws} == {"none", "standard", "rdrop"}


def _outputs(cfg: ModelConfig, x):
    torch.manual_seed(0)
    model = build_mlp(cfg)
    model.eval()
    eval_out = model(x)
    model.train()
    torch.manual_seed(1)
    return eval_out, model(x)


def test_canonical_configs_build_the_same_network():
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    cases = [
        mc(variant="rdrop", rates=[0.0, 0.0], placements=["hidden", "input"], rdrop_alpha=3.0),
        mc(variant="none", rates=[0.3, 0.5], placements=["input", "last_hidden"], input_rate=0.2),
        mc(variant="standard", rates=[0.7, 0.5], placements=["last_hidden"]),
        mc(variant="gaussian", rates=[0.2, 0.5], placements=["hidden", "last_hidden", "input"]),
        mc(variant="multisample", rates=[0.3, 0.3], multisample_k=1),
        mc(variant="standout", rates=[0.4, 0.1], placements=["pre_activation"]),
        mc(variant="dropconnect", rates=[0.0, 0.4], placements=["pre_activation", "input"]),
    ]
    for cfg in cases:
        for a, b in zip(_outputs(cfg, x), _outputs(canonicalize_model(cfg), x), strict=True):
            assert torch.equal(a, b), cfg


def test_pre_activation_under_relu_is_hidden_for_standard_and_vanilla():
    for variant in ("standard", "vanilla"):
        pre = mc(variant=variant, rates=[0.3, 0.5], placements=["pre_activation", "input"])
        post = mc(variant=variant, rates=[0.3, 0.5], placements=["hidden", "input"])
        assert canonicalize_model(pre) == canonicalize_model(post)
        assert config_key(pre, TRAIN) == config_key(post, TRAIN)
    # Not merged where the networks differ: a non-ReLU activation, a variant whose noise does
    # not commute with ReLU, and two masks on the last layer.
    kept = [
        mc(variant="standard", rates=[0.3, 0.5], placements=["pre_activation"], activation="tanh"),
        mc(variant="gaussian", rates=[0.3, 0.5], placements=["pre_activation"]),
        mc(variant="standard", rates=[0.3, 0.5], placements=["pre_activation", "last_hidden"]),
    ]
    for cfg in kept:
        assert "pre_activation" in canonicalize_model(cfg).placements, cfg


@pytest.mark.slow  # two full trainings (30 s on the loaded 2-core machine)
def test_pre_activation_and_hidden_under_relu_train_bitwise_the_same_network():
    from models.data import load_dataset
    from models.training import train_model

    data = load_dataset("digits", data_dir=".", seed=0)
    train = TrainConfig(epochs=2, batch_size=64)
    for variant in ("standard", "vanilla"):
        small = {"input_dim": data.input_dim, "num_classes": data.num_classes, "hidden": [32]}
        runs = [
            train_model(
                ModelConfig(**small, variant=variant, rates=[0.4], placements=[placement]),
                train,
                data,
                device="cpu",
            )
            for placement in ("pre_activation", "hidden")
        ]
        curves = [[m.as_dict() | {"seconds": 0} for m in r.history] for r in runs]
        assert curves[0] == curves[1], variant
        for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
            assert torch.equal(a, b), variant
