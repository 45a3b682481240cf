"""Regularisation diagnostics: calibration against hand-computed values, MC dropout, discrepancy."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from models.config import ModelConfig
from models.diagnostics import (
    dropout_sampling,
    expected_calibration_error,
    inference_ms_per_1k,
    negative_log_likelihood,
    regularisation_diagnostics,
)
from models.mlp import build_mlp

PROBS = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]], dtype=torch.float64)
TARGETS = torch.tensor([0, 1, 1, 0])  # confidences .9 .8 .7 .55; correct 1 0 1 0


def data(n: int = 256, dim: int = 16, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randint(0, classes, (n,), generator=g)


def net(variant: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=16, num_classes=4, hidden=[32, 32], variant=variant, **kw)
    return build_mlp(cfg)


def test_ece_matches_hand_computed_values_for_stated_bins():
    # 10 bins: every example alone in its bin -> mean |correct - conf|.
    assert expected_calibration_error(PROBS, TARGETS, 10) == pytest.approx(
        (0.1 + 0.8 + 0.3 + 0.55) / 4, abs=1e-12
    )
    # 2 bins: all in (0.5, 1] -> |acc 0.5 - mean conf 0.7375|.
    assert expected_calibration_error(PROBS, TARGETS, 2) == pytest.approx(0.2375, abs=1e-12)


def test_ece_bins_are_closed_on_the_right():
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    targets = torch.tensor([0, 0])  # first: conf 0.5, correct (argmax ties go to 0); second wrong
    # 0.5 falls in (0, 0.5], 0.75 in (0.5, 1]: (|1 - .5| + |0 - .75|) / 2; together would be .125.
    assert expected_calibration_error(probs, targets, 2) == pytest.approx(0.625, abs=1e-12)


def test_nll_matches_hand_computed_value_on_fixed_logits():
    logits = PROBS.log() + 3.0  # softmax is shift-invariant
    expected = -(math.log(0.9) + math.log(0.2) + math.log(0.7) + math.log(0.45)) / 4
    assert negative_log_likelihood(logits, TARGETS) == pytest.approx(expected, abs=1e-12)


def test_none_has_zero_discrepancy_and_mc_equals_eval():
    x, y = data()
    d = regularisation_diagnostics(net("none"), x, y, mc_passes=4, seed=0, timing_repeats=1)
    assert d["stochastic_layers"] == 0
    assert d["train_eval_sym_kl"] == 0.0 and d["train_eval_tv"] == 0.0
    assert d["mc_acc"] == d["eval_acc"]
    assert d["mc_nll"] == pytest.approx(d["val_nll"], abs=1e-12)
    assert d["mc_ece"] == pytest.approx(d["val_ece"], abs=1e-12)


@pytest.mark.parametrize(
    "variant",
    ["standard", "vanilla", "gaussian", "dropconnect", "standout", "rdrop", "multisample"],
)
def test_mc_dropout_differs_from_eval_for_every_stochastic_variant(variant):
    x, y = data()
    model = net(variant, rates=[0.5, 0.5])
    d = regularisation_diagnostics(model, x, y, mc_passes=4, seed=0, timing_repeats=1)
    assert d["stochastic_layers"] >= 1
    assert d["train_eval_tv"] > 1e-3 and d["train_eval_sym_kl"] > 1e-6
    assert d["mc_nll"] != pytest.approx(d["val_nll"], abs=1e-6)
    json.dumps(d, allow_nan=False)
    assert all(math.isfinite(v) for v in d.values())


def test_only_dropout_layers_sample_and_modes_are_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5))
    model.append(nn.Linear(32, 4))
    model.train()
    stats = model[1].running_mean.clone()
    x, y = data()
    with dropout_sampling(model) as n:
        assert n == 1
        assert [m.training for m in model] == [False, False, False, True, False]
    assert all(m.training for m in model.modules())
    d = regularisation_diagnostics(model, x, y, mc_passes=3, seed=0, timing_repeats=1)
    assert torch.equal(model[1].running_mean, stats)  # BatchNorm stayed in eval mode
    assert d["train_eval_tv"] > 1e-3
    assert all(m.training for m in model.modules())


def test_masks_come_from_the_seed_and_leave_the_callers_rng_alone():
    x, y = data()
    model = net("standard", rates=[0.5, 0.5])
    torch.manual_seed(123)
    a = regularisation_diagnostics(model, x, y, mc_passes=3, seed=7, timing_repeats=1)
    after = torch.rand(3)
    b = regularisation_diagnostics(model, x, y, mc_passes=3, seed=7, timing_repeats=1)
    c = regularisation_diagnostics(model, x, y, mc_passes=3, seed=8, timing_repeats=1)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)
    for key in ("mc_acc", "mc_nll", "mc_ece", "train_eval_sym_kl", "train_eval_tv"):
        assert a[key] == b[key]
    assert a["mc_nll"] != c["mc_nll"]


def test_inference_cost_is_positive_ms_per_1k():
    x, _ = data(n=500)
    ms = inference_ms_per_1k(net("standard", rates=[0.5, 0.5]), x, warmup=1, repeats=3)
    assert 0.0 < ms < 10_000.0
