"""The Optuna parameters a spec produces (`Param`), its baselines and grid checked against them.

Not the spec's sections (`studyd.spec.spaces`: what a user writes); what they become for a sampler.

Parameter names: depth, width | width_{i}, activation (another family: its own fields by name,
`studyd.spec.family_space`), variant, placement, rate | rate_{i}, input_rate, each variant's own
knobs by their names (models/variants.py: rdrop_alpha, …), conv_form (feature-map sites), epochs,
batch_size, optimizer, lr, weight_decay. Only the dropout parameters some variant and placement of
the spec can reach are listed, so samplers see a clean space. `studyd.daemon.search` maps these
onto Optuna's `trial.suggest_*`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.variants import KNOBS, Knob, dropout_variant, knob_owner
from studyd.spec.dims import Dim
from studyd.spec.dims import is_log as _is_log
from studyd.spec.family_space import FamilySpace, family_params
from studyd.spec.limits import MAX_GRID

if TYPE_CHECKING:
    from studyd.spec.study import StudySpec


@dataclass(frozen=True)
class Param:
    """A possible Optuna parameter: a number `dim` or string `choices`; `path`: its spec field."""

    name: str
    path: str
    dim: Dim | None = None
    choices: tuple[str, ...] | None = None
    integer: bool = False
    log: bool = False

    @property
    def fixed(self) -> bool:
        if self.choices is not None:
            return len(self.choices) == 1
        return self.dim is not None and self.dim.kind == "fixed"

    def fixed_value(self) -> Any:
        if self.choices is not None:
            return self.choices[0]
        value = self.dim.value  # type: ignore[union-attr]
        return int(value) if self.integer else value  # type: ignore[arg-type]

    def suggest(self, trial: Any) -> Any:
        if self.fixed:
            return self.fixed_value()
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        dim = self.dim
        assert dim is not None
        if dim.kind == "choice":
            values = [int(c) if self.integer else float(c) for c in dim.choices]  # type: ignore[union-attr]
            return trial.suggest_categorical(self.name, values)
        lo, hi = dim.low, dim.high
        if self.integer:
            step = int(dim.step or 1)
            return trial.suggest_int(self.name, int(lo), int(hi), step=step, log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(self.name, lo, hi, step=dim.step, log=self.log)  # type: ignore[arg-type]


def _strings(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def search_params(spec: StudySpec) -> dict[str, Param]:
    """Every parameter this spec can ever produce (fixed ones included), by Optuna name."""
    m, d, t = spec.model, spec.dropout, spec.training
    max_depth = int(max(m.depth.values()))
    out = family_params(m) if isinstance(m, FamilySpace) else _mlp_params(m, max_depth)
    out.append(Param("variant", "dropout.variants", choices=tuple(d.variants)))
    out += _dropout_space(spec, max_depth)
    out.append(Param("epochs", "training.epochs", dim=t.epochs, integer=True))
    out.append(Param("batch_size", "training.batch_size", dim=t.batch_size, integer=True))
    out.append(Param("optimizer", "training.optimizer", choices=_strings(t.optimizer)))
    out.append(Param("lr", "training.lr", dim=t.lr, log=_is_log(t.lr, t.lr_log)))
    out.append(
        Param(
            "weight_decay",
            "training.weight_decay",
            dim=t.weight_decay,
            log=_is_log(t.weight_decay, t.weight_decay_log),
        )
    )
    return {p.name: p for p in out}


def _mlp_params(m: Any, max_depth: int) -> list[Param]:
    out: list[Param] = [Param("depth", "model.depth", dim=m.depth, integer=True)]
    width_log = _is_log(m.width, m.log) and m.width.kind == "range"
    if m.per_layer_widths:
        out += [
            Param(f"width_{i}", "model.width", dim=m.width, integer=True, log=width_log)
            for i in range(max_depth)
        ]
    else:
        out.append(Param("width", "model.width", dim=m.width, integer=True, log=width_log))
    out.append(Param("activation", "model.activation", choices=_strings(m.activation)))
    return out


def _dropout_space(spec: StudySpec, max_depth: int) -> list[Param]:
    """Only the dropout parameters some variant and placement in the spec can reach."""
    d = spec.dropout
    variants = [dropout_variant(v) for v in d.variants if dropout_variant(v).noisy]
    if not variants:
        return []
    names = {v.name for v in variants}
    out = [Param("placement", "dropout.placements", choices=tuple(d.placements))]
    rated = any(v.takes_rate for v in variants)
    sites = [[p for p in pl.split("+") if p != "input"] for pl in d.placements]
    rate_log = _is_log(d.rate, d.rate_log)
    if rated and any(s and (not d.per_layer_rates or s == ["last_hidden"]) for s in sites):
        out.append(Param("rate", "dropout.rate", dim=d.rate, log=rate_log))
    if rated and d.per_layer_rates and any(s and s != ["last_hidden"] for s in sites):
        out += [
            Param(f"rate_{i}", "dropout.rate", dim=d.rate, log=rate_log) for i in range(max_depth)
        ]
    if rated and any("input" in pl.split("+") for pl in d.placements):
        log = _is_log(d.input_rate, False)
        out.append(Param("input_rate", "dropout.input_rate", dim=d.input_rate, log=log))
    out += [_knob_param(k, getattr(d, k.name)) for k in KNOBS if knob_owner(k.name) in names]
    if any(v.acts_on == "activations" for v in variants) and _map_sites(spec):
        out.append(Param("conv_form", "dropout.conv_form", choices=_strings(d.conv_form)))
    return out


def _map_sites(spec: StudySpec) -> bool:
    """Whether a placement of the spec names a feature-map site (where `conv_form` applies)."""
    if not isinstance(spec.model, FamilySpace):
        return False
    family = spec.model.model_family
    parts = {p for pl in spec.dropout.placements for p in pl.split("+")}
    return any(family.site(p).kind == "map" for p in parts)


def _knob_param(knob: Knob, dim: Dim | str | list[str]) -> Param:
    """A variant's own knob as a parameter; `knob.log` None: linear whatever the spec says."""
    if not isinstance(dim, Dim):  # a named option: one name or a list of them
        names = (dim,) if isinstance(dim, str) else tuple(dim)
        return Param(knob.name, f"dropout.{knob.name}", choices=names)
    log = False if knob.log is None else _is_log(dim, knob.log)
    return Param(knob.name, f"dropout.{knob.name}", dim=dim, integer=knob.integer, log=log)


def check_baselines(spec: StudySpec) -> None:
    """Each baseline names only this spec's parameters, with values inside the space."""
    space = search_params(spec)
    for i, baseline in enumerate(spec.baselines):
        for name, value in baseline.items():
            where = f"baselines[{i}].{name}"
            param = space.get(name)
            if param is None:
                raise ValueError(
                    f"{where}: unknown parameter; use one of {', '.join(sorted(space))}"
                )
            if param.integer and isinstance(value, float):
                raise ValueError(
                    f"{where}: {value!r} is not a whole number; write it without a decimal point"
                )
            if param.fixed:
                if value != param.fixed_value():
                    raise ValueError(
                        f"{where}: {param.path} is fixed to {param.fixed_value()!r}; remove it "
                        f"from the baseline or make {param.path} a range or choice list"
                    )
                continue
            if not _in_space(param, value):
                raise ValueError(
                    f"{where}: {value!r} is outside {param.path}; widen {param.path} or change "
                    "the baseline"
                )


def _in_space(param: Param, value: Any) -> bool:
    if param.choices is not None:
        return value in param.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if param.integer and not float(value).is_integer():
        return False
    return param.dim is not None and param.dim.contains(value)


def baseline_params(spec: StudySpec) -> list[dict[str, Any]]:
    """Baselines as Optuna params to enqueue (fixed values dropped: they are never suggested)."""
    space = search_params(spec)
    return [{k: v for k, v in b.items() if not space[k].fixed} for b in spec.baselines]


def grid_space(spec: StudySpec) -> dict[str, list[Any]]:
    """The finite grid of every searchable parameter; ValueError naming a field that is not."""
    grid: dict[str, list[Any]] = {}
    for name, param in search_params(spec).items():
        if param.fixed:
            continue
        if param.choices is not None:
            grid[name] = list(param.choices)
            continue
        dim = param.dim
        assert dim is not None
        if dim.kind == "choice":
            grid[name] = [int(c) if param.integer else c for c in dim.choices]  # type: ignore[union-attr]
        elif param.integer:
            grid[name] = list(range(int(dim.low), int(dim.high) + 1, int(dim.step or 1)))  # type: ignore[arg-type]
        elif dim.step is not None:
            n = int(math.floor((dim.high - dim.low) / dim.step + 1e-9))  # type: ignore[operator]
            grid[name] = [round(dim.low + k * dim.step, 12) for k in range(n + 1)]  # type: ignore[operator]
        else:
            raise ValueError(
                f"search.sampler: grid needs a finite space but {param.path} is the range "
                f"[{dim.low:g}, {dim.high:g}]; write a choice list such as "
                f"[{dim.low:g}, {(dim.low + dim.high) / 2:g}, {dim.high:g}], add a step, "  # type: ignore[operator]
                "or use sampler: tpe"
            )
    size = math.prod(len(v) for v in grid.values())
    if size > MAX_GRID:
        raise ValueError(
            f"search.sampler: the grid has {size} points, over the limit {MAX_GRID}; "
            "shorten the choice lists or use sampler: tpe"
        )
    return grid
