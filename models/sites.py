"""The sites object: what one trial put at each named dropout site of its family's network.

A family's `build` asks `Sites` for every site it has, in forward order:

- `sites.dropout(name, layer=i)` — the activation noise the trial chose there (an
  `nn.Identity` when the site is off, its rate is 0, or the variant is carried by a Linear);
- `sites.linear(n_in, n_out, activation=..., reads=name, makes=name)` — a Linear (and its
  activation) that carries DropConnect when the site it `reads` is on (Wan et al. mask the
  weights that read the dropped units) and Standout when the site it `makes` is on (Ba & Frey
  mask the layer's own units); a plain Linear otherwise.

Rates: `input` reads `input_rate`; another site of depth unit i reads `rates[i]`, one without a
unit `rates[-1]`. At `map` sites activation noise drops elements or, with `conv_form: channel`,
whole feature maps (`models.dropout.ChannelNoiseLayer`). The modules are the variants' own
(`models.dropout`): a family never imports a variant.

`FamilyNet` wraps the family's network: it reshapes the flat batch to the family's input shape
and gives it `forward(x, samples=K)`, the K masks that R-Dropout (K = 2) and Multi-Sample read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.config import ModelConfig, refusal
from models.dropout import (
    DropConnectLinear,
    StandoutInput,
    StandoutLinear,
    noise_module,
    validate_rate,
)
from models.families import FamilyError, ModelFamily
from models.variants import dropout_variant

Names = str | Sequence[str]


def _names(names: Names | None) -> tuple[str, ...]:
    if names is None:
        return ()
    return (names,) if isinstance(names, str) else tuple(names)


class Stochastic(nn.Module):
    """A site's noise module, marked so `FamilyNet` can repeat the batch just before it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x)


class Sites:
    """The modules one `ModelConfig` puts at its family's named sites (see the module doc)."""

    def __init__(self, cfg: ModelConfig, family: ModelFamily) -> None:
        self.cfg = cfg
        self.family = family
        self.variant = dropout_variant(cfg.variant)
        self.knobs = cfg.variant_knobs()
        self._on = set(cfg.placements)
        self._rates = [validate_rate(p) for p in cfg.layer_rates()]
        self._input_rate = validate_rate(cfg.input_rate)
        # Sites whose Standout mask a Linear already carries (`makes`): their `dropout` is identity.
        self._carried: set[str] = set()

    def _live(self, names: tuple[str, ...]) -> list[str]:
        for name in names:
            self.family.site(name)  # a typo in a plugin's site name fails its first build
        return [n for n in names if n in self._on]

    def rate(self, name: str, layer: int | None = None) -> float:
        """The rate the trial gave site `name` (of depth unit `layer`)."""
        if name == "input":
            return self._input_rate
        if layer is None or not self._rates:
            return self._rates[-1] if self._rates else 0.0
        return self._rates[layer]

    def dropout(self, names: Names, layer: int | None = None) -> nn.Module:
        """The noise at site `names` (several names: one place the family gives two names, as
        `hidden` and `last_hidden` after a last hidden layer; on when any of them is)."""
        live = self._live(_names(names))
        acts_on = self.variant.acts_on
        if not live or acts_on in ("nothing", "weights"):
            return nn.Identity()
        site = self.family.site(live[0])
        if acts_on == "units":
            if site.kind != "fc":
                raise FamilyError(refusal(self.family.name, site.name, self.variant.name))
            if self._carried & set(live):
                self._carried -= set(live)
                return nn.Identity()
            # No Linear makes these units: Standout's tied form of an identity layer (π from x).
            return Stochastic(StandoutInput(self.cfg.standout_alpha, self.cfg.standout_beta))
        p = self.rate(live[0], layer)
        if p == 0.0:
            return nn.Identity()
        channel = site.kind == "map" and self.cfg.conv_form == "channel"
        return Stochastic(noise_module(self.variant.name, p, self.knobs, channel=channel))

    def linear(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: nn.Module | None = None,
        reads: Names | None = None,
        makes: Names | None = None,
        layer: int | None = None,
    ) -> nn.Module:
        """Linear + `activation` (None: no activation, e.g. the head), carrying DropConnect when
        a site it `reads` is on, Standout when a site it `makes` is on (`layer`: its unit)."""
        acts_on = self.variant.acts_on
        read = self._live(_names(reads))
        made = self._live(_names(makes))
        if acts_on == "weights" and read and self.rate(read[0], layer) > 0.0:
            return DropConnectLinear(
                in_features,
                out_features,
                self.rate(read[0], layer),
                samples=self.cfg.dropconnect_samples,
                activation=activation,
            )
        if acts_on == "units" and made:
            self._carried |= set(made)
            return Stochastic(
                StandoutLinear(
                    in_features,
                    out_features,
                    alpha=self.cfg.standout_alpha,
                    beta=self.cfg.standout_beta,
                    activation=activation,
                    mask_before=False,
                    mask_after=True,
                )
            )
        linear = nn.Linear(in_features, out_features)
        return linear if activation is None else nn.Sequential(linear, activation)


def _is_stochastic(module: nn.Module) -> bool:
    return isinstance(module, Stochastic) or (
        isinstance(module, DropConnectLinear) and module.p > 0.0
    )


class FamilyNet(nn.Module):
    """A family's network behind one interface: flat (B, D) in, logits out; `samples=K` → (K, B, C).

    K masks: when the body is an `nn.Sequential`, the layers before its first stochastic one run
    once and the batch is repeated K times from there (Multi-Sample dropout's shared trunk, as
    `models.mlp.DropoutMLP` does); any other body runs on the batch repeated K times (a plugin's
    residual branch could not add a repeated batch to an unrepeated one). DropConnect draws a
    mask per call up to its budget, so it gets K calls.
    """

    def __init__(self, body: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        stochastic = [m for m in body.modules() if _is_stochastic(m)]
        self._per_call_masks = any(isinstance(m, DropConnectLinear) for m in stochastic)
        self._trunk = 0
        if isinstance(body, nn.Sequential):
            marks = [i for i, m in enumerate(body) if any(map(_is_stochastic, m.modules()))]
            self._trunk = marks[0] if marks else len(body)

    def forward(self, x: Tensor, samples: int = 1) -> Tensor:
        batch = x.shape[0]
        x = x.reshape(batch, *self.input_shape)
        if samples == 1:
            return self.body(x)
        if self._per_call_masks:
            return torch.stack([self.body(x) for _ in range(samples)])
        layers = list(self.body) if isinstance(self.body, nn.Sequential) else [self.body]
        for layer in layers[: self._trunk]:
            x = layer(x)
        x = x.repeat(samples, *(1,) * (x.dim() - 1))
        for layer in layers[self._trunk :]:
            x = layer(x)
        return x.view(samples, batch, -1)


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network `cfg` describes, `forward(x, samples=1)` on flat (B, D) batches.

    `mlp` is `models.mlp.build_mlp`'s, unchanged; any other family's is its `build` behind the
    sites object, in a `FamilyNet`.
    """
    from models.families import model_family
    from models.mlp import build_mlp

    if cfg.family == "mlp":
        return build_mlp(cfg)
    family = model_family(cfg.family)
    if family.build is None:
        raise FamilyError(f"model family {family.name!r} has no build function")
    values = family.values(cfg.hidden, cfg.arch)
    body = family.build(values, cfg.shape(), cfg.num_classes, Sites(cfg, family))
    return FamilyNet(body, cfg.shape(), cfg.num_classes)
