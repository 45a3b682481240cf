"""Runs: the canonical configuration a trial trains (a finished run with its `run_key` is reused
instead: `storage.trial_store.first_with_attr`), and the seed replicates that turn a
search's best configurations into evidence.

A *run* is a canonical configuration plus a seed (`run_key`): two trials of one run would train
the same distribution of networks from the same seed, so the second reuses the first's result.
A *configuration* is the same without the seed (`config_key`): its seed replicates are pooled.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from models.config import ModelConfig, TrainConfig
from studyd.analysis.canonical import canonicalize, config_key
from studyd.daemon.records import is_feasible
from studyd.daemon.search import suggest_config
from studyd.spec import StudySpec
from studyd.spec.parameters import grid_space

logger = logging.getLogger(__name__)

# A search ends once its sampler proposed this many runs in a row that the study already has: a
# sampler that keeps proposing them has nothing new left to try (or finds nothing better).
REPEATS_IN_A_ROW = 20
# Spaces with more grid points than this are not enumerated: only the repeats end them early.
MAX_ENUMERATED = 20_000


def trial_seed(trial: optuna.Trial | FrozenTrial, spec: StudySpec) -> int:
    """The training seed: a replicate's own (`replicate_seed`), else the spec's."""
    seed = trial.user_attrs.get("replicate_seed")
    return spec.training.seed if seed is None else int(seed)


def trial_config(
    trial: optuna.Trial | FrozenTrial, spec: StudySpec, data_shape: Any
) -> tuple[ModelConfig, TrainConfig]:
    """What the trial trains: its suggested configs with its seed, in canonical form."""
    model_cfg, train_cfg = suggest_config(trial, spec, data_shape)
    train_cfg = train_cfg.model_copy(update={"seed": trial_seed(trial, spec)})
    return canonicalize(model_cfg, train_cfg)


def replicate_targets(study: optuna.Study, spec: StudySpec) -> list[FrozenTrial]:
    """One representative trial per configuration to replicate, best first.

    The `top_k` best distinct configurations, plus each variant's best (so every variant, `none`
    included, has a replicated best configuration for the verdict's paired tests). Ranked by the
    first objective. With constraints, only feasible trials while any is feasible: the verdict
    counts those alone (`analysis.evidence`), so a variant whose every trial is infeasible gets no
    replicates. While none is feasible, all of them (as the best trial then is the best of all).
    """
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("config_key") and "replicate_of" not in t.user_attrs
    ]
    complete = [t for t in complete if is_feasible(t)] or complete
    ranked = sorted(complete, key=lambda t: (-sign * t.values[0], t.number))
    best_per_config: dict[str, FrozenTrial] = {}
    for trial in ranked:
        best_per_config.setdefault(trial.user_attrs["config_key"], trial)
    chosen = list(best_per_config.values())[: spec.top_k]
    seen_variants = {t.user_attrs.get("variant") for t in chosen}
    for trial in best_per_config.values():
        if trial.user_attrs.get("variant") not in seen_variants:
            seen_variants.add(trial.user_attrs.get("variant"))
            chosen.append(trial)
    return chosen


def replicate_seeds(spec: StudySpec) -> list[int]:
    """The same `repeats` seeds for every configuration, so their differences can be paired
    (with `repeats: {auto: true}`, the first round's)."""
    return [spec.training.seed + i for i in range(1, spec.first_repeats + 1)]


def enqueue_replicates(study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue every replicate (`replicate_of`, `replicate_seed`); returns how many."""
    if spec.repeats == 0:
        return 0
    n = 0
    for trial in replicate_targets(study, spec):
        for seed in replicate_seeds(spec):
            attrs = {"replicate_of": trial.number, "replicate_seed": seed}
            study.enqueue_trial(trial.params, user_attrs=attrs)
            n += 1
    logger.info("%s: %s seed replicates enqueued", study.study_name, n)
    return n


class _GridPoint:
    """Answers `suggest_*` from one point of the spec's grid."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.user_attrs: dict[str, Any] = {}
        self._params = params

    def _get(self, name: str, *_: Any, **__: Any) -> Any:
        return self._params[name]

    suggest_int = suggest_float = suggest_categorical = _get


def distinct_runs(spec: StudySpec, data_shape: Any) -> int | None:
    """How many distinct canonical runs the spec's search can propose; None for a continuum
    (or a grid too large to enumerate)."""
    try:
        grid = grid_space(spec)
    except ValueError:
        return None
    names = list(grid)
    if math.prod(len(v) for v in grid.values()) > MAX_ENUMERATED:
        return None
    keys = set()
    for values in itertools.product(*grid.values()):
        point = _GridPoint(dict(zip(names, values, strict=True)))
        model_cfg, train_cfg = trial_config(point, spec, data_shape)
        keys.add(config_key(model_cfg, train_cfg))
    return len(keys)


def runs_tried(study: optuna.Study) -> int:
    """Distinct runs (`run_key`s) the search trained, replicates aside."""
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return len(
        {
            t.user_attrs["run_key"]
            for t in finished
            if "run_key" in t.user_attrs and "replicate_of" not in t.user_attrs
        }
    )


def search_exhausted(
    study: optuna.Study, spec: StudySpec, space_size: int | None, repeats: int
) -> str | None:
    """Why the search should end after `repeats` proposals in a row of runs it already has
    (None: ask again). `space_size`: `distinct_runs`."""
    if space_size is not None and runs_tried(study) >= space_size:
        return f"search space exhausted: all {space_size} distinct configurations trained"
    if repeats >= REPEATS_IN_A_ROW:
        return (
            f"search ended early: the sampler proposed {repeats} configurations in a row that "
            "the study had already trained"
        )
    return None
