"""The MLP builder: width, depth, activation, dropout variant and placement from a `ModelConfig`.

A network with hidden layers 0..L−1 and a head is a flat sequence of modules::

    [input site] → Linear_0 → [pre site 0] → act → [post site 0] → … → Linear_L (head)

Placements name sites: `input` (the data), `pre_activation` (the pre site of every hidden layer),
`hidden` (the post site of every hidden layer: the classic), `last_hidden` (only the post site of
layer L−1, just before the head). A list of placements is the union of their sites. Rates:
`input_rate` at the input site, `rates[i]` at both sites of layer i.

How a variant maps onto sites follows where its noise acts (`acts_on` in models/variants.py):

- `activations` (`standard`, `vanilla`, `gaussian`, `rdrop`, `multisample`): a noise layer at
  each site (`rdrop` and `multisample` use inverted dropout; their difference is the objective).
- `weights` (`dropconnect`): no noise layer; a site masks the weights of a Linear instead. A
  site sits on the input of the Linear that reads it (input site → Linear_0, post site i →
  Linear_{i+1}, so `last_hidden` → the head) except the pre site i, which masks Linear_i, the
  layer that makes the pre-activation. Dropping unit j of a layer's input is dropping column j
  of its weights; DropConnect drops single weights instead, a mask per example
  (`models.dropconnect`). Two sites on one Linear combine their keep probabilities:
  p = 1 − (1−p₁)(1−p₂).
- `units` (`standout`): a pre or post site of layer i makes Linear_i a `StandoutLinear` that
  masks z_i (pre) and/or act(z_i) (post) with π = sigmoid(α·z_i + β·(1 + Σ h)), Ba & Frey's
  tied standout network; the input site is an identity layer (z = x). Standout takes no rate:
  π is the rate.
- `nothing` (`none`): every site is the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.activations import ACTIVATIONS
from models.config import ModelConfig
from models.dropout import (
    DropConnectLinear,
    StandoutInput,
    StandoutLinear,
    noise_module,
    validate_rate,
)
from models.variants import dropout_variant


def _is_stochastic(module: nn.Module) -> bool:
    if isinstance(module, StandoutLinear):
        return module.mask_before or module.mask_after
    if isinstance(module, StandoutInput):
        return True
    return getattr(module, "p", 0.0) > 0.0


class DropoutMLP(nn.Module):
    """An MLP as a flat list of layers; `forward(x, samples=K)` draws K dropout masks at once."""

    def __init__(self, layers: list[nn.Module], num_classes: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.num_classes = num_classes
        stochastic = [i for i, m in enumerate(self.layers) if _is_stochastic(m)]
        self._first_stochastic = stochastic[0] if stochastic else len(self.layers)
        # DropConnect's masks are per example only up to its memory budget (models/dropconnect.py):
        # K copies of a big batch in one call could share some, so they get a call each.
        self._per_call_masks = any(
            isinstance(self.layers[i], DropConnectLinear) for i in stochastic
        )

    def forward(self, x: Tensor, samples: int = 1) -> Tensor:
        """Logits (B, C); with samples = K > 1, logits (K, B, C) under K independent masks.

        The layers before the first stochastic one run once; from there the batch is repeated K
        times, so K masks cost one wider pass instead of K passes (Multi-Sample dropout's trick).
        """
        if samples == 1:
            for layer in self.layers:
                x = layer(x)
            return x
        if self._per_call_masks:
            return torch.stack([self.forward(x) for _ in range(samples)])
        batch = x.shape[0]
        for i, layer in enumerate(self.layers):
            if i == self._first_stochastic:
                x = x.repeat(samples, 1)
            x = layer(x)
        if self._first_stochastic == len(self.layers):
            x = x.repeat(samples, 1)
        return x.view(samples, batch, -1)


def dropout_sites(cfg: ModelConfig) -> tuple[bool, list[bool], list[bool]]:
    """(input site on, pre site on per layer, post site on per layer)."""
    depth = len(cfg.hidden)
    placements = set(cfg.placements)
    pre = ["pre_activation" in placements] * depth
    post = ["hidden" in placements] * depth
    if "last_hidden" in placements:
        post[-1] = True
    return "input" in placements, pre, post


def dropconnect_rates(cfg: ModelConfig, rates: list[float]) -> list[float]:
    """The weight-drop rate of Linear_0 … Linear_L (the head) under DropConnect."""
    use_input, pre, post = dropout_sites(cfg)
    keep = [1.0] * (len(cfg.hidden) + 1)
    if use_input:
        keep[0] *= 1.0 - cfg.input_rate
    for i, rate in enumerate(rates):
        if pre[i]:
            keep[i] *= 1.0 - rate
        if post[i]:
            keep[i + 1] *= 1.0 - rate
    return [1.0 - k for k in keep]


def build_mlp(cfg: ModelConfig) -> DropoutMLP:
    """Build the network `cfg` describes (see the module docstring for the site mapping)."""
    rates = [validate_rate(p) for p in cfg.layer_rates()]
    validate_rate(cfg.input_rate)
    use_input, pre, post = dropout_sites(cfg)
    widths = [cfg.input_dim, *cfg.hidden]
    act = ACTIVATIONS[cfg.activation]
    variant = dropout_variant(cfg.variant)
    knobs = cfg.variant_knobs()
    layers: list[nn.Module] = []

    if variant.acts_on == "weights":
        weight_rates = dropconnect_rates(cfg, rates)
        dims = [*widths, cfg.num_classes]
        for i in range(len(dims) - 1):
            layer_act = act() if i < len(cfg.hidden) else None
            layers.append(
                DropConnectLinear(
                    dims[i],
                    dims[i + 1],
                    weight_rates[i],
                    samples=cfg.dropconnect_samples,
                    activation=layer_act,
                )
            )
        return DropoutMLP(layers, cfg.num_classes)

    if variant.acts_on == "units":
        if use_input:
            layers.append(StandoutInput(cfg.standout_alpha, cfg.standout_beta))
        for i in range(len(cfg.hidden)):
            layers.append(
                StandoutLinear(
                    widths[i],
                    widths[i + 1],
                    alpha=cfg.standout_alpha,
                    beta=cfg.standout_beta,
                    activation=act(),
                    mask_before=pre[i],
                    mask_after=post[i],
                )
            )
        layers.append(nn.Linear(widths[-1], cfg.num_classes))
        return DropoutMLP(layers, cfg.num_classes)

    noisy = variant.noisy

    def noise(p: float) -> nn.Module:
        return noise_module(variant.name, p, knobs)

    if noisy and use_input and cfg.input_rate > 0.0:
        layers.append(noise(cfg.input_rate))
    for i, rate in enumerate(rates):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if noisy and pre[i] and rate > 0.0:
            layers.append(noise(rate))
        layers.append(act())
        if noisy and post[i] and rate > 0.0:
            layers.append(noise(rate))
    layers.append(nn.Linear(widths[-1], cfg.num_classes))
    return DropoutMLP(layers, cfg.num_classes)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
