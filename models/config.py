"""Model and training configurations: plain pydantic models the worker builds and stores as JSON."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from models.families import DEFAULT_FAMILY, ConvForm, model_family
from models.variants import KNOBS, VARIANT_NAMES, Knob, dropout_variant

# Built from the registry (models/variants.py), in its order: the JSON schema's enum keeps it.
Variant = Literal[VARIANT_NAMES]  # type: ignore[valid-type]
VARIANTS: tuple[str, ...] = VARIANT_NAMES
Placement = Literal["input", "hidden", "pre_activation", "last_hidden"]
PLACEMENTS: tuple[str, ...] = ("input", "hidden", "pre_activation", "last_hidden")
Activation = Literal["relu", "gelu", "tanh"]
Optimizer = Literal["sgd", "adam", "adamw"]


FAMILY_DEFAULTS: dict[str, Any] = {
    "family": DEFAULT_FAMILY,
    "arch": {},
    "input_shape": [],
    "conv_form": "element",
}


class _ModelShape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_dim: int = Field(gt=0)
    num_classes: int = Field(ge=2)
    hidden: list[int] = Field(min_length=1, description="width of each hidden layer")
    activation: Activation = "relu"
    variant: Variant = "none"
    # The MLP's `Placement`s, or the named sites of the config's family (`models.families`).
    placements: list[str] = Field(default_factory=lambda: ["hidden"])
    rates: list[float] = Field(default_factory=list, description="one rate per hidden layer")
    input_rate: float = 0.0
    # The family's fields: each is left out of the dump at its default (`FAMILY_DEFAULTS`), so an
    # MLP's config dumps, and hashes (`studyd.analysis.canonical.config_key`), as before families.
    family: str = Field(default=DEFAULT_FAMILY, description="the model family (models.families)")
    arch: dict[str, Any] = Field(
        default_factory=dict, description="the family's own fields but width and depth"
    )
    input_shape: list[int] = Field(
        default_factory=list, description="one example's shape, channels first; [] is flat"
    )
    conv_form: ConvForm = Field(default="element", description="noise on elements or whole maps")

    @field_validator("placements")
    @classmethod
    def _names(cls, placements: list[str]) -> list[str]:
        # A set of sites: a repeated name is the same site (configs recorded before families
        # could repeat one), kept once in its first position.
        return list(dict.fromkeys(placements))


def _knob_type(knob: Knob) -> Any:
    if knob.choices:
        return Literal[knob.choices]  # type: ignore[valid-type]
    return int if knob.integer else float


# Each variant's own knobs (`rdrop_alpha`, …) as fields after the shape, from the registry.
_ModelWithKnobs: Any = create_model(
    "_ModelWithKnobs",
    __base__=_ModelShape,
    **{k.name: (_knob_type(k), Field(default=k.default, ge=k.config_min)) for k in KNOBS},
)


class ModelConfig(_ModelWithKnobs):  # type: ignore[misc]
    """A network of a family (`mlp` unless said) with one dropout variant at named sites.

    For a family other than `mlp`, `hidden` holds its widths (one per depth unit: channels per
    conv block for `cnn`), `arch` its other fields, `placements` its site names; `rates[i]` is
    the rate of the sites of depth unit i (a site without one reads `rates[-1]`) and `conv_form`
    says whether activation noise at its feature-map sites drops elements or whole maps.

    `rates[i]` is the dropout rate used at the sites of hidden layer i (after its activation for
    `hidden`, between its Linear and activation for `pre_activation`; `last_hidden` uses
    `rates[-1]`). `input_rate` is the rate of the `input` placement (noise on the data).
    """

    @model_validator(mode="after")
    def _check_rates(self) -> ModelConfig:
        if self.rates and len(self.rates) != len(self.hidden):
            raise ValueError(
                f"rates has {len(self.rates)} entries but there are {len(self.hidden)} hidden "
                "layers: give one rate per hidden layer"
            )
        for p in [*self.rates, self.input_rate]:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"dropout rate {p} is out of range: use 0 <= p < 1")
        self._check_family()
        return self

    def _check_family(self) -> None:
        family = model_family(self.family)
        if self.family == DEFAULT_FAMILY:
            bad = [p for p in self.placements if p not in PLACEMENTS]
            if bad or self.arch or self.input_shape or self.conv_form != "element":
                raise ValueError(
                    f"an mlp takes placements among {', '.join(PLACEMENTS)} and no arch, "
                    "input_shape or conv_form"
                )
            return
        family.values(self.hidden, self.arch)  # its own fields validate the values
        for name in self.placements:
            site = family.site(name)
            if not site.accepts(self.variant):
                raise ValueError(refusal(self.family, name, self.variant))
        if self.input_shape and math.prod(self.input_shape) != self.input_dim:
            raise ValueError(
                f"input_shape {self.input_shape} does not hold {self.input_dim} features"
            )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        for name, default in FAMILY_DEFAULTS.items():
            if name in out and out[name] == default:
                del out[name]
        return out

    def shape(self) -> tuple[int, ...]:
        """One example's shape: `input_shape`, or (input_dim,) for flat features."""
        return tuple(self.input_shape) if self.input_shape else (self.input_dim,)

    def layer_rates(self) -> list[float]:
        """Rates per hidden layer (zeros when none were given)."""
        return list(self.rates) if self.rates else [0.0] * len(self.hidden)

    def variant_knobs(self) -> dict[str, Any]:
        """The values of this config's variant's own knobs, by name."""
        return {k.name: getattr(self, k.name) for k in dropout_variant(self.variant).knobs}


def refusal(family: str, site: str, variant: str) -> str:
    """Why `variant` cannot act at `site` (a 422's message)."""
    return (
        f"{variant} cannot act at {family}'s {site!r} site: DropConnect and Standout act on a "
        "Linear's weights or units, so they apply to fc sites only; at feature-map and input "
        "sites use an activation-noise variant (standard, vanilla, gaussian, rdrop, multisample)"
    )


class TrainConfig(BaseModel):
    """How one trial trains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=128, ge=1)
    optimizer: Optimizer = "adam"
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    seed: int = 0
    # "eval": train loss/accuracy measured in eval mode over the training set at each epoch's end
    # (an honest train−val gap; one extra forward pass). "running": the average over the epoch's
    # training steps with dropout active (free, but dropout's noise shrinks the gap it reports).
    train_metrics: Literal["eval", "running"] = "eval"
