"""Which variant works across several studies (datasets): ranks, a Friedman test, a post-hoc.

The procedure is Demšar's (J. Demšar, "Statistical Comparisons of Classifiers over Multiple Data
Sets", JMLR 7, 2006), with studies as the data sets and dropout variants as the classifiers:
- per study, each shared variant's score is its verdict row's mean (`analysis.verdict`): the
  mean over the replicate seeds of the configuration the search chose for it, or, for a variant
  without replicates, its chosen configuration's value (noisier; the answer says so);
- within a study the variants are ranked, 1 = best in the study's direction, ties averaged;
- with k ≥ 3 variants: Friedman's test of "every variant ranks alike". Demšar reports χ² and
  Iman and Davenport's F = (N−1)χ²/(N(k−1) − χ²) on (k−1, (k−1)(N−1)) df (both shown), but
  both are large-N approximations; with the few studies a researcher has, the p-value here is
  the permutation test's (each study's ranks shuffled: exact under the null, up to Monte Carlo
  error). Only when it rejects at α are pairs told apart, by the Nemenyi test: two
  variants differ when their average ranks differ by more than the critical difference
  CD = q_α·√(k(k+1)/(6N)), q_α the studentized range quantile over √2 — every pair at once, so
  the family-wise error stays at α;
- with k = 2: the Wilcoxon signed-rank test over the studies' paired improvements (§3.1.3).
Scores from different metrics are never pooled: only ranks (or, for k = 2, signed differences in
each study's own direction) cross studies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Demšar's tables start at 2 data sets; with fewer than 3 studies no rank test can reject at
# 0.05 (Friedman's exact p ≥ 1/3 for N = 2, k = 3), so such a comparison could only say "no".
MIN_STUDIES = 3
MIN_VARIANTS = 2
MAX_STUDIES = 50
# The Friedman test's p by shuffling each study's ranks: 20 000 draws put its Monte Carlo
# standard error at ≤ 0.0016 near α = 0.05.
PERMUTATIONS = 20_000
PERMUTATION_CHUNK = 2_000
PERMUTATION_SEED = 0


class ComparisonRefused(ValueError):
    """The studies cannot be compared; the message says why and what to pick instead."""


class ComparisonNotReady(ComparisonRefused):
    """The request is well formed but the studies' data cannot be ranked yet (no complete
    trials, too few shared variants): a state of the studies, not a bad request."""


@dataclass(frozen=True)
class VariantScore:
    """One variant in one study: what its verdict row says."""

    mean: float
    n_seeds: int
    replicated: bool


@dataclass(frozen=True)
class StudyScores:
    """A study's variants and their scores, in the study's own direction."""

    study_id: int
    name: str
    dataset: str
    direction: str
    variants: Mapping[str, VariantScore] = field(default_factory=dict)


def shared_variants(studies: Sequence[StudyScores]) -> list[str]:
    """Variants scored in every study, in the first study's order."""
    common = set(studies[0].variants)
    for study in studies[1:]:
        common &= set(study.variants)
    return [v for v in studies[0].variants if v in common]


def check_comparable(studies: Sequence[StudyScores], alpha: float) -> list[str]:
    """The shared variants; `ComparisonRefused` with the reason when there is nothing to rank."""
    ids = [s.study_id for s in studies]
    if len(set(ids)) != len(ids):
        raise ComparisonRefused(f"each study may be named once (got {ids})")
    if not MIN_STUDIES <= len(studies) <= MAX_STUDIES:
        raise ComparisonRefused(
            f"compare needs {MIN_STUDIES} to {MAX_STUDIES} studies (got {len(studies)}): with "
            f"fewer, no rank test can tell variants apart at α={alpha:g}"
        )
    empty = [s.study_id for s in studies if not s.variants]
    if empty:
        raise ComparisonNotReady(
            f"study {', '.join(map(str, empty))} has no complete trials to score: wait for it "
            "to finish or leave it out"
        )
    shared = shared_variants(studies)
    if len(shared) < MIN_VARIANTS:
        have = "; ".join(f"{s.study_id}: {', '.join(s.variants)}" for s in studies)
        raise ComparisonNotReady(
            f"the studies share {len(shared)} variant{'s' * (len(shared) != 1)}"
            f"{' (' + shared[0] + ')' if shared else ''}; compare needs {MIN_VARIANTS} measured "
            f"in every study (variants by study: {have})"
        )
    return shared


def _ranks(study: StudyScores, shared: Sequence[str]) -> list[float]:
    from scipy.stats import rankdata

    sign = -1.0 if study.direction == "maximize" else 1.0
    return [float(r) for r in rankdata([sign * study.variants[v].mean for v in shared])]


def _rank_spread(column_sums, n: int, k: int):
    """Σⱼ (Rⱼ − N(k+1)/2)²: Friedman's χ² up to a constant, over the rank sums Rⱼ."""
    return ((column_sums - n * (k + 1) / 2) ** 2).sum(axis=-1)


def friedman_permutation_p(ranks: list[list[float]], draws: int = PERMUTATIONS) -> float:
    """P(spread ≥ observed) when each study's ranks are shuffled: exact up to Monte Carlo error
    (seeded), where the χ² and F approximations are not (N = 3, k = 3, χ² = 4.67: exact p 0.194,
    Iman–Davenport's 0.049)."""
    import numpy as np

    observed_ranks = np.asarray(ranks)
    n, k = observed_ranks.shape
    observed = _rank_spread(observed_ranks.sum(axis=0), n, k)
    rng = np.random.default_rng(PERMUTATION_SEED)
    at_least, done = 0, 0
    while done < draws:
        size = min(PERMUTATION_CHUNK, draws - done)
        shuffled = rng.permuted(np.broadcast_to(observed_ranks, (size, n, k)), axis=2)
        at_least += int((_rank_spread(shuffled.sum(axis=1), n, k) >= observed - 1e-9).sum())
        done += size
    return (1 + at_least) / (1 + draws)


def _friedman(ranks: list[list[float]], k: int, alpha: float) -> dict[str, Any]:
    """Friedman's χ² (scipy, tie-corrected) and Iman–Davenport's F as Demšar reports them; the
    gate is the permutation p, since with a handful of studies both approximations are off."""
    from scipy import stats

    n = len(ranks)
    columns = [[row[j] for row in ranks] for j in range(k)]
    chi2, p_chi2 = stats.friedmanchisquare(*columns)
    if not math.isfinite(chi2):  # every score tied within every study: nothing to test
        chi2, p_chi2 = 0.0, 1.0
    denominator = n * (k - 1) - chi2
    f = None if denominator <= 0 else (n - 1) * chi2 / denominator
    p = friedman_permutation_p(ranks)
    return {
        "test": "friedman",
        "statistic": float(chi2),
        "p_value": p,
        "chi2_p_value": float(p_chi2),
        "f": f,
        "f_p_value": None if f is None else float(stats.f.sf(f, k - 1, (k - 1) * (n - 1))),
        "rejected": p < alpha,
    }


def critical_difference(k: int, n: int, alpha: float) -> float:
    """Nemenyi's CD = q_α·√(k(k+1)/(6N)), q_α = studentized range quantile / √2 (Demšar eq. 5)."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, math.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


def _nemenyi_pairs(
    shared: Sequence[str], mean_ranks: Mapping[str, float], n: int, cd: float, gate: bool
) -> list[dict[str, Any]]:
    from scipy.stats import studentized_range

    k = len(shared)
    se = math.sqrt(k * (k + 1) / (6 * n))
    pairs = []
    for i, a in enumerate(shared):
        for b in shared[i + 1 :]:
            diff = mean_ranks[b] - mean_ranks[a]
            p = float(studentized_range.sf(abs(diff) / se * math.sqrt(2), k, math.inf))
            # Demšar's protocol: the post-hoc speaks only after the Friedman test rejects.
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "rank_diff": diff,
                    "p_value": p,
                    "different": gate and abs(diff) > cd,
                }
            )
    return pairs


def _wilcoxon(studies: Sequence[StudyScores], a: str, b: str, alpha: float) -> dict[str, Any]:
    """a − b in each study's direction (> 0: a better), Wilcoxon signed-rank over studies."""
    from scipy import stats

    diffs = [
        (1.0 if s.direction == "maximize" else -1.0) * (s.variants[a].mean - s.variants[b].mean)
        for s in studies
    ]
    if all(d == 0 for d in diffs):
        p = 1.0
    else:
        p = float(stats.wilcoxon(diffs, zero_method="zsplit").pvalue)
    return {
        "test": "wilcoxon",
        "statistic": None,
        "p_value": p,
        "rejected": p < alpha,
        "differences": diffs,
    }


def compare_studies(studies: Sequence[StudyScores], alpha: float = 0.05) -> dict[str, Any]:
    """Ranks, the omnibus test, the post-hoc pairs, the CD and a plain-words answer."""
    shared = check_comparable(studies, alpha)
    k, n = len(shared), len(studies)
    ranks = [_ranks(s, shared) for s in studies]
    mean_ranks = {v: sum(row[j] for row in ranks) / n for j, v in enumerate(shared)}
    order = sorted(shared, key=lambda v: (mean_ranks[v], v))
    if k >= 3:
        test = _friedman(ranks, k, alpha)
        cd = critical_difference(k, n, alpha)
        pairs = _nemenyi_pairs(order, mean_ranks, n, cd, test["rejected"])
        posthoc = "nemenyi"
    else:
        test = _wilcoxon(studies, order[0], order[1], alpha)
        cd = None
        pairs = [
            {
                "a": order[0],
                "b": order[1],
                "rank_diff": mean_ranks[order[1]] - mean_ranks[order[0]],
                "p_value": test["p_value"],
                "different": test["rejected"],
            }
        ]
        posthoc = None
    result = {
        "alpha": alpha,
        "variants": order,
        "left_out": _left_out(studies, shared),
        "studies": [_study_row(s, shared, r) for s, r in zip(studies, ranks, strict=True)],
        "mean_ranks": {v: mean_ranks[v] for v in order},
        "test": test,
        "posthoc": posthoc,
        "critical_difference": cd,
        "pairs": pairs,
        "unreplicated": sorted(
            {f"{s.study_id}:{v}" for s in studies for v in shared if not s.variants[v].replicated}
        ),
    }
    result["answer"] = answer(result)
    return result


def _left_out(studies: Sequence[StudyScores], shared: Sequence[str]) -> dict[str, list[int]]:
    """Variants some studies measured but not all: which studies lack them."""
    everything = {v for s in studies for v in s.variants} - set(shared)
    return {v: [s.study_id for s in studies if v not in s.variants] for v in sorted(everything)}


def _study_row(study: StudyScores, shared: Sequence[str], ranks: list[float]) -> dict[str, Any]:
    return {
        "study_id": study.study_id,
        "name": study.name,
        "dataset": study.dataset,
        "direction": study.direction,
        "scores": {
            v: {
                "mean": study.variants[v].mean,
                "n_seeds": study.variants[v].n_seeds,
                "replicated": study.variants[v].replicated,
                "rank": rank,
            }
            for v, rank in zip(shared, ranks, strict=True)
        },
    }


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def answer(result: Mapping[str, Any]) -> str:
    """One paragraph that says what the tests support across the studies, and no more."""
    order, ranks, test = result["variants"], result["mean_ranks"], result["test"]
    n, alpha = len(result["studies"]), result["alpha"]
    ranked = ", ".join(f"{v} {ranks[v]:.2f}" for v in order)
    head = f"Across {n} studies (average rank, 1 = best: {ranked}), "
    caveat = ""
    if result["unreplicated"]:
        caveat = (
            f" {len(result['unreplicated'])} of the scores are a single search configuration "
            "without seed replicates (noisier): see `unreplicated`."
        )
    if test["test"] == "wilcoxon":
        a, b = order
        if test["rejected"]:
            return f"{head}{a} beats {b} (Wilcoxon signed-rank p={test['p_value']:.3g}).{caveat}"
        small = f"; with {n} studies the smallest possible p is {2 / 2**n:.3g}" if n < 6 else ""
        return (
            f"{head}no evidence that {a} or {b} is better (Wilcoxon signed-rank "
            f"p={test['p_value']:.3g}{small}).{caveat}"
        )
    friedman = f"Friedman p={test['p_value']:.3g}"
    if not test["rejected"]:
        return (
            f"{head}no evidence that any variant ranks better than another ({friedman} ≥ "
            f"α={alpha:g}); more studies would tell.{caveat}"
        )
    best = order[0]
    beaten = [p["b"] for p in result["pairs"] if p["a"] == best and p["different"]]
    cd = f"Nemenyi CD {result['critical_difference']:.2f} at α={alpha:g}"
    if not beaten:
        return (
            f"{head}the variants do not all rank alike ({friedman}), but no pair is told apart "
            f"({cd}): {best} leads without a shown difference.{caveat}"
        )
    unclear = [v for v in order[1:] if v not in beaten]
    rest = f"; not shown better than {_names(unclear)}" if unclear else ""
    return f"{head}{best} ranks better than {_names(beaten)} ({friedman}; {cd}){rest}.{caveat}"
