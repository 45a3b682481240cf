"""Variant-aware importances: fANOVA within each variant over its own parameters.

Optuna's evaluators (fANOVA included) only see parameters present in every trial, so over a
whole study a variant's own knobs (R-Dropout's α, Multi-Sample's K, Standout's α/β) are silently
left out. Here each variant's trials form their own in-memory study, where those knobs are
present in every trial; the variant itself is scored by fANOVA over the parameters all trials
share, and by its marginal effect (its trials' mean value minus the grand mean).

Distributions are rebuilt from the observed values (fANOVA ignores log scales and steps:
Optuna fits it with transform_log=False), so plain records are enough.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

Record = Mapping[str, Any]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def infer_distribution(values: Sequence[Any]) -> BaseDistribution | None:
    """The narrowest distribution holding `values`; None when they are all equal (no signal)."""
    distinct = set(values)
    if len(distinct) < 2:
        return None
    if all(_is_number(v) for v in values):
        if all(isinstance(v, int) for v in values):
            return IntDistribution(min(values), max(values))
        return FloatDistribution(float(min(values)), float(max(values)))
    return CategoricalDistribution(sorted(distinct, key=repr))


def param_importances(
    trials: Sequence[tuple[Mapping[str, Any], float]],
    *,
    direction: str = "maximize",
    seed: int = 0,
) -> dict[str, Any]:
    """fANOVA over the parameters every trial has; constant ones are listed, not scored."""
    shared = set.intersection(*(set(p) for p, _ in trials)) if trials else set()
    every = set().union(*(set(p) for p, _ in trials)) if trials else set()
    dists = {}
    for name in sorted(shared):
        dist = infer_distribution([p[name] for p, _ in trials])
        if dist is not None:
            dists[name] = dist
    out: dict[str, Any] = {
        "n_trials": len(trials),
        "params": {},
        "constant_params": sorted(shared - set(dists)),
        # Present in some trials only (e.g. the rate of a layer that shallower nets lack).
        "conditional_params": sorted(every - shared),
    }
    if not dists or len(trials) < 2:
        return out
    if len({float(v) for _, v in trials}) < 2:
        # Every trial scored the same: nothing to explain (fANOVA would raise on zero variance).
        out["params"] = dict.fromkeys(dists, 0.0)
        return out
    study = optuna.create_study(direction=direction)
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={n: p[n] for n in dists}, distributions=dists, value=float(v)
            )
            for p, v in trials
        ]
    )
    # Imported here: optuna.importance brings scikit-learn and pandas (0.3 s), which every
    # process that imports the analysis (a worker at start) would pay before any study is done.
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    evaluator = FanovaImportanceEvaluator(seed=seed)
    scores = get_param_importances(study, evaluator=evaluator, params=sorted(dists))
    out["params"] = {name: float(score) for name, score in scores.items()}
    return out


def variant_importances(
    records: Sequence[Record],
    *,
    direction: str = "maximize",
    seed: int = 0,
    min_trials: int = 5,
) -> dict[str, Any]:
    """{"overall": fANOVA incl. `variant`, "variants": {v: fANOVA within v + marginal effect}}.

    Records need `variant`, `value` and `params` (a trial's Optuna params); variants with fewer
    than `min_trials` trials get their marginal effect but no fANOVA.
    """
    records = [r for r in records if r.get("params") is not None]
    if not records:
        return {"overall": None, "variants": {}}
    grand = statistics.fmean(float(r["value"]) for r in records)
    overall = param_importances(
        [({**r["params"], "variant": r["variant"]}, r["value"]) for r in records],
        direction=direction,
        seed=seed,
    )
    by_variant: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_variant[str(r["variant"])].append(r)
    variants = {}
    for name, rs in sorted(by_variant.items()):
        mean = statistics.fmean(float(r["value"]) for r in rs)
        own = [({k: v for k, v in r["params"].items() if k != "variant"}, r["value"]) for r in rs]
        result = (
            param_importances(own, direction=direction, seed=seed)
            if len(rs) >= min_trials
            else {
                "n_trials": len(rs),
                "params": {},
                "constant_params": [],
                "conditional_params": [],
            }
        )
        variants[name] = {**result, "marginal_mean": mean, "marginal_effect": mean - grand}
    return {"overall": overall, "variants": variants}
