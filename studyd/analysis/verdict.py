"""The verdict: which dropout wins, by how much, and how sure we are — from plain trial records.

A record is a dict with `variant`, `placement`, `config_key` (canonical, without the seed),
`seed`, `value`, `replicate` (true for a seed replicate: a configuration trained again on a fresh
seed after the search chose it) and optionally `gap` and `params` (the trial's Optuna params).
Only finished trials belong here.

Statistics (stated so a reader can recompute them). Choosing a winner and testing it use
different trials, so the choice cannot inflate the winner:
- a group (a variant, or a placement) is represented by the configuration whose *search* trials
  (records without `replicate`) score best among its configurations with at least
  `min_replicates` replicate seeds; its score is the mean over those replicate seeds only
  (records of one seed are averaged first), with the CI mean ± t_{1−α/2, n−1}·s/√n. A group
  without such a configuration shows its best search configuration, `replicated: false`, ranks
  last and is never tested;
- the leader is the replicated group whose chosen configuration scored best in the search.
  Every other group is compared with it, and with `none`, by a paired t-test over the replicate
  seeds both share (t = d̄/(s_d/√n), n−1 df: scipy.stats.ttest_rel's). A pair is tested only
  with ≥ `min_replicates` shared seeds whose differences vary: identical differences on every
  seed have no error estimate (t = ±∞);
- claims follow a fixed sequence at level α (`_claim`): the leader beats `none`, then it beats
  every other group; the sequence stops at the first step that fails, so the verdict's claims
  are together wrong with probability at most α however many groups and configurations there
  are. bench/verdict_null.py measures it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scipy import special, stats

from studyd.analysis.importance import variant_importances

Record = Mapping[str, Any]
# Fewer pairs leave the t-test 1 degree of freedom: its variance estimate is too erratic (with
# accuracies on a few hundred images, two identical differences are common) to back a claim.
MIN_REPLICATES = 3
# Differences whose spread is below this share of the values' size are identical up to rounding.
_SAME = 1e-9


@lru_cache(maxsize=256)
def _t_quantile(q: float, df: int) -> float:
    return float(stats.t.ppf(q, df))


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """n, mean, sd and the t-interval mean ± t·sd/√n (None where n < 2)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "half_width": None, "low": None, "high": None}
    # Two-pass float formula: statistics.stdev is exact but 20× slower (Fractions), and the null
    # simulation calls this a few thousand times a second.
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    half = _t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "half_width": half,
        "low": mean - half,
        "high": mean + half,
    }


def paired_difference(
    a: Mapping[int, float],
    b: Mapping[int, float],
    confidence: float = 0.95,
    min_pairs: int = MIN_REPLICATES,
) -> dict[str, Any]:
    """a − b over the seeds both have: mean difference, its t-interval, and the paired t-test's
    p-value (None with fewer than `min_pairs` pairs or differences that do not vary)."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    out = {
        "n_pairs": len(diffs),
        "mean_diff": statistics.fmean(diffs) if diffs else None,
        "half_width": None,
        "p_value": None,
    }
    if len(diffs) < 2:
        return out
    ci = mean_ci(diffs, confidence)
    out["half_width"] = ci["half_width"]
    size = max(abs(x) for s in seeds for x in (a[s], b[s]))
    if len(diffs) >= min_pairs and ci["sd"] > _SAME * size:
        t = ci["mean"] / (ci["sd"] / math.sqrt(len(diffs)))
        out["p_value"] = float(2.0 * special.stdtr(len(diffs) - 1, -abs(t)))  # = 2·t.sf(|t|)
    return out


def _per_seed(records: Iterable[Record]) -> dict[int, float]:
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in records:
        by_seed[int(r["seed"])].append(float(r["value"]))
    return {s: statistics.fmean(v) for s, v in by_seed.items()}


def _group_label(record: Record, by: str) -> str:
    # A no-dropout network has no placement: it is the `none` baseline in both rankings.
    return "none" if record["variant"] == "none" else str(record[by])


@dataclass(frozen=True)
class ConfigScores:
    """A configuration's trials by role: the search's choose it, its replicates test it."""

    key: str
    records: list[Record]
    search: float | None  # mean of its search trials: what the choice may look at
    replicates: dict[int, float]  # seed → value over its replicate seeds: what the tests use
    first: int  # its lowest trial number (a search trial's when it has one): the tie rule

    def choice_key(self, sign: float, fallback: bool) -> tuple[bool, float, int, str]:
        """Best first; a tie goes to the earlier trial, as the study's best trial does.
        Without search trials, the replicates' mean may rank a fallback only."""
        score = self.search
        if score is None and fallback:
            score = statistics.fmean(_per_seed(self.records).values())
        return (score is None, 0.0 if score is None else -sign * score, self.first, self.key)


def _config_scores(records: list[Record]) -> list[ConfigScores]:
    configs: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        configs[str(r["config_key"])].append(r)
    out = []
    for key, rs in configs.items():
        searched = [r for r in rs if not r.get("replicate")]
        search = [float(r["value"]) for r in searched]
        out.append(
            ConfigScores(
                key=key,
                records=rs,
                search=statistics.fmean(search) if search else None,
                replicates=_per_seed(r for r in rs if r.get("replicate")),
                first=min(int(r.get("number", 0)) for r in searched or rs),
            )
        )
    return out


def _best_config(records: list[Record], sign: float, min_replicates: int, confidence: float):
    configs = _config_scores(records)
    eligible = [c for c in configs if len(c.replicates) >= min_replicates]
    replicated = bool(eligible)
    pool = eligible or configs
    chosen = min(pool, key=lambda c: c.choice_key(sign, fallback=not replicated))
    seeds = chosen.replicates if replicated else _per_seed(chosen.records)
    ci = mean_ci(list(seeds.values()), confidence)
    gaps = [float(r["gap"]) for r in chosen.records if r.get("gap") is not None]
    return {
        "config_key": chosen.key,
        "replicated": replicated,
        "n_configs": len(configs),
        "n_candidates": len(eligible),
        "n_trials": len(records),
        "search_value": chosen.search,
        "search_number": chosen.first,
        "n_seeds": ci["n"],
        "mean": ci["mean"],
        "sd": ci["sd"],
        "half_width": ci["half_width"],
        "ci_low": ci["low"],
        "ci_high": ci["high"],
        "gap_mean": statistics.fmean(gaps) if gaps else None,
    }, seeds


def _comparison(row, ref, seeds, sign: float, confidence: float, min_replicates: int):
    """`row`'s best config against `ref`'s: improvement > 0 means `row` is better."""
    if row["replicated"] and ref["replicated"]:
        cmp = paired_difference(
            seeds[row["group"]], seeds[ref["group"]], confidence, min_replicates
        )
    else:  # an unreplicated side is never tested
        cmp = {"n_pairs": 0, "mean_diff": None, "half_width": None, "p_value": None}
    cmp["paired"] = cmp["mean_diff"] is not None
    if not cmp["paired"]:
        cmp["mean_diff"] = row["mean"] - ref["mean"]
    cmp["improvement"] = sign * cmp["mean_diff"]
    cmp["different"] = cmp["p_value"] is not None and cmp["p_value"] < 1.0 - confidence
    cmp["claimed"] = False
    return cmp


def _leader(rows: list[dict[str, Any]], sign: float) -> dict[str, Any] | None:
    """The replicated group whose chosen config scored best in the search; a tie goes to the
    earlier trial (the study's best trial's rule), so the variant and the placement rankings
    lead with the same trial."""
    replicated = [row for row in rows if row["replicated"]]
    if not replicated:
        return None

    def key(row):
        score = row["search_value"]
        first = row["search_number"]
        return (score is None, 0.0 if score is None else -sign * score, first, row["group"])

    return min(replicated, key=key)


def _claim(rows: list[dict[str, Any]]) -> None:
    """Mark the comparisons the verdict may state, by fixed-sequence testing at level α.

    The leader was chosen on the search trials, before its replicates were looked at, so each
    step may test at α: (1) the leader beats `none`; then (2) it beats every other replicated
    group (an intersection–union test: each paired test at α). The first step that fails stops
    the sequence; whatever passed is claimed.
    """
    if not rows or not rows[0]["replicated"]:
        return
    leader, others = rows[0], [row for row in rows[1:] if row["replicated"]]
    steps = [[row for row in others if row["group"] == "none"], others]
    for step in (step for step in steps if step):
        if not all(r["vs_best"]["different"] and r["vs_best"]["improvement"] < 0 for r in step):
            return
        for r in step:
            r["vs_best"]["claimed"] = True
            if r["group"] == "none" and leader.get("vs_none"):
                leader["vs_none"]["claimed"] = True


def rank_groups(
    records: Sequence[Record],
    *,
    by: str = "variant",
    direction: str = "maximize",
    confidence: float = 0.95,
    min_replicates: int = MIN_REPLICATES,
) -> list[dict[str, Any]]:
    """Groups (variants or placements): the leader first, then the other replicated groups by
    their replicates' mean, then the unreplicated; each with its best config and paired tests
    against the leader (`vs_best`) and against `none` (`vs_none`)."""
    sign = 1.0 if direction == "maximize" else -1.0
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[_group_label(r, by)].append(r)
    rows, seeds = [], {}
    for name, rs in groups.items():
        row, seeds[name] = _best_config(rs, sign, min_replicates, confidence)
        rows.append({"group": name, **row})
    leader = _leader(rows, sign)
    rows.sort(
        key=lambda row: (
            not row["replicated"],
            row is not leader,
            -sign * row["mean"],
            row["group"],
        )
    )
    by_name = {row["group"]: row for row in rows}
    for row in rows:
        for field, ref in (("vs_best", rows[0]["group"]), ("vs_none", "none")):
            row[field] = (
                None
                if ref not in by_name or ref == row["group"]
                else _comparison(row, by_name[ref], seeds, sign, confidence, min_replicates)
            )
    _claim(rows)
    return rows


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pm(improvement: float, half: float | None, scale: float) -> str:
    return f"{scale * improvement:.1f}" + ("" if half is None else f"±{abs(scale) * half:.1f}")


def _margin(row: dict[str, Any], scale: float) -> str:
    """The leader's margin over `row` (its vs_best, seen from the leader)."""
    cmp = row["vs_best"]
    return _pm(-cmp["improvement"], cmp["half_width"], scale)


def verdict_sentence(
    rows: list[dict[str, Any]],
    *,
    kind: str = "variant",
    scale: float = 100.0,
    unit: str = "points",
    min_replicates: int = MIN_REPLICATES,
) -> str:
    """One sentence that says what `rank_groups`' claimed comparisons support, and no more.

    Margins are paired mean differences ± the half-width of their 95% t-interval, times `scale`
    (100: accuracy in points). Every claim comes from `_claim`'s sequence, so together they
    are wrong with probability at most α.
    """
    replicated = [row for row in rows if row["replicated"]]
    if len(rows) < 2:
        return (
            f"Only {rows[0]['group'] if rows else 'no'} {kind} was evaluated: nothing to compare."
        )
    if len(replicated) < 2:
        return (
            f"Not enough seed replicates to compare {kind}s: a verdict needs two {kind}s whose "
            f"best config was trained on {min_replicates} fresh seeds (set repeats: "
            f"{min_replicates} or more)."
        )
    leader, others = replicated[0], replicated[1:]
    name = leader["group"]
    untested = [row["group"] for row in rows if not row["replicated"]]
    tail = f" ({_names(untested)}: too few replicates to compare)" if untested else ""
    unclear = [row["group"] for row in others if not row["vs_best"]["claimed"]]
    none = [row for row in others if row["group"] == "none"]
    if not unclear:
        runner = others[0]
        text = (
            f"{name} is best; it beats the runner-up {runner['group']} by {_margin(runner, scale)}"
        )
        if none and runner is not none[0]:
            text += f" {unit} and none by {_margin(none[0], scale)}"
        return f"{text} {unit}{tail}."
    if none and none[0]["vs_best"]["claimed"]:
        return (
            f"{name} beats none by {_margin(none[0], scale)} {unit}; no evidence that it beats "
            f"{_names(unclear)}{tail}."
        )
    return (
        f"No evidence that one {kind} is best: the search's best, {name}, is not shown to beat "
        f"{_names(unclear)}{tail}."
    )


def study_verdict(
    records: Sequence[Record],
    *,
    direction: str = "maximize",
    confidence: float = 0.95,
    min_replicates: int = MIN_REPLICATES,
    scale: float = 100.0,
    unit: str = "points",
    seed: int = 0,
) -> dict[str, Any]:
    """Rankings by variant and by placement, their one-sentence verdicts, and importances."""
    opts = {"direction": direction, "confidence": confidence, "min_replicates": min_replicates}
    by_variant = rank_groups(records, by="variant", **opts)
    by_placement = rank_groups(records, by="placement", **opts)
    words = {"scale": scale, "unit": unit, "min_replicates": min_replicates}
    return {
        "direction": direction,
        "confidence": confidence,
        "n_trials": len(records),
        "by_variant": by_variant,
        "by_placement": by_placement,
        "verdict": verdict_sentence(by_variant, kind="variant", **words),
        "placement_verdict": verdict_sentence(by_placement, kind="placement", **words),
        "importances": variant_importances(records, direction=direction, seed=seed),
    }
