"""build_mlp: every variant × placement builds, and sites land where the docstring says."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from models.config import VARIANTS, ModelConfig
from models.dropout import (
    DropConnectLinear,
    GaussianDropout,
    NoiseLayer,
    StandoutInput,
    StandoutLinear,
)
from models.mlp import build_mlp, count_parameters

PLACEMENT_SETS = [
    ["input"],
    ["hidden"],
    ["pre_activation"],
    ["last_hidden"],
    ["input", "hidden"],
    ["input", "pre_activation", "last_hidden"],
]


def _cfg(variant: str, placements: list[str], **extra) -> ModelConfig:
    base = dict(input_dim=10, num_classes=3, hidden=[16, 8], rates=[0.2, 0.5], input_rate=0.1)
    base.update(extra)
    return ModelConfig(variant=variant, placements=placements, **base)


def _kinds(net) -> list[str]:
    return [type(m).__name__ for m in net.layers]


def test_standard_sites_follow_placements():
    assert _kinds(build_mlp(_cfg("standard", ["hidden"]))) == [
        "Linear", "ReLU", "StandardDropout", "Linear", "ReLU", "StandardDropout", "Linear"
    ]  # fmt: skip
    assert _kinds(build_mlp(_cfg("standard", ["pre_activation"]))) == [
        "Linear", "StandardDropout", "ReLU", "Linear", "StandardDropout", "ReLU", "Linear"
    ]  # fmt: skip
    assert _kinds(build_mlp(_cfg("standard", ["input", "last_hidden"]))) == [
        "StandardDropout", "Linear", "ReLU", "Linear", "ReLU", "StandardDropout", "Linear"
    ]  # fmt: skip
    net = build_mlp(_cfg("gaussian", ["input", "hidden"]))
    rates = [m.p for m in net.layers if isinstance(m, GaussianDropout)]
    assert rates == [0.1, 0.2, 0.5]  # input_rate, then rates[i] per layer


def test_dropconnect_masks_the_linear_that_reads_each_site_and_combines_keep_probabilities():
    def rates(placements):
        net = build_mlp(_cfg("dropconnect", placements))
        assert all(isinstance(m, DropConnectLinear) for m in net.layers if isinstance(m, nn.Linear))
        return [round(m.p, 6) for m in net.layers if isinstance(m, DropConnectLinear)]

    assert rates(["input"]) == [0.1, 0.0, 0.0]
    assert rates(["hidden"]) == [0.0, 0.2, 0.5]
    assert rates(["last_hidden"]) == [0.0, 0.0, 0.5]
    assert rates(["pre_activation"]) == [0.2, 0.5, 0.0]
    # Linear_1 gets the post site of layer 0 (0.2) and the pre site of layer 1 (0.5).
    assert rates(["hidden", "pre_activation"]) == [0.2, round(1 - 0.8 * 0.5, 6), 0.5]


def test_standout_masks_hidden_units_and_uses_the_data_as_drive_at_the_input():
    net = build_mlp(_cfg("standout", ["input", "pre_activation", "last_hidden"]))
    assert isinstance(net.layers[0], StandoutInput)
    first, second = (m for m in net.layers if isinstance(m, StandoutLinear))
    assert (first.mask_before, first.mask_after) == (True, False)
    assert (second.mask_before, second.mask_after) == (True, True)


def test_none_and_zero_rates_build_a_plain_mlp():
    for cfg in (_cfg("none", ["input", "hidden"]), _cfg("standard", ["hidden"], rates=[0, 0])):
        assert _kinds(build_mlp(cfg)) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


@pytest.mark.parametrize(
    "variant,placements", list(itertools.product(VARIANTS, PLACEMENT_SETS)), ids=str
)
def test_every_variant_and_placement_builds_and_is_deterministic_in_eval(variant, placements):
    net = build_mlp(_cfg(variant, placements))
    x = torch.randn(7, 10)
    assert net.train()(x).shape == (7, 3)
    assert net(x, samples=3).shape == (3, 7, 3)
    net.eval()
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(1)
    assert torch.equal(a, net(x))


@pytest.mark.parametrize("variant", ["standard", "vanilla", "rdrop", "standout"])
def test_dropout_before_or_after_relu_gives_identical_networks_with_a_shared_mask(variant):
    after = build_mlp(_cfg(variant, ["hidden"]))
    before = build_mlp(_cfg(variant, ["pre_activation"]))
    before.load_state_dict(after.state_dict())
    x = torch.randn(64, 10)
    for mode in (True, False):
        after.train(mode)
        before.train(mode)
        torch.manual_seed(5)
        out_after = after(x)
        torch.manual_seed(5)
        assert torch.equal(out_after, before(x))


def test_dropout_before_or_after_tanh_differs_so_the_relu_test_is_not_vacuous():
    after = build_mlp(_cfg("vanilla", ["hidden"], activation="tanh"))
    before = build_mlp(_cfg("vanilla", ["pre_activation"], activation="tanh"))
    before.load_state_dict(after.state_dict())
    x = torch.randn(64, 10)
    assert not torch.allclose(after.eval()(x), before.eval()(x))


def test_samples_repeat_the_batch_after_the_deterministic_prefix():
    net = build_mlp(_cfg("multisample", ["last_hidden"])).train()
    assert isinstance(net.layers[4], NoiseLayer) and net.layers[4].p > 0
    rows: list[int] = []
    for layer in net.layers:
        layer.register_forward_hook(lambda _m, inp, _out: rows.append(inp[0].shape[0]))
    out = net(torch.randn(6, 10), samples=4)
    assert rows == [6, 6, 6, 6, 24, 24]  # the trunk runs once, the mask and head on 4 copies
    assert out.shape == (4, 6, 3)
    assert len({tuple(out[k].flatten().tolist()) for k in range(4)}) == 4


def test_count_parameters_counts_trainable_weights_and_biases():
    net = build_mlp(_cfg("standout", ["hidden"]))
    assert count_parameters(net) == (10 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3)
    net.layers[0].weight.requires_grad_(False)
    assert count_parameters(net) == 16 + (16 * 8 + 8) + (8 * 3 + 3)
