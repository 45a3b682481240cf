"""Canonical configurations: one form per function trained, so equal runs are found and reused.

Two configs are the same run when they train the same distribution of networks: a rate of 0 is
no dropout at that site, a variant's own knobs mean nothing to another variant, and the `none`
variant has no rates, placements or knobs at all. `canonicalize` maps a pair onto one
representative; `config_key` hashes that representative for dedupe (with the seed: the same run)
and for grouping replicates (without it: the same configuration).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from models.config import PLACEMENTS, VARIANTS, ModelConfig, TrainConfig
from models.families import model_family
from models.variants import KNOBS, dropout_variant

_PER_LAYER = ("hidden", "pre_activation")
# Variants whose noise is x·m·c with a mask m ≥ 0 and c > 0 (train) and x·c (eval): ReLU
# commutes with it exactly (relu(x·m·c) = relu(x)·m·c, the same draws in the same order), so
# under ReLU their `pre_activation` site trains bitwise the network their `hidden` site does.
_COMMUTES_WITH_RELU = ("standard", "vanilla")


def _default(model: type[ModelConfig] | type[TrainConfig], field: str) -> Any:
    return model.model_fields[field].get_default(call_default_factory=True)


def _zero(x: float) -> float:
    # -0.0 and 0.0 are the same rate but hash differently once serialised.
    return 0.0 if x == 0 else float(x)


def _live_placements(cfg: ModelConfig, rates: list[float]) -> list[str]:
    """Placements that put noise somewhere, in PLACEMENTS order, without repeats."""
    named = [p for p in PLACEMENTS if p in cfg.placements]
    if "hidden" in named and "last_hidden" in named:
        # `hidden`'s sites already include the one `last_hidden` names (models/mlp.py).
        named.remove("last_hidden")
    named = _pre_activation_as_hidden(cfg, named)
    if not dropout_variant(cfg.variant).takes_rate:
        # Standout takes no rate (its keep probability π is the rate): a named site is live.
        return named
    live = []
    for placement in named:
        if placement == "input":
            used = [cfg.input_rate]
        elif placement == "last_hidden":
            used = rates[-1:]
        else:
            used = rates
        if any(p > 0 for p in used):
            live.append(placement)
    return live


def _pre_activation_as_hidden(cfg: ModelConfig, named: list[str]) -> list[str]:
    """`pre_activation` → `hidden` where they train the same network (`_COMMUTES_WITH_RELU`).

    Only when no post site is named too: `pre_activation+last_hidden` puts two masks on the
    last layer, which `hidden` alone does not.
    """
    if (
        cfg.activation != "relu"
        or cfg.variant not in _COMMUTES_WITH_RELU
        or "pre_activation" not in named
        or "hidden" in named
        or "last_hidden" in named
    ):
        return named
    merged = {"hidden" if p == "pre_activation" else p for p in named}
    return [p for p in PLACEMENTS if p in merged]


def canonicalize_model(cfg: ModelConfig) -> ModelConfig:
    """The representative of `cfg`'s class of equal networks.

    Rules: placements are a set (sorted, deduplicated; `last_hidden` is dropped beside `hidden`,
    whose sites include it); under ReLU a `standard`/`vanilla` `pre_activation` site is
    `hidden` (`_COMMUTES_WITH_RELU`); a placement whose rates are all 0 is removed; rates no
    remaining placement reads are 0 (`last_hidden` alone reads only the last layer's rate); with no
    placement left — every p = 0 — the variant is `none`; `none` has the default placements, no
    rates, input rate 0; `standout` takes no rate, so its rates are cleared and every named
    placement stays; knobs of other variants are reset to defaults; a variant's `same_as` maps
    it onto another: Multi-Sample with K = 1 is one mask per step, i.e. `standard`; R-Dropout
    with α = 0 is Multi-Sample with K = 2 (models/objectives.py: both average the cross-entropy
    of two independent masks).
    """
    if cfg.family != "mlp":
        return _canonical_family(cfg)
    rates = [_zero(p) for p in cfg.layer_rates()]
    live = _live_placements(cfg, rates)
    variant, own = _same_run_variant(cfg)
    entry = dropout_variant(variant)
    if not entry.noisy or not live:
        variant = "none"
        live = list(_default(ModelConfig, "placements"))
        rates = []
        input_rate = 0.0
        own = {}
    elif not entry.takes_rate:
        rates, input_rate = [], 0.0
    else:
        if not any(p in live for p in _PER_LAYER):
            last = rates[-1] if "last_hidden" in live else 0.0
            rates = [0.0] * (len(rates) - 1) + [last]
        if not any(p > 0 for p in rates):
            rates = []
        input_rate = _zero(cfg.input_rate) if "input" in live else 0.0
    knobs = {k.name: own.get(k.name, _default(ModelConfig, k.name)) for k in KNOBS}
    return cfg.model_copy(
        update={
            "variant": variant,
            "placements": live,
            "rates": rates,
            "input_rate": input_rate,
            **knobs,
        }
    )


def _canonical_family(cfg: ModelConfig) -> ModelConfig:
    """A family other than the MLP: the same rules where they hold for any network.

    Placements are a set in the family's site order; a site whose rate is 0 is removed (`input`
    reads `input_rate`, the others `rates`); with none left the variant is `none` (no
    placements, rates or input rate); knobs of other variants are reset, `same_as` reduces the
    variant; `conv_form` is `element` unless activation noise acts at a feature-map site.
    """
    family = model_family(cfg.family)
    rates = [_zero(p) for p in cfg.layer_rates()]
    variant, own = _same_run_variant(cfg)
    entry = dropout_variant(variant)

    def live(site: str) -> bool:
        if not entry.takes_rate:
            return True
        return cfg.input_rate > 0 if site == "input" else any(p > 0 for p in rates)

    sites = [s for s in family.site_names() if s in cfg.placements and live(s)]
    if not entry.noisy or not sites:
        variant, sites, rates, input_rate, own = "none", [], [], 0.0, {}
    else:
        if not entry.takes_rate or sites == ["input"]:
            rates = []
        input_rate = _zero(cfg.input_rate) if "input" in sites and entry.takes_rate else 0.0
    on_maps = any(family.site(s).kind == "map" for s in sites)
    form = cfg.conv_form if on_maps and entry.acts_on == "activations" else "element"
    knobs = {k.name: own.get(k.name, _default(ModelConfig, k.name)) for k in KNOBS}
    update = {"variant": variant, "placements": sites, "rates": rates, "input_rate": input_rate}
    return cfg.model_copy(update={**update, "conv_form": form, **knobs})


def _same_run_variant(cfg: ModelConfig) -> tuple[str, dict[str, Any]]:
    """The variant that trains what `cfg`'s does, and its own knob values (registry `same_as`)."""
    name, updates = cfg.variant, {}
    for _ in range(len(VARIANTS)):  # a registry cycle must not hang dedupe
        entry = dropout_variant(name)
        own = {k.name: updates.get(k.name, getattr(cfg, k.name)) for k in entry.knobs}
        reduced = entry.same_as(own) if entry.same_as is not None else None
        if reduced is None:
            return name, own
        name, updates = reduced
    raise ValueError(f"models.variants: same_as reductions of {cfg.variant!r} form a cycle")


def canonicalize_train(cfg: TrainConfig) -> TrainConfig:
    """Momentum only matters to SGD; other optimizers get the default."""
    if cfg.optimizer == "sgd":
        return cfg
    return cfg.model_copy(update={"momentum": _default(TrainConfig, "momentum")})


def canonicalize(model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """Both halves of a trial's configuration in canonical form."""
    return canonicalize_model(model_cfg), canonicalize_train(train_cfg)


def config_key(model_cfg: ModelConfig, train_cfg: TrainConfig, *, with_seed: bool = True) -> str:
    """Stable 16-hex-digit SHA-256 of the canonical pair.

    With the seed it identifies one run (dedupe: reuse a finished trial's result); without it,
    the configuration whose seed replicates are pooled for the verdict.
    """
    model, train = canonicalize(model_cfg, train_cfg)
    train_dict = train.model_dump(mode="json")
    if not with_seed:
        train_dict.pop("seed")
    payload = {"model": model.model_dump(mode="json"), "train": train_dict}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
