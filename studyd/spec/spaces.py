"""The spec's sections as a user writes them: which data, and the model, dropout and training
search spaces (`studyd.spec.parameters` turns them into Optuna parameters)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from models.config import PLACEMENTS, VARIANTS, Activation, Optimizer
from models.families import CONV_FORMS, installed_families
from models.variants import KNOBS
from studyd.spec.dims import Dim, StrictModel, bounded, is_log


def _as_list(raw: Any, field: str) -> list[Any]:
    # pydantic turns only ValueError into a validation error: list(None) would be a TypeError.
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{field} must be a list (or one name), not {type(raw).__name__}")
    return list(raw)


def _choice_list(raw: Any, allowed: tuple[str, ...], field: str) -> list[str]:
    values = [raw] if isinstance(raw, str) else _as_list(raw, field)
    if not values:
        raise ValueError(f"{field} is empty; write one or more of {', '.join(allowed)}")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{v!r} is not one of {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{values} repeats a value; list each once")
    return values


# Fields written as one name or a list of names, and the names each allows.
NAMED_CHOICES: dict[str, tuple[str, ...]] = {
    "activation": get_args(Activation),
    "optimizer": get_args(Optimizer),
    **{k.name: k.choices for k in KNOBS if k.choices},
}
# A variant's numeric knobs are `Dim`s; its named options (`multisample_average`) are names.
_NUMBER_KNOBS = tuple(k.name for k in KNOBS if not k.choices)
_NAMED_KNOBS = tuple(k.name for k in KNOBS if k.choices)


def one_or_choices(cls: type, raw: Any, info: ValidationInfo) -> Any:
    """A `field_validator` body: one name as it is, a list checked against `NAMED_CHOICES`."""
    if isinstance(raw, str):
        return raw
    return _choice_list(raw, NAMED_CHOICES[info.field_name], info.field_name)


def checked_names(cls: type, raw: Any, info: ValidationInfo) -> Any:
    """A `field_validator` body: one name or a list, each checked against `NAMED_CHOICES`."""
    values = _choice_list(raw, NAMED_CHOICES[info.field_name], info.field_name)
    return raw if isinstance(raw, str) else values


class DatasetSpec(StrictModel):
    """Which data: `digits`, `mnist1d`, `mnist-5k`, `fashion-mnist`, `npz:PATH` or `csv:PATH`."""

    name: str = "digits"
    train_subset: int | None = Field(default=None, ge=10, le=10_000_000, strict=True)
    seed: int = Field(default=0, ge=0, le=2**31 - 1, strict=True)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name in ("digits", "mnist1d", "mnist-5k", "fashion-mnist"):
            return name
        kind, sep, path = name.partition(":")
        if sep and kind in ("npz", "csv") and path.strip():
            return name
        raise ValueError(
            f"unknown dataset {name!r}; write digits, mnist1d, mnist-5k, fashion-mnist, npz:PATH "
            "or csv:PATH"
        )


def _without_defaults(out: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    # Fields added after specs were stored: left out at their defaults, so a stored spec reads
    # back equal (the API's idempotent resubmit compares dumps).
    return {k: v for k, v in out.items() if k not in defaults or v != defaults[k]}


class ModelSpace(StrictModel):
    """The MLP (`family: mlp`, the default): depth, widths (shared or per layer, `log` for a
    log-scale width range) and activation. Other families: `studyd.spec.family_space`."""

    family: Literal["mlp"] = "mlp"
    depth: Dim = 2
    width: Dim = [64, 512]
    log: bool = True
    per_layer_widths: bool = False
    activation: Activation | list[Activation] = "relu"

    _bounds = field_validator("depth", "width", mode="before")(bounded)

    _activations = field_validator("activation")(one_or_choices)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), {"family": "mlp"})


def known_placements() -> tuple[str, ...]:
    """Every site name of an installed family (the MLP's first); the family's own are checked
    with the whole spec (`studyd.spec.study`)."""
    names = list(PLACEMENTS)
    for family in installed_families().values():
        names += [s.name for s in family.sites if s.name not in names]
    return tuple(names)


def _placement_parts(placement: str) -> list[str]:
    return placement.split("+")


class _DropoutSites(StrictModel):
    variants: list[str] = Field(default_factory=lambda: ["none", "standard"])
    rate: Dim = [0.1, 0.7]
    rate_log: bool = False
    placements: list[str] = Field(default_factory=lambda: ["hidden"])
    per_layer_rates: bool = False
    input_rate: Dim = 0.2
    # At feature-map sites (cnn's `conv`): drop elements or whole maps (Tompson et al. 2015).
    conv_form: Literal["element", "channel"] | list[Literal["element", "channel"]] = "element"


# Each variant's own knobs (`rdrop_alpha`, …) after the shared fields, with the registry's default
# search space (models/variants.py); the JSON schema lists them in `KNOBS` order.
_DropoutWithKnobs: Any = create_model(
    "_DropoutWithKnobs",
    __base__=_DropoutSites,
    **{k.name: (str | list[str] if k.choices else Dim, k.space) for k in KNOBS},
)


class DropoutSpace(_DropoutWithKnobs):  # type: ignore[misc]
    """Variants, rates and placements, and each variant's own parameters."""

    _bounds = field_validator("rate", "input_rate", *_NUMBER_KNOBS, mode="before")(bounded)
    _named = field_validator(*_NAMED_KNOBS)(checked_names)

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, raw: Any) -> list[str]:
        return _choice_list(raw, VARIANTS, "variants")

    @field_validator("placements", mode="before")
    @classmethod
    def _placements(cls, raw: Any) -> list[str]:
        values = [raw] if isinstance(raw, str) else _as_list(raw, "placements")
        if not values:
            raise ValueError("placements is empty; write e.g. [hidden] or [hidden, input+hidden]")
        for v in values:
            parts = _placement_parts(v) if isinstance(v, str) else [v]
            known = known_placements()
            bad = [p for p in parts if p not in known]
            if bad or len(set(parts)) != len(parts):
                raise ValueError(
                    f"{v!r} is not a placement; write one of {', '.join(known)} "
                    "or a combination joined with '+', e.g. input+hidden"
                )
        if len(set(values)) != len(values):
            raise ValueError(f"{values} repeats a placement; list each once")
        return values

    @field_validator("conv_form", mode="before")
    @classmethod
    def _conv_forms(cls, raw: Any) -> Any:
        return raw if isinstance(raw, str) else _choice_list(raw, CONV_FORMS, "conv_form")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_defaults(handler(self), {"conv_form": "element"})

    @model_validator(mode="after")
    def _log_ranges(self) -> DropoutSpace:
        if self.rate_log and self.rate.kind == "range" and self.rate.low <= 0:  # type: ignore[operator]
            raise ValueError("rate: a log range needs lo > 0; write e.g. [0.05, 0.7]")
        return self


class TrainingSpace(StrictModel):
    """Epochs, batch size, optimizer, learning rate (log scale by default) and weight decay."""

    epochs: Dim = 10
    batch_size: Dim = 128
    optimizer: Optimizer | list[Optimizer] = "adam"
    lr: Dim = [1e-4, 1e-2]
    lr_log: bool = True
    weight_decay: Dim = 0.0
    weight_decay_log: bool = False
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1, strict=True)

    _bounds = field_validator("epochs", "batch_size", "lr", "weight_decay", mode="before")(bounded)

    _optimizers = field_validator("optimizer")(one_or_choices)

    @model_validator(mode="after")
    def _log_ranges(self) -> TrainingSpace:
        wd = self.weight_decay
        if is_log(wd, self.weight_decay_log) and wd.kind == "range" and wd.low <= 0:  # type: ignore[operator]
            raise ValueError("weight_decay: a log range needs lo > 0; write e.g. [1e-6, 1e-3]")
        return self
