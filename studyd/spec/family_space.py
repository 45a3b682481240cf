"""The `model` section of a family other than `mlp`: `family`, then the family's own fields.

Each field is written in the spec's searchable forms: a number field as a scalar, `[lo, hi]` or a
choice list (`Dim`), a named field as one name or a list of names. The family's width field
(channels per conv block for `cnn`) takes `log` and `per_layer_widths` as the MLP's width does.
Every value is checked against the family's own pydantic fields (`models.families`), so a bound
the family declares is the spec's bound too. Unknown fields and families are refused with the
list of what exists. The `mlp` section stays `studyd.spec.spaces.ModelSpace`.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import ConfigDict, ValidationError, model_validator

from models.families import DEFAULT_FAMILY, FamilyError, ModelFamily, model_family
from studyd.spec.dims import BOUNDS, Dim, StrictModel, checked_dim

# Options of the section itself, not fields of the family.
OPTIONS = ("family", "log", "per_layer_widths")


def field_names(family: ModelFamily) -> list[str]:
    """The spec fields of `family`'s section, options first."""
    return [*OPTIONS, *family.fields.model_fields]


def _names_of(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a `Literal[...]` field (None for a number field)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return None


def _check_value(family: ModelFamily, field: str, value: Any) -> None:
    """The family's own validation of one value (a width is one block's)."""
    given = [int(value)] if field == family.width else value
    try:
        family.fields(**{field: given})
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ValueError(
            f"model.{field}: {value!r} is refused by {family.name}: {reason}"
        ) from None


def _searchable(family: ModelFamily, field: str, raw: Any) -> Any:
    """`raw` as the field's searchable form, every value checked by the family."""
    annotation = family.fields.model_fields[field].annotation
    names = _names_of(annotation)
    if names is not None:
        values = raw if isinstance(raw, list) else [raw]
        if not values or len(set(values)) != len(values):
            raise ValueError(
                f"model.{field}: write one of {list(names)} or a list of them, once each"
            )
        for v in values:
            if v not in names:
                raise ValueError(f"model.{field}: {v!r} is not one of {', '.join(map(str, names))}")
        return raw
    if field == family.width:
        integer, lo, hi, hint = BOUNDS["width"]
    elif field == family.depth:
        integer, lo, hi, hint = BOUNDS["depth"]
    else:
        integer = annotation is int
        lo, hi, hint = -1e12, 1e12, f"write a number, [lo, hi] or a choice list for {field}"
    dim = checked_dim(raw, integer=integer, lo=lo, hi=hi, hint=f"model.{field}: {hint}")
    for v in dim.values():
        _check_value(family, field, int(v) if integer else v)
    return dim


def _default_of(family: ModelFamily, field: str) -> Any:
    default = family.fields.model_fields[field].get_default(call_default_factory=True)
    return default[0] if field == family.width else default


class FamilySpace(StrictModel):
    """A family's model section; its own fields are extra fields, each a `Dim` or names."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True)

    family: str
    log: bool = True
    per_layer_widths: bool = False

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        try:
            family = model_family(str(raw.get("family")))
        except FamilyError as exc:
            raise ValueError(str(exc)) from None
        unknown = [k for k in raw if k not in field_names(family)]
        if unknown:
            raise ValueError(
                f"model: {', '.join(map(repr, unknown))} is not a field of the {family.name} "
                f"family; its fields are {', '.join(field_names(family))}"
            )
        out = {k: raw[k] for k in OPTIONS if k in raw}
        for field in family.fields.model_fields:
            value = raw.get(field, _default_of(family, field))
            out[field] = _searchable(family, field, value)
        return out

    @property
    def model_family(self) -> ModelFamily:
        return model_family(self.family)

    def field(self, name: str) -> Any:
        """The searchable form of the family's field `name` (a `Dim`, a name or names)."""
        return (self.__pydantic_extra__ or {})[name]

    @property
    def width(self) -> Dim:  # type: ignore[override]
        return self.field(self.model_family.width)

    @property
    def depth(self) -> Dim:
        return self.field(self.model_family.depth)


def model_section(raw: dict[str, Any]) -> Any:
    """The `model` section as the family it names: `ModelSpace` for mlp (the default)."""
    from studyd.spec.spaces import ModelSpace

    if raw.get("family", DEFAULT_FAMILY) == DEFAULT_FAMILY:
        return ModelSpace.model_validate(raw)
    return FamilySpace.model_validate(raw)


def check_family_dropout(model: Any, dropout: Any) -> None:
    """Every placement names sites of the model's family, and every variant acts at each."""
    from models.config import PLACEMENTS, refusal
    from models.variants import dropout_variant

    family = model_family(getattr(model, "family", DEFAULT_FAMILY))
    sites = PLACEMENTS if family.name == DEFAULT_FAMILY else tuple(family.site_names())
    parts = {p for placement in dropout.placements for p in placement.split("+")}
    bad = sorted(parts - set(sites))
    if bad:
        raise ValueError(
            f"dropout.placements: {', '.join(map(repr, bad))} is not a site of the {family.name} "
            f"family; its sites are {', '.join(sites)}"
        )
    if family.name == DEFAULT_FAMILY:
        if dropout.conv_form != "element":
            raise ValueError("dropout.conv_form: the mlp has no feature-map sites; remove it")
        return
    for variant in dropout.variants:
        for part in sorted(parts):
            if dropout_variant(variant).noisy and not family.site(part).accepts(variant):
                raise ValueError(
                    f"dropout: {refusal(family.name, part, variant)}; study them in "
                    "separate specs, or list only fc placements"
                )


def family_params(model: FamilySpace) -> list[Any]:
    """The Optuna parameters of a family's section (`studyd.spec.parameters.Param`): `depth`,
    `width` (or `width_{i}` per depth unit), then each other field under its own name."""
    from studyd.spec.dims import is_log
    from studyd.spec.parameters import Param

    family = model.model_family
    depth, width = model.depth, model.width
    log = is_log(width, model.log) and width.kind == "range"
    out = [Param("depth", f"model.{family.depth}", dim=depth, integer=True)]
    if model.per_layer_widths:
        out += [
            Param(f"width_{i}", f"model.{family.width}", dim=width, integer=True, log=log)
            for i in range(int(max(depth.values())))
        ]
    else:
        out.append(Param("width", f"model.{family.width}", dim=width, integer=True, log=log))
    for name in family.own_fields():
        value = model.field(name)
        if isinstance(value, Dim):
            integer = family.fields.model_fields[name].annotation is int
            out.append(Param(name, f"model.{name}", dim=value, integer=integer))
        else:
            names = (value,) if isinstance(value, str) else tuple(value)
            out.append(Param(name, f"model.{name}", choices=names))
    return out


def missing_family(raw_spec: Any) -> str | None:
    """The model family a stored spec names that is not installed in this process, or None.

    The worker's hook (a worker that lacks a study's family must leave the study to workers that
    have it, not fail it: its `validate_spec` would refuse the spec as unknown); the API host
    refuses such a spec at submission already.
    """
    model = raw_spec.get("model") if isinstance(raw_spec, dict) else None
    name = model.get("family", DEFAULT_FAMILY) if isinstance(model, dict) else DEFAULT_FAMILY
    try:
        model_family(str(name))
    except FamilyError:
        return str(name)
    return None
