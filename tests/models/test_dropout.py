"""Each dropout variant does what its formula says (statistical tests: seed and tolerance stated).

Tolerances are 5 standard errors of the estimator (a false failure about once in 10⁶ runs); each
test would fail with the formula's usual mistakes (no inverted scale, σ² = p, mask on activations).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.dropout import (
    DropConnectLinear,
    DropoutRateError,
    GaussianDropout,
    StandardDropout,
    StandoutInput,
    StandoutLinear,
    VanillaDropout,
    keep_mask,
    validate_rate,
)

N = 1_000_000
P = 0.3


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5", None, True])
def test_validate_rate_rejects_values_outside_zero_to_one_with_a_clear_error(bad):
    with pytest.raises(DropoutRateError, match="dropout rate"):
        validate_rate(bad)


def test_validate_rate_accepts_zero_and_returns_float():
    assert validate_rate(0) == 0.0 and isinstance(validate_rate(0), float)
    assert validate_rate(0.999) == 0.999
    assert issubclass(DropoutRateError, ValueError)


@pytest.mark.parametrize("cls", [StandardDropout, VanillaDropout, GaussianDropout])
def test_rate_zero_is_the_identity_in_train_and_eval(cls):
    x = torch.randn(64, 32)
    layer = cls(0.0)
    assert torch.equal(layer.train()(x), x)
    assert torch.equal(layer.eval()(x), x)


def test_standard_dropout_keeps_the_mean_and_scales_kept_units_by_1_over_1_minus_p():
    torch.manual_seed(0)
    out = StandardDropout(P).train()(torch.ones(N))
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - P)))
    drop_se = math.sqrt(P * (1 - P) / N)
    assert abs((~kept).float().mean().item() - P) < 5 * drop_se
    mean_se = math.sqrt(P / (1 - P) / N)  # std of x·m/(1−p) is sqrt(p/(1−p)) for x = 1
    assert abs(out.mean().item() - 1.0) < 5 * mean_se


def test_vanilla_dropout_scales_by_1_minus_p_at_eval_and_keeps_unscaled_units_in_training():
    x = torch.randn(1000)
    layer = VanillaDropout(P)
    assert torch.equal(layer.eval()(x), x * (1 - P))
    torch.manual_seed(1)
    out = layer.train()(torch.ones(N))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert abs(out.mean().item() - (1 - P)) < 5 * math.sqrt(P * (1 - P) / N)


def test_gaussian_dropout_has_mean_one_and_variance_p_over_1_minus_p():
    torch.manual_seed(2)
    noise = GaussianDropout(P).train()(torch.ones(N))
    var = P / (1 - P)
    assert abs(noise.mean().item() - 1.0) < 5 * math.sqrt(var / N)
    # The sample variance of a normal has standard error σ²·sqrt(2/N).
    assert abs(noise.var().item() - var) < 5 * var * math.sqrt(2 / N)


def test_dropconnect_masks_weights_not_activations():
    torch.manual_seed(3)
    layer = DropConnectLinear(50, 40, P).train()
    x = torch.randn(8, 50)
    torch.manual_seed(4)
    out = layer(x)
    torch.manual_seed(4)
    mask = keep_mask(layer.weight, P)
    assert torch.allclose(out, F.linear(x, layer.weight * mask, layer.bias), atol=1e-6)
    # Activation dropout would zero whole outputs; weight masking leaves (almost) none at zero.
    assert (out == 0).sum() == 0
    out.sum().backward()
    assert torch.all(layer.weight.grad[mask == 0] == 0)
    assert torch.all(layer.weight.grad[mask == 1] != 0)


def test_dropconnect_keeps_the_mean_of_eval_weights_over_a_million_weights():
    layer = DropConnectLinear(1000, 1000, P)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    x = torch.ones(1, 1000)
    assert torch.allclose(layer.eval()(x), torch.full((1, 1000), 1000 * (1 - P)))
    torch.manual_seed(5)
    kept_fraction = layer.train()(x).mean().item() / 1000  # mean of 10⁶ Bernoulli(1−p) weights
    assert abs(kept_fraction - (1 - P)) < 5 * math.sqrt(P * (1 - P) / N)


def test_standout_keep_probability_is_ba_and_frey_tied_over_inputs_and_bias_unit():
    # Ba & Frey (2013), eq. 2: P(m_j = 1 | a) = f(Σ_{i≥0} π_{j,i} a_i), a_0 = 1, π_{j,i} = α·w_{j,i} + β
    # (w_{j,0} = b_j). Written out weight by weight, not through the layer's own formula.
    torch.manual_seed(6)
    alpha, beta = 2.0, 0.05
    layer = StandoutLinear(20, 500, alpha=alpha, beta=beta, activation=None)
    x = torch.randn(1, 20)
    a = torch.cat([torch.ones(1, 1), x], dim=1)  # the bias unit first
    w = torch.cat([layer.bias.detach()[:, None], layer.weight.detach()], dim=1)  # [500, 21]
    pi = alpha * w + beta
    expected = torch.sigmoid(a @ pi.T)
    assert torch.allclose(layer.keep_prob(x), expected, atol=1e-6)
    # The old simplification left the bias out and added β once: a different π.
    assert not torch.allclose(expected, torch.sigmoid(alpha * (x @ layer.weight.T) + beta))
    z = F.linear(x, layer.weight, layer.bias)
    assert torch.allclose(layer.eval()(x), z * expected)
    rows = N // 500
    with torch.no_grad():
        kept = (layer.train()(x.expand(rows, 20)) != 0).float()
    freq = kept.mean(0)
    per_unit_se = (expected[0] * (1 - expected[0]) / rows).sqrt().clamp_min(1e-4)
    assert torch.all((freq - expected[0]).abs() < 6 * per_unit_se)
    overall_se = math.sqrt(0.25 / N)
    assert abs(kept.mean().item() - expected.mean().item()) < 5 * overall_se


def test_standout_input_is_the_tied_form_of_an_identity_layer():
    # W = I, b = 0: Σ_{i≥0} (α·w_{j,i} + β)·a_i = α·x_j + β·(1 + Σ_i x_i).
    x = torch.randn(4, 10)
    layer = StandoutInput(alpha=1.5, beta=-0.5).eval()
    drive = 1.5 * x - 0.5 * (1 + x.sum(1, keepdim=True))
    assert torch.allclose(layer(x), x * torch.sigmoid(drive))


def _all_layers() -> list[nn.Module]:
    return [
        StandardDropout(P),
        VanillaDropout(P),
        GaussianDropout(P),
        DropConnectLinear(16, 16, P),
        StandoutLinear(16, 16, activation=nn.ReLU(), mask_before=True, mask_after=True),
        StandoutInput(),
    ]


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda m: type(m).__name__)
def test_eval_mode_is_deterministic(layer):
    x = torch.randn(32, 16)
    layer.eval()
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(123)
    b = layer(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda m: type(m).__name__)
def test_train_mode_draws_fresh_noise_each_call(layer):
    x = torch.randn(32, 16)
    layer.train()
    assert not torch.equal(layer(x), layer(x))


@pytest.mark.parametrize("cls", [StandardDropout, VanillaDropout])
def test_gradients_flow_only_through_kept_units(cls):
    torch.manual_seed(7)
    x = torch.randn(1000, 100, requires_grad=True)
    out = cls(P).train()(x)
    out.sum().backward()
    kept = out != 0
    scale = 1 / (1 - P) if cls is StandardDropout else 1.0
    assert torch.all(x.grad[~kept] == 0)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], scale))


def test_standout_gradients_flow_only_through_kept_units():
    torch.manual_seed(8)
    layer = StandoutLinear(10, 200, activation=None).train()
    h = torch.randn(50, 10, requires_grad=True)
    out = layer(h)
    mask = (out != 0).float()
    out.retain_grad()
    out.sum().backward()
    # d out / d W_j = mask_j · x: dropped units contribute nothing to their weight row.
    assert torch.allclose(layer.weight.grad, mask.T @ h.detach(), atol=1e-4)


def test_dropout_before_or_after_relu_is_the_same_function_with_a_shared_mask():
    x = torch.randn(500, 64)
    for layer in (StandardDropout(0.5), VanillaDropout(0.5)):
        torch.manual_seed(9)
        after = layer.train()(torch.relu(x))
        torch.manual_seed(9)
        before = torch.relu(layer(x))
        assert torch.equal(after, before)
        assert torch.equal(layer.eval()(torch.relu(x)), torch.relu(layer(x)))
