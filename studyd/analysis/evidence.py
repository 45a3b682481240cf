"""A study's evidence from its finished trials: verdict with CIs, diagnostics per variant, the
Pareto front. Pure functions over plain trial dicts, so the API and tests compute the same thing.

A trial dict has `number`, `values` (every objective), `params`, `user_attrs` (at least
SUMMARY_ATTRS) and `feasible` (all constraint values ≤ 0).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from storage.trial_scan import scan_trials
from studyd.analysis.auto_repeats import plan_more_seeds, undecided_sentence
from studyd.analysis.counted import candidates, trained
from studyd.analysis.coverage import INFEASIBLE_ATTR, plural, variant_coverage
from studyd.analysis.importance import variant_importances
from studyd.analysis.verdict import MIN_REPLICATES, rank_groups, verdict_sentence
from studyd.spec.repeats import AutoRepeats

logger = logging.getLogger(__name__)

# The user attributes the evidence reads (the API fetches only these).
DIAGNOSTIC_MEANS: tuple[str, ...] = (
    "train_acc",
    "val_acc",
    "gap",
    "val_ece",
    "val_nll",
    "mc_ece",
    "train_eval_sym_kl",
    "ms_per_1k",
)
SUMMARY_ATTRS: tuple[str, ...] = (
    "variant",
    "placement",
    "config_key",
    "train",
    "replicate_of",
    "reused_from",
    *DIAGNOSTIC_MEANS,
)
Trial = Mapping[str, Any]


def verdict_record(trial: Trial) -> dict[str, Any]:
    """What `analysis.verdict` reads: variant, placement, config_key, seed, value, gap, params,
    and whether the trial is a seed replicate (chosen by the search, so fit to test it)."""
    attrs = trial["user_attrs"]
    train = attrs.get("train") if isinstance(attrs.get("train"), dict) else {}
    return {
        "number": trial["number"],
        "variant": attrs.get("variant") or trial["params"].get("variant") or "?",
        "placement": attrs.get("placement") or trial["params"].get("placement") or "?",
        # Trials recorded before canonical keys existed are each their own configuration.
        "config_key": attrs.get("config_key") or f"trial-{trial['number']}",
        "seed": int(train.get("seed", 0)),
        "replicate": "replicate_of" in attrs,
        "value": float(trial["values"][0]),
        "gap": attrs.get("gap"),
        "params": trial["params"],
    }


def counted_records(counted: Sequence[Trial]) -> list[dict[str, Any]]:
    """The verdict's records of the counted trials (`counted.candidates`). A reused trial repeats
    its original's result: counting it again would weigh that run twice in importances and
    inflate a variant's trial count (the verdict averages a seed's values)."""
    return [verdict_record(t) for t in trained(counted)]


def with_undecided(
    verdict: str | None,
    records: Sequence[Mapping[str, Any]],
    direction: str,
    auto: AutoRepeats,
) -> str | None:
    """`repeats: {auto: true}`: the verdict, then per undecided comparison about how many more
    seeds would decide it (`analysis.auto_repeats`; nothing when every one is decided)."""
    plan = plan_more_seeds(
        records, direction=direction, margin=auto.margin, max_seeds=auto.max_seeds
    )
    undecided = undecided_sentence(plan)
    if undecided is None:
        return verdict
    return undecided if not verdict else f"{verdict} {undecided}"


def rankings(
    records: Sequence[Mapping[str, Any]], *, direction: str, confidence: float = 0.95
) -> dict[str, Any]:
    """By-variant and by-placement rankings and their one-sentence verdicts."""
    opts = {"direction": direction, "confidence": confidence}
    by_variant = rank_groups(records, by="variant", **opts)
    by_placement = rank_groups(records, by="placement", **opts)
    replicated = sum(row["replicated"] for row in by_variant)
    return {
        "by_variant": by_variant,
        "by_placement": by_placement,
        "verdict": verdict_sentence(by_variant, kind="variant") if replicated >= 2 else None,
        "placement_verdict": (
            verdict_sentence(by_placement, kind="placement")
            if sum(row["replicated"] for row in by_placement) >= 2
            else None
        ),
    }


def value_stats(trials: Sequence[Trial], by: str, direction: str) -> list[dict[str, Any]]:
    """Per variant (or placement): trained runs `n`, reused trials `n_reused`, best and median
    value over the trained runs; highest median first (lowest when minimising)."""
    values: dict[str, list[float]] = defaultdict(list)
    reused: dict[str, int] = defaultdict(int)
    for t in trials:
        name = str(verdict_record(t)[by])
        if "reused_from" in t["user_attrs"]:
            reused[name] += 1
        else:
            values[name].append(float(t["values"][0]))
    pick = max if direction == "maximize" else min
    rows = [
        {
            "group": name,
            "n": len(xs),
            "n_reused": reused[name],
            "best": pick(xs),
            "median": statistics.median(xs),
        }
        for name, xs in values.items()
    ]
    return sorted(rows, key=lambda r: r["median"], reverse=direction == "maximize")


def diagnostics_by_variant(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """Mean of each diagnostic over a variant's trained runs (a reused trial counts once)."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for t in trained(trials):
        groups[verdict_record(t)["variant"]].append(t["user_attrs"])
    rows = []
    for variant, attrs in groups.items():
        row: dict[str, Any] = {"variant": variant, "n": len(attrs)}
        for key in DIAGNOSTIC_MEANS:
            xs = [float(a[key]) for a in attrs if isinstance(a.get(key), int | float)]
            xs = [x for x in xs if math.isfinite(x)]
            row[key] = statistics.fmean(xs) if xs else None
        rows.append(row)
    # Largest train−val gap first: what dropout exists to shrink.
    return sorted(rows, key=lambda r: -(r["gap"] if r["gap"] is not None else -math.inf))


def headline_verdict(verdict: str | None, variants: Sequence[Mapping[str, Any]]) -> str | None:
    """The study's one-line answer: the paired tests' verdict, else the medians with no claim.

    The summary and the dashboard note both say this; the note's own fallback said "no seed
    replicates" to a study with six of them (too few per configuration for the tests).
    """
    if verdict or not variants:
        return verdict or None
    top = variants[0]
    described = f"{top['group']} ({top['median']:.4g} over {plural(top['n'], 'trained run')}"
    if len(variants) == 1:
        return f"Only {described}) has complete trials."
    other = variants[1]
    return (
        f"Not enough seed replicates for a verdict (each variant's best config needs "
        f"{MIN_REPLICATES} fresh seeds: set repeats: {MIN_REPLICATES} or more); highest median "
        f"so far: {described}; next {other['group']} {other['median']:.4g})."
    )


def best_trial_note(
    best: Mapping[str, Any] | None, rankings: Mapping[str, Any], stats: Sequence[Mapping[str, Any]]
) -> str | None:
    """One sentence when the single best trial is not of the variant the summary leads with:
    both, and why they differ. `best` has `number`, `value`, `variant`; the leader is the
    verdict's (its first by-variant row) when there is one, else the highest median."""
    if not best or best.get("variant") is None or best.get("value") is None:
        return None
    variant, ranked = best["variant"], rankings.get("by_variant") or []
    head = f"The best single trial, #{best['number']} ({variant}, {best['value']:.4g}), is not of"
    if rankings.get("verdict") and ranked:
        if ranked[0]["group"] == variant:
            return None
        replicated = any(r["group"] == variant and r["replicated"] for r in ranked)
        return (
            f"{head} the verdict's leader {ranked[0]['group']}: the verdict scores each variant's "
            "chosen config by its mean over fresh replicate seeds, while one trial also carries "
            "its seed's luck" + ("" if replicated else f" ({variant} has no replicated config)")
        ) + "."
    if not stats or stats[0]["group"] == variant:
        return None
    return (
        f"{head} {stats[0]['group']}, the variant with the highest median: a median describes "
        "all of a variant's trained runs, while one trial can be a lucky draw."
    )


def pareto_front(trials: Sequence[Trial], directions: Sequence[str]) -> list[dict[str, Any]]:
    """Feasible complete trials no other feasible trial dominates (each objective in its own
    direction: at least as good on all, better on one), by first objective, best first."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    points = [
        (t, [s * v for s, v in zip(signs, t["values"], strict=True)])
        for t in trials
        if t["feasible"]
        and len(t["values"]) == len(signs)
        and all(v is not None and math.isfinite(v) for v in t["values"])
    ]
    points.sort(key=lambda p: p[1])
    front: list[tuple[Trial, list[float]]] = []
    for trial, costs in points:
        # Sorted lexicographically: only an earlier point can dominate a later one.
        dominated = any(
            all(a <= b for a, b in zip(f, costs, strict=True)) and f != costs for _, f in front
        )
        if not dominated:
            front.append((trial, costs))
    return [
        {
            "number": t["number"],
            "values": list(t["values"]),
            "variant": verdict_record(t)["variant"],
            "placement": verdict_record(t)["placement"],
            "config_key": t["user_attrs"].get("config_key"),
        }
        for t, _ in front
    ]


def finite(data: Any) -> Any:
    """NaN and ±inf → None, recursively (JSON has neither)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def study_evidence(
    engine: Engine,
    optuna_name: str,
    *,
    directions: Sequence[str],
    confidence: float = 0.95,
    importance_max_trials: int = 300,
    seed: int = 0,
    auto_repeats: AutoRepeats | None = None,
) -> dict[str, Any]:
    """Everything above over a study's complete trials, read in keyset pages (small attributes
    only: no curves). fANOVA sees the `importance_max_trials` most recent (its cost grows fast).
    With `auto_repeats`, the verdict ends with the seeds each undecided comparison still needs."""
    trials: list[dict[str, Any]] = []
    for page in scan_trials(engine, optuna_name, states=["complete"], attr_keys=SUMMARY_ATTRS):
        trials += [
            {
                "number": t.number,
                "values": t.values,
                "params": t.params,
                "user_attrs": t.user_attrs,
                "feasible": t.counts_as_feasible,
            }
            for t in page
            if t.values and t.values[0] is not None and math.isfinite(t.values[0])
        ]
    n_feasible = sum(t["feasible"] for t in trials)
    # Without constraints (or with none met yet) every trial counts.
    counted = candidates(trials)
    records = counted_records(counted)
    out = rankings(records, direction=directions[0], confidence=confidence)
    if auto_repeats is not None:
        out["verdict"] = with_undecided(out["verdict"], records, directions[0], auto_repeats)
    try:
        out["variant_importances"] = variant_importances(
            records[-importance_max_trials:], direction=directions[0], seed=seed
        )
    except (ValueError, RuntimeError):
        # Optuna's fANOVA refuses some degenerate spaces; the rest of the evidence stands.
        logger.exception("%s: variant importances unavailable", optuna_name)
        out["variant_importances"] = None
    out["diagnostics"] = diagnostics_by_variant(counted)
    out["variant_stats"] = value_stats(counted, "variant", directions[0])
    out["placement_stats"] = value_stats(counted, "placement", directions[0])
    out["pareto_front"] = pareto_front(trials, directions) if len(directions) > 1 else None
    out["n_feasible"] = n_feasible
    out["n_replicates"] = sum("replicate_of" in t["user_attrs"] for t in trials)
    out["n_reused"] = sum("reused_from" in t["user_attrs"] for t in trials)
    out["confidence"] = confidence
    return finite(out)


# What `coverage.variant_coverage` reads of every trial; a pruned trial's curve gives its epochs.
COVERAGE_ATTRS: tuple[str, ...] = ("variant", "replicate_of", "reused_from", INFEASIBLE_ATTR)


def study_coverage(
    engine: Engine, optuna_name: str, requested: Sequence[str]
) -> list[dict[str, Any]]:
    """`coverage.variant_coverage` over every trial of the study (keyset pages, small
    attributes; the curves of pruned trials only), as dicts."""
    epochs: dict[int, int] = {}
    for page in scan_trials(engine, optuna_name, states=["pruned"], attr_keys=("curve",)):
        epochs.update({t.number: len(t.user_attrs.get("curve") or []) for t in page})
    trials = [
        {
            "state": t.state.lower(),
            "user_attrs": t.user_attrs,
            "constraints": t.constraints,
            "epochs": epochs.get(t.number),
        }
        for page in scan_trials(engine, optuna_name, attr_keys=COVERAGE_ATTRS)
        for t in page
    ]
    return [c.as_dict() for c in variant_coverage(requested, trials)]
