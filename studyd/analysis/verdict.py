"""The verdict: which dropout wins, by how much, and how sure we are — from plain trial records.

A record is a dict with `variant`, `placement`, `config_key` (canonical, without the seed),
`seed`, `value` and optionally `gap` and `params` (the trial's Optuna params). Only finished
trials belong here.

Statistics (stated so a reader can recompute them):
- a configuration's score is the mean over its seeds (records of one seed are averaged first);
  its CI is mean ± t_{1−α/2, n−1}·s/√n;
- a group (a variant, or a placement) is represented by its best configuration with at least
  `min_seeds` seeds (groups with fewer rank last, marked `replicated: false`);
- each group's best configuration is compared with the overall best and with `none`'s best by a
  paired t-test over the seeds both share (scipy.stats.ttest_rel); the p-values of each family
  are Holm-adjusted, and a difference counts only when the adjusted p < α. Without two shared
  seeds, two CIs that do not overlap count as a difference and overlapping ones as none.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scipy import stats

from studyd.analysis.importance import variant_importances

Record = Mapping[str, Any]


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """n, mean, sd and the t-interval mean ± t·sd/√n (None where n < 2)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "half_width": None, "low": None, "high": None}
    sd = statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "half_width": half,
        "low": mean - half,
        "high": mean + half,
    }


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95
) -> dict[str, Any]:
    """a − b over the seeds both have: mean difference, its t-interval and ttest_rel's p-value."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    if len(diffs) < 2:
        mean = statistics.fmean(diffs) if diffs else None
        return {"n_pairs": len(diffs), "mean_diff": mean, "half_width": None, "p_value": None}
    ci = mean_ci(diffs, confidence)
    if ci["sd"] == 0:
        # Identical differences on every seed: t is 0/0 or ±∞; ttest_rel would return NaN.
        p = 1.0 if ci["mean"] == 0 else 0.0
    else:
        p = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return {
        "n_pairs": len(diffs),
        "mean_diff": ci["mean"],
        "half_width": ci["half_width"],
        "p_value": p,
    }


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (None entries are skipped and stay None)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m, running = len(present), 0.0
    adjusted: list[float | None] = [None] * len(p_values)
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _per_seed(records: Iterable[Record]) -> dict[int, float]:
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in records:
        by_seed[int(r["seed"])].append(float(r["value"]))
    return {s: statistics.fmean(v) for s, v in by_seed.items()}


def _group_label(record: Record, by: str) -> str:
    # A no-dropout network has no placement: it is the `none` baseline in both rankings.
    return "none" if record["variant"] == "none" else str(record[by])


def _best_config(records: list[Record], sign: float, min_seeds: int, confidence: float):
    configs: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        configs[str(r["config_key"])].append(r)
    scored = []
    for key, rs in configs.items():
        seeds = _per_seed(rs)
        ci = mean_ci(list(seeds.values()), confidence)
        scored.append((ci["n"] >= min_seeds, sign * ci["mean"], key, seeds, ci, rs))
    replicated, _, key, seeds, ci, rs = max(scored, key=lambda s: s[:2])
    gaps = [float(r["gap"]) for r in rs if r.get("gap") is not None]
    return {
        "config_key": key,
        "replicated": replicated,
        "n_configs": len(configs),
        "n_trials": len(records),
        "n_seeds": ci["n"],
        "mean": ci["mean"],
        "sd": ci["sd"],
        "half_width": ci["half_width"],
        "ci_low": ci["low"],
        "ci_high": ci["high"],
        "gap_mean": statistics.fmean(gaps) if gaps else None,
    }, seeds


def _differs(cmp: dict[str, Any], a: dict[str, Any], b: dict[str, Any], alpha: float) -> bool:
    if cmp["p_holm"] is not None:
        return cmp["p_holm"] < alpha
    if a["half_width"] is None or b["half_width"] is None:
        return False
    return a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"]


def _compare(rows, seeds, ref: str | None, field: str, sign: float, confidence: float) -> None:
    alpha = 1.0 - confidence
    by_name = {row["group"]: row for row in rows}
    for row in rows:
        if ref is None or row["group"] == ref:
            row[field] = None
            continue
        cmp = paired_difference(seeds[row["group"]], seeds[ref], confidence)
        # improvement > 0: this group's best config is better than the reference's.
        cmp["paired"] = cmp["mean_diff"] is not None
        if not cmp["paired"]:
            # No shared seed: the difference of the two means, without an interval.
            cmp["mean_diff"] = row["mean"] - by_name[ref]["mean"]
        cmp["improvement"] = sign * cmp["mean_diff"]
        row[field] = cmp
    compared = [row[field] for row in rows if row[field] is not None]
    for cmp, adj in zip(compared, holm([c["p_value"] for c in compared]), strict=True):
        cmp["p_holm"] = adj
    for row in rows:
        if row[field] is not None:
            row[field]["different"] = _differs(row[field], row, by_name[ref], alpha)


def rank_groups(
    records: Sequence[Record],
    *,
    by: str = "variant",
    direction: str = "maximize",
    confidence: float = 0.95,
    min_seeds: int = 2,
) -> list[dict[str, Any]]:
    """Groups (variants or placements) best first, each with its best config and paired tests."""
    sign = 1.0 if direction == "maximize" else -1.0
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[_group_label(r, by)].append(r)
    rows, seeds = [], {}
    for name, rs in groups.items():
        row, seeds[name] = _best_config(rs, sign, min_seeds, confidence)
        rows.append({"group": name, **row})
    rows.sort(key=lambda row: (not row["replicated"], -sign * row["mean"], row["group"]))
    best = rows[0]["group"] if rows else None
    _compare(rows, seeds, best, "vs_best", sign, confidence)
    _compare(rows, seeds, "none" if "none" in seeds else None, "vs_none", sign, confidence)
    return rows


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pm(cmp: dict[str, Any], scale: float) -> str:
    half = cmp["half_width"]
    return f"{scale * cmp['improvement']:.1f}" + (
        "" if half is None else f"±{abs(scale) * half:.1f}"
    )


def _against_none(challengers: list[dict[str, Any]], scale: float, unit: str) -> list[str]:
    beat = [r for r in challengers if r["vs_none"]["different"] and r["vs_none"]["improvement"] > 0]
    if beat and len(beat) == len(challengers):
        subject = {1: "it beats", 2: "both beat"}.get(len(beat), f"all {len(beat)} beat")
        return [f"{subject} none by {' and '.join(_pm(r['vs_none'], scale) for r in beat)} {unit}"]
    parts = []
    for r in challengers:
        if r in beat:
            parts.append(f"{r['group']} beats none by {_pm(r['vs_none'], scale)} {unit}")
        elif r["vs_none"]["different"]:
            parts.append(f"{r['group']} is worse than none by {_pm(r['vs_none'], -scale)} {unit}")
        else:
            parts.append(f"no evidence that {r['group']} beats none")
    return parts


def verdict_sentence(
    rows: list[dict[str, Any]], *, kind: str = "variant", scale: float = 100.0, unit: str = "points"
) -> str:
    """One sentence that says what `rank_groups`' numbers support, and no more.

    Margins are paired mean differences ± the half-width of their (unadjusted) t-interval, times
    `scale` (100: accuracy in points); "tied" and "beats" follow the Holm-adjusted p-values.
    """
    replicated = [row for row in rows if row["replicated"]]
    if len(rows) < 2:
        return (
            f"Only {rows[0]['group'] if rows else 'no'} {kind} was evaluated: nothing to compare."
        )
    if len(replicated) < 2:
        return (
            f"Not enough seed replicates to compare {kind}s: "
            "re-run the top configs with repeats ≥ 2."
        )
    best = replicated[0]
    tied = [best] + [row for row in replicated[1:] if not row["vs_best"]["different"]]
    names = [row["group"] for row in tied]
    if len(tied) == len(replicated):
        return f"No evidence of a difference between {_names(names)}."
    if len(tied) > 1:
        parts = [f"{_names(names)} are tied (no evidence of a difference)"]
    else:
        runner = replicated[1]
        gain = dict(runner["vs_best"], improvement=-runner["vs_best"]["improvement"])
        parts = [
            f"{best['group']} is best; it beats the runner-up {runner['group']} by "
            f"{_pm(gain, scale)} {unit}"
        ]
    runner_up_is_none = len(tied) == 1 and replicated[1]["group"] == "none"
    challengers = [row for row in tied if row["group"] != "none" and row.get("vs_none")]
    if challengers and "none" not in names and not runner_up_is_none:
        parts += _against_none(challengers, scale, unit)
    return "; ".join(parts) + "."


def study_verdict(
    records: Sequence[Record],
    *,
    direction: str = "maximize",
    confidence: float = 0.95,
    min_seeds: int = 2,
    scale: float = 100.0,
    unit: str = "points",
    seed: int = 0,
) -> dict[str, Any]:
    """Rankings by variant and by placement, their one-sentence verdicts, and importances."""
    opts = {"direction": direction, "confidence": confidence, "min_seeds": min_seeds}
    by_variant = rank_groups(records, by="variant", **opts)
    by_placement = rank_groups(records, by="placement", **opts)
    return {
        "direction": direction,
        "confidence": confidence,
        "n_trials": len(records),
        "by_variant": by_variant,
        "by_placement": by_placement,
        "verdict": verdict_sentence(by_variant, kind="variant", scale=scale, unit=unit),
        "placement_verdict": verdict_sentence(
            by_placement, kind="placement", scale=scale, unit=unit
        ),
        "importances": variant_importances(records, direction=direction, seed=seed),
    }
