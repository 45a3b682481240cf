"""Spec → Optuna: the one mapping from a study spec onto `trial.suggest_*`, samplers and pruners.

Only searchable values become Optuna parameters (fixed scalars never do), and a variant's own
parameters are suggested only when that variant is chosen, so samplers see a clean space. The
parameters themselves (names, bounds, baselines, grids) are the spec's: `studyd.spec.parameters`.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from models.config import ModelConfig, TrainConfig
from models.families import model_family
from models.variants import dropout_variant
from studyd.daemon.covering import CoveringSampler
from studyd.daemon.exploring import ExploringSampler
from studyd.daemon.fair_pruning import StratifiedPruner, scaled_warmup
from studyd.spec import StudySpec
from studyd.spec.family_space import FamilySpace
from studyd.spec.parameters import Param, grid_space, search_params

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler


# TPE and GP draw at random until this many trials have finished (Optuna's default, set here so
# that the worker can size its stacks to it: `startup_counts`).
SAMPLER_STARTUP_TRIALS = 10

# Parameters whose values change what `models.batched.batch_key` groups trials by.
ARCHITECTURE_PARAMS = (
    "depth",
    "width",
    "activation",
    "variant",
    "placement",
    "batch_size",
    "optimizer",
)


_WIDTH_OF_LAYER = re.compile(r"^width_\d+$")


def architecture_count(spec: StudySpec) -> float:
    """How many stacks (`batch_key`s) the spec's trials can fall into; `inf` for a continuum.

    K trials asked at once train as one stack only when they share an architecture; with A
    possible architectures a batch splits into about min(K, A) groups. Variants that cannot be
    stacked count as a continuum (they always train alone).
    """
    if not _stackable(spec):
        return math.inf
    count = 1.0
    for name, param in search_params(spec).items():
        # `width_{i}`: one width per hidden layer (`per_layer_widths`).
        if _WIDTH_OF_LAYER.sub("width", name) in ARCHITECTURE_PARAMS:
            count *= _value_count(param)
    return count


def stack_count(spec: StudySpec) -> float:
    """How many stacks the spec's trials can fall into when widths are padded (models.batched):
    `architecture_count` without the widths; `inf` for a continuum."""
    if not _stackable(spec):
        return math.inf
    count = 1.0
    for name, param in search_params(spec).items():
        if name in ARCHITECTURE_PARAMS and name != "width":
            count *= _value_count(param)
    return count


def _stackable(spec: StudySpec) -> bool:
    """Whether trials of the spec can share a stack: its family and every variant say so (a
    family other than the MLP trains one trial at a time: `models.batched.batch_key`)."""
    family = model_family(getattr(spec.model, "family", "mlp"))
    return family.stackable and all(dropout_variant(v).stackable for v in spec.dropout.variants)


def _value_count(param: Param) -> float:
    if param.fixed:
        return 1.0
    if param.choices is not None:
        return float(len(param.choices))
    dim = param.dim
    assert dim is not None
    if dim.kind == "choice":
        return float(len(dim.choices or ()))
    if param.integer and not param.log:
        return float((dim.high - dim.low) // (dim.step or 1) + 1)  # type: ignore[operator]
    return math.inf


class _ParamsTrial:
    """Answers `suggest_*` from a finished trial's params, so one function serves both cases."""

    def __init__(self, trial: FrozenTrial) -> None:
        self._params = trial.params
        self._number = trial.number

    def _get(self, name: str, *_: Any, **__: Any) -> Any:
        if name not in self._params:
            raise ValueError(
                f"trial {self._number} has no parameter {name!r}: it was not made from this spec"
            )
        return self._params[name]

    suggest_int = suggest_float = suggest_categorical = _get


def _shape(data_shape: Any, num_classes: int | None) -> tuple[int, int]:
    if num_classes is not None:
        return int(data_shape), int(num_classes)
    if hasattr(data_shape, "input_dim"):
        return int(data_shape.input_dim), int(data_shape.num_classes)
    input_dim, classes = data_shape
    return int(input_dim), int(classes)


def suggest_config(
    trial: optuna.Trial | FrozenTrial | Any,
    spec: StudySpec,
    data_shape: Any,
    num_classes: int | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """Map a trial onto (ModelConfig, TrainConfig); a `FrozenTrial` is rebuilt from its params.

    `data_shape` is `(input_dim, num_classes)`, a `DatasetSplits`, or `input_dim` with
    `num_classes` given separately.
    """
    input_dim, classes = _shape(data_shape, num_classes)
    t = _ParamsTrial(trial) if isinstance(trial, FrozenTrial) else trial
    space = search_params(spec)

    def get(name: str) -> Any:
        return space[name].suggest(t)

    depth = get("depth")
    if spec.model.per_layer_widths:
        hidden = [get(f"width_{i}") for i in range(depth)]
    else:
        hidden = [get("width")] * depth
    model: dict[str, Any] = {"input_dim": input_dim, "num_classes": classes, "hidden": hidden}
    if isinstance(spec.model, FamilySpace):
        model |= _family_params(get, spec.model, data_shape)
    else:
        model["activation"] = get("activation")
    model["variant"] = get("variant")
    if dropout_variant(model["variant"]).noisy:
        model.update(_dropout_params(get, spec, model["variant"], depth))
        if "conv_form" in space and model.get("placements"):
            model.update(_conv_form(get, spec.model, model))
    train = TrainConfig(
        epochs=get("epochs"),
        batch_size=get("batch_size"),
        optimizer=get("optimizer"),
        lr=get("lr"),
        weight_decay=get("weight_decay"),
        momentum=spec.training.momentum,
        seed=spec.training.seed,
    )
    return ModelConfig(**model), train


def _family_params(get: Any, section: FamilySpace, data_shape: Any) -> dict[str, Any]:
    """A family's own fields (`arch`) and the data's example shape (`input_shape`)."""
    family = section.model_family
    shape = getattr(data_shape, "example_shape", ())
    return {
        "family": family.name,
        "placements": [],  # `none`'s; a noisy variant's come from `_dropout_params`
        "arch": {name: get(name) for name in family.own_fields()},
        "input_shape": list(shape),
    }


def _conv_form(get: Any, section: Any, model: dict[str, Any]) -> dict[str, Any]:
    """`conv_form`, asked only where it acts: activation noise at a feature-map site."""
    family = section.model_family
    on_maps = any(family.site(p).kind == "map" for p in model["placements"])
    if on_maps and dropout_variant(model["variant"]).acts_on == "activations":
        return {"conv_form": get("conv_form")}
    return {}


def _dropout_params(get: Any, spec: StudySpec, variant: str, depth: int) -> dict[str, Any]:
    """Placement, rates and the chosen variant's own parameters (and nothing else)."""
    parts = get("placement").split("+")
    out: dict[str, Any] = {"placements": parts}
    entry = dropout_variant(variant)
    if not entry.takes_rate:
        # Standout takes no rate: its keep probability π is the rate (models/variants.py).
        return out | {k.name: get(k.name) for k in entry.knobs}
    layer_sites = [p for p in parts if p != "input"]
    # last_hidden alone uses rates[-1] only: one `rate` keeps the space free of dead parameters.
    if layer_sites and spec.dropout.per_layer_rates and layer_sites != ["last_hidden"]:
        out["rates"] = [get(f"rate_{i}") for i in range(depth)]
    elif layer_sites:
        out["rates"] = [get("rate")] * depth
    if "input" in parts:
        out["input_rate"] = get("input_rate")
    return out | {k.name: get(k.name) for k in entry.knobs}


class _QueueGridSampler(optuna.samplers.GridSampler):
    """Grid search under ask/tell: the queue's target ends the study, not `study.stop()`
    (which raises outside `optimize` once the grid is used up)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def build_sampler(spec: StudySpec, seed_offset: int = 0) -> BaseSampler:
    """The spec's sampler. Each worker passes its own `seed_offset` so workers sharing a study
    do not draw the same points (QMC keeps one seed: its sequence is shared through storage)."""
    s = spec.search
    seed = None if s.seed is None else s.seed + seed_offset
    samplers = optuna.samplers
    # Each requested variant is proposed once before the sampler's own taste decides (covering).
    if s.sampler == "random":
        return CoveringSampler(samplers.RandomSampler(seed=seed))
    if s.sampler == "qmc":
        return samplers.QMCSampler(
            seed=s.seed if s.seed is not None else 0,
            warn_asynchronous_seeding=False,
            warn_independent_sampling=False,
        )
    if s.sampler == "grid":
        return _QueueGridSampler(grid_space(spec), seed=seed)
    # The model-based samplers can stick to a run the study has: the worker then draws at random.
    if s.sampler == "gp":
        gp = samplers.GPSampler(
            seed=seed, n_startup_trials=SAMPLER_STARTUP_TRIALS, warn_independent_sampling=False
        )
        return ExploringSampler(CoveringSampler(gp), seed)
    tpe = samplers.TPESampler(seed=seed, n_startup_trials=SAMPLER_STARTUP_TRIALS)
    return ExploringSampler(CoveringSampler(tpe), seed)


def startup_counts(spec: StudySpec) -> tuple[int, ...]:
    """The finished-trial counts at which the search starts to use results: the median and
    percentile pruners prune nothing before their `startup_trials` have completed, TPE and GP
    draw at random before `SAMPLER_STARTUP_TRIALS` have finished. Trials asked together before
    such a count are all judged and drawn as if the study had none of each other's results."""
    counts = []
    if spec.search.pruner.name in ("median", "percentile"):
        counts.append(spec.search.pruner.startup_trials)
    if spec.search.sampler in ("tpe", "gp"):
        counts.append(SAMPLER_STARTUP_TRIALS)
    return tuple(sorted(c for c in counts if c > 0))


def build_pruner(spec: StudySpec) -> BasePruner:
    """The spec's pruner; steps are epochs (from 0), so hyperband's resource is epochs. The
    median and percentile pruners compare a trial with its own variant's trials only
    (`StratifiedPruner`) unless the spec says `by_variant: false`."""
    p = spec.search.pruner
    pruners = optuna.pruners
    max_epochs = int(max(spec.training.epochs.values()))
    warmup = p.warmup_epochs if p.warmup_epochs is not None else scaled_warmup(max_epochs)
    if p.name in ("median", "percentile"):
        inner: BasePruner = (
            pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=warmup)
            if p.name == "median"
            else pruners.PercentilePruner(
                p.percentile, n_startup_trials=p.startup_trials, n_warmup_steps=warmup
            )
        )
        return StratifiedPruner(inner) if p.by_variant else inner
    # Their first rung is their own schedule's: one epoch unless the spec sets a warm-up.
    first_rung = max(1, p.warmup_epochs or 1)
    if p.name == "successive_halving":
        return pruners.SuccessiveHalvingPruner(min_resource=first_rung)
    if p.name == "hyperband":
        return pruners.HyperbandPruner(min_resource=first_rung, max_resource=max_epochs)
    return pruners.NopPruner()
