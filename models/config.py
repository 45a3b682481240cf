"""Model and training configurations: plain pydantic models the worker builds and stores as JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from models.variants import KNOBS, VARIANT_NAMES, Knob, dropout_variant

# Built from the registry (models/variants.py), in its order: the JSON schema's enum keeps it.
Variant = Literal[VARIANT_NAMES]  # type: ignore[valid-type]
VARIANTS: tuple[str, ...] = VARIANT_NAMES
Placement = Literal["input", "hidden", "pre_activation", "last_hidden"]
PLACEMENTS: tuple[str, ...] = ("input", "hidden", "pre_activation", "last_hidden")
Activation = Literal["relu", "gelu", "tanh"]
Optimizer = Literal["sgd", "adam", "adamw"]


class _ModelShape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_dim: int = Field(gt=0)
    num_classes: int = Field(ge=2)
    hidden: list[int] = Field(min_length=1, description="width of each hidden layer")
    activation: Activation = "relu"
    variant: Variant = "none"
    placements: list[Placement] = Field(default_factory=lambda: ["hidden"])
    rates: list[float] = Field(default_factory=list, description="one rate per hidden layer")
    input_rate: float = 0.0


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
    """An MLP with one dropout variant at one or more placements.

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
        return self

    def layer_rates(self) -> list[float]:
        """Rates per hidden layer (zeros when none were given)."""
        return list(self.rates) if self.rates else [0.0] * len(self.hidden)

    def variant_knobs(self) -> dict[str, Any]:
        """The values of this config's variant's own knobs, by name."""
        return {k.name: getattr(self, k.name) for k in dropout_variant(self.variant).knobs}


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
