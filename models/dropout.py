"""Dropout layers of one network: the registry's noise functions (models/variants.py) as modules.

Every random draw goes through torch's own generator (`uniform_`, `normal_`, `bernoulli`), so
`torch.manual_seed(train_cfg.seed)` makes a whole trial reproducible; no module keeps random
state of its own. In eval mode every module is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from models.dropconnect import dropconnect_linear
from models.variants import (
    Noise,
    dropout_variant,
    gaussian_noise,
    keep_mask,
    standard_noise,
    standout_keep_prob,
    standout_mask,
    vanilla_noise,
)

__all__ = [
    "ChannelNoiseLayer",
    "DropConnectLinear",
    "DropoutRateError",
    "GaussianDropout",
    "NoiseLayer",
    "StandardDropout",
    "StandoutInput",
    "StandoutLinear",
    "VanillaDropout",
    "keep_mask",
    "noise_module",
    "standout_keep_prob",
    "standout_mask",
    "validate_rate",
]


class DropoutRateError(ValueError):
    """A dropout rate outside 0 <= p < 1 (or not a number)."""


def validate_rate(p: float) -> float:
    """Return `p` as a float when 0 <= p < 1; p = 0 means the layer is the identity.

    p = 1 is rejected: it drops every unit, and the inverted scale 1/(1−p) is undefined.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise DropoutRateError(f"dropout rate must be a number, got {type(p).__name__} {p!r}")
    p = float(p)
    if math.isnan(p) or not 0.0 <= p < 1.0:
        raise DropoutRateError(
            f"dropout rate {p} is out of range: use 0 <= p < 1 (p is the probability of dropping "
            "a unit; 0 disables dropout)"
        )
    return p


class _RateModule(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = validate_rate(p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class NoiseLayer(_RateModule):
    """A site's noise in one network: a registry noise function at rate p, torch's global stream.

    p = 0 is the identity in both modes (no draw, no scale).
    """

    def __init__(self, noise: Noise, p: float, knobs: Mapping[str, float] | None = None) -> None:
        super().__init__(p)
        self.noise = noise
        self.knobs = dict(knobs or {})

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0:
            return x
        return self.noise(x, self.p, self.training, None, self.knobs)

    def extra_repr(self) -> str:
        named = type(self) is not NoiseLayer
        return super().extra_repr() if named else f"{self.noise.__name__}, {super().extra_repr()}"


class ChannelNoiseLayer(NoiseLayer):
    """A registry noise function on whole feature maps: one draw per (example, channel).

    Tompson et al. (2015), SpatialDropout (torch's `Dropout2d` rule): neighbouring pixels of one
    map are strongly correlated, so element-wise noise barely regularises a conv layer; dropping
    the whole map does. The variant's own scaling holds: the noise function runs on a tensor of
    ones shaped (B, C, 1, …), giving each map its multiplier (train m/(1−p) for `standard`, m for
    `vanilla`, ε for `gaussian`; eval 1 or 1−p), which then scales the map.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0:
            return x
        per_map = x.new_ones((*x.shape[:2], *(1,) * (x.dim() - 2)))
        return x * self.noise(per_map, self.p, self.training, None, self.knobs)

    def extra_repr(self) -> str:
        return f"{self.noise.__name__}, p={self.p}, per channel"


class StandardDropout(NoiseLayer):
    """Inverted dropout (`models.variants.standard_noise`): train x·m/(1−p); eval x."""

    def __init__(self, p: float) -> None:
        super().__init__(standard_noise, p)


class VanillaDropout(NoiseLayer):
    """Dropout scaled at test time (`models.variants.vanilla_noise`): train x·m; eval x·(1−p)."""

    def __init__(self, p: float) -> None:
        super().__init__(vanilla_noise, p)


class GaussianDropout(NoiseLayer):
    """Gaussian noise (`models.variants.gaussian_noise`): train x·ε, ε ~ N(1, p/(1−p)); eval x."""

    def __init__(self, p: float) -> None:
        super().__init__(gaussian_noise, p)


class DropConnectLinear(nn.Linear):
    """A Linear (and the activation after it) whose weights are masked: DropConnect.

    Train: act((W ⊙ M_e)x_e + b) with a mask M_e ~ Bernoulli(1−p) per example (Wan et al. 2013);
    eval: the paper's Gaussian moment-matching inference over `samples` draws per unit, or
    act(W·(1−p)x + b) with `samples` = 0 (`models.dropconnect`, which a stack uses too). The
    bias is never masked. The activation lives in the layer: the inference averages act(u) over
    samples of the pre-activation u, so it cannot follow as a layer of its own.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        p: float,
        *,
        samples: int = 0,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=True)
        self.p = validate_rate(p)
        self.samples = int(samples)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0:
            out = super().forward(x)
            return out if self.activation is None else self.activation(out)
        return dropconnect_linear(
            x,
            # [in, out] contiguous, as a stack's: masking and bmm run 1.7× faster than on the
            # transposed view (8.2 vs 14.4 ms for a 128×128 layer at batch 64, one thread).
            self.weight.T.contiguous(),
            self.bias,
            self.p,
            training=self.training,
            samples=self.samples,
            act=self.activation,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, samples={self.samples}"


class StandoutLinear(nn.Linear):
    """Linear + activation whose units are kept with Ba & Frey's tied standout probability.

    π = sigmoid(α·z + β·(1 + Σᵢ xᵢ)), z = Wx + b: the standout network's weights are
    α·w + β over the inputs and the bias unit (`models.variants.standout_keep_prob`). Train:
    m ~ Bernoulli(π); eval: the mask is replaced by π. `mask_before` / `mask_after` put the mask
    on the pre-activation z and/or on the activation's output; with neither the layer is a plain
    Linear + activation.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        alpha: float = 1.0,
        beta: float = 0.0,
        activation: nn.Module | None = None,
        mask_before: bool = False,
        mask_after: bool = True,
    ) -> None:
        super().__init__(in_features, out_features, bias=True)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.activation = activation if activation is not None else nn.Identity()
        self.mask_before = mask_before
        self.mask_after = mask_after

    def keep_prob(self, x: Tensor) -> Tensor:
        """π for the input `x`."""
        return standout_keep_prob(F.linear(x, self.weight, self.bias), x, self.alpha, self.beta)

    def forward(self, x: Tensor) -> Tensor:
        z = F.linear(x, self.weight, self.bias)
        if not (self.mask_before or self.mask_after):
            return self.activation(z)
        keep = standout_keep_prob(z, x, self.alpha, self.beta)
        if self.mask_before:
            z = standout_mask(z, keep, self.training)
        h = self.activation(z)
        if self.mask_after:
            h = standout_mask(h, keep, self.training)
        return h

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, alpha={self.alpha}, beta={self.beta}, "
            f"mask_before={self.mask_before}, mask_after={self.mask_after}"
        )


class StandoutInput(nn.Module):
    """Standout on the data: the input is the output of an identity layer (W = I, b = 0).

    The tied form then gives π = sigmoid(α·x + β·(1 + Σᵢ xᵢ)); train x·m with m ~ Bernoulli(π);
    eval x·π.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.0) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        keep = standout_keep_prob(x, x, self.alpha, self.beta)
        return standout_mask(x, keep, self.training)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"


# The named layer of a registry noise function, so `print(net)` says what each site does.
_NAMED_LAYERS: dict[Noise, Callable[[float], NoiseLayer]] = {
    standard_noise: StandardDropout,
    vanilla_noise: VanillaDropout,
    gaussian_noise: GaussianDropout,
}


def noise_module(
    variant: str, p: float, knobs: Mapping[str, float] | None = None, *, channel: bool = False
) -> nn.Module:
    """The activation-noise layer of `variant` at rate p (identity when p = 0 or no noise);
    `channel`: on whole feature maps (`ChannelNoiseLayer`)."""
    p = validate_rate(p)
    entry = dropout_variant(variant)
    if not entry.noisy or p == 0.0:
        return nn.Identity()
    if entry.acts_on != "activations" or entry.noise is None:
        raise ValueError(f"variant {variant!r} does not act on activations")
    if channel:
        return ChannelNoiseLayer(entry.noise, p, knobs)
    if entry.noise in _NAMED_LAYERS:  # these read no knobs
        return _NAMED_LAYERS[entry.noise](p)
    return NoiseLayer(entry.noise, p, knobs)
