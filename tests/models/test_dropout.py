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

from models.dropconnect import keep_bits
from models.dropout import (
    DropConnectLinear,
    DropoutRateError,
    GaussianDropout,
    StandardDropout,
    StandoutInput,
    StandoutLinear,
    VanillaDropout,
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
    # Srivastava et al. (2014), §4, eq. for r_j ~ Bernoulli(1 − p), ỹ = r ⊙ y, with the test-time
    # scaling of §2 (Figure 2) moved into training: the "inverted" form of the cs231n seed.
    torch.manual_seed(0)
    out = StandardDropout(P).train()(torch.ones(N))
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - P)))
    drop_se = math.sqrt(P * (1 - P) / N)
    assert abs((~kept).float().mean().item() - P) < 5 * drop_se
    mean_se = math.sqrt(P / (1 - P) / N)  # std of x·m/(1−p) is sqrt(p/(1−p)) for x = 1
    assert abs(out.mean().item() - 1.0) < 5 * mean_se


def test_vanilla_dropout_scales_by_1_minus_p_at_eval_and_keeps_unscaled_units_in_training():
    # Srivastava et al. (2014), §2 and Figure 2: units kept with probability 1 − p in training,
    # outgoing weights multiplied by 1 − p at test (W_test = (1 − p)·W).
    x = torch.randn(1000)
    layer = VanillaDropout(P)
    assert torch.equal(layer.eval()(x), x * (1 - P))
    torch.manual_seed(1)
    out = layer.train()(torch.ones(N))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert abs(out.mean().item() - (1 - P)) < 5 * math.sqrt(P * (1 - P) / N)


def test_gaussian_dropout_has_mean_one_and_variance_p_over_1_minus_p():
    # Srivastava et al. (2014), §10 (multiplicative Gaussian noise): r ~ N(1, σ²) with
    # σ² = (1 − q)/q for keep probability q, i.e. p/(1 − p) for the rate p.
    torch.manual_seed(2)
    noise = GaussianDropout(P).train()(torch.ones(N))
    var = P / (1 - P)
    assert abs(noise.mean().item() - 1.0) < 5 * math.sqrt(var / N)
    # The sample variance of a normal has standard error σ²·sqrt(2/N).
    assert abs(noise.var().item() - var) < 5 * var * math.sqrt(2 / N)


def test_dropconnect_draws_a_weight_mask_per_example():
    # Wan et al. (2013), §2, eq. 2: r_e = a((M_e ⊙ W) v_e), an independent mask M_e per example.
    torch.manual_seed(3)
    layer = DropConnectLinear(50, 40, P).train()
    x = torch.randn(8, 50)
    torch.manual_seed(4)
    out = layer(x)
    torch.manual_seed(4)
    masks = keep_bits((8, 50, 40), P, None, x.device).float()  # [example, in, out]
    expected = torch.einsum("ei,eio->eo", x, layer.weight.T * masks) + layer.bias
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.equal(masks[0], masks[1])
    # Activation dropout would zero whole outputs; weight masking leaves (almost) none at zero.
    assert (out == 0).sum() == 0
    out.sum().backward()
    # dL/dW_{o,i} = Σ_e M_e[i, o]·x_e[i]: a weight dropped for every example gets no gradient.
    assert torch.allclose(layer.weight.grad, torch.einsum("ei,eio->oi", x, masks), atol=1e-5)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropconnect_keep_bits_are_bernoulli_one_minus_p(p):
    # 16 bits per mask element: the keep rate is 1 − round(p·2¹⁶)/2¹⁶, within 2⁻¹⁷ of 1 − p; over
    # 10⁶ draws the kept fraction is within 5 standard errors of it (seed 8).
    kept = keep_bits((1000, 1000), p, torch.Generator().manual_seed(8), torch.device("cpu"))
    se = math.sqrt(p * (1 - p) / N)
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * se + 2**-17
    if p == 0.0:
        assert kept.all()


def test_dropconnect_masks_stay_within_their_memory_budget(monkeypatch):
    import models.dropconnect

    # A budget of 3 masks of 50×40: 8 examples share them in groups of 3, 3 and 2.
    monkeypatch.setattr(models.dropconnect, "MASK_BUDGET", 3 * 50 * 40)
    layer = DropConnectLinear(50, 40, P).train()
    rows = layer(torch.randn(1, 50).expand(8, 50))  # one input: examples differ by mask only
    same = [torch.allclose(rows[i], rows[j], atol=1e-5) for i, j in [(0, 2), (3, 5), (6, 7)]]
    apart = [torch.allclose(rows[i], rows[j], atol=1e-2) for i, j in [(2, 3), (5, 6)]]
    assert all(same) and not any(apart)


def test_dropconnect_inference_moment_matches_a_gaussian_and_averages_the_activation():
    # Wan et al. (2013), Algorithm 2: u ~ N(μ, σ²), μ = (1−p)·Wv, σ² = p(1−p)·(W⊙W)(v⊙v),
    # r = (1/Z)·Σ_z a(u_z). For a = ReLU, E[a(u)] = μΦ(μ/σ) + σφ(μ/σ) exactly.
    torch.manual_seed(10)
    z = 20_000
    layer = DropConnectLinear(30, 20, P, samples=z, activation=nn.ReLU())
    x = torch.randn(4, 30)
    with torch.no_grad():
        out = layer.eval()(x)
        w, b = layer.weight.T, layer.bias
        mu = x @ (w * (1 - P)) + b
        sigma = ((x * x) @ (w * w) * (P * (1 - P))).sqrt()
    normal = torch.distributions.Normal(0.0, 1.0)
    exact = mu * normal.cdf(mu / sigma) + sigma * normal.log_prob(mu / sigma).exp()
    # Z = 20000 samples: the mean's standard error is ≤ σ/√Z; 6 of them bound the error.
    assert torch.all((out - exact).abs() < 6 * sigma / math.sqrt(z))
    assert torch.equal(out, layer(x))  # deterministic: its own fixed-seed stream
    cheap = DropConnectLinear(30, 20, P, activation=nn.ReLU()).eval()
    cheap.load_state_dict(layer.state_dict())
    assert torch.allclose(cheap(x), torch.relu(mu))  # Z = 0: the W·(1−p) rule


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
    # Ba & Frey (2013), eq. 2: P(m_j = 1 | a) = f(Σ_{i≥0} π_{j,i} a_i), a_0 = 1 (eq. 1), tied
    # π_{j,i} = α·w_{j,i} + β (w_{j,0} = b_j). Written out weight by weight, not through the
    # layer's own formula.
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
