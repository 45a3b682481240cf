"""Demšar's comparison across studies: ranks, Friedman/Iman–Davenport, Nemenyi, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from studyd.analysis.compare import (
    ComparisonRefused,
    StudyScores,
    VariantScore,
    compare_studies,
    critical_difference,
)


def _study(study_id: int, means: dict[str, float], direction: str = "maximize") -> StudyScores:
    scores = {v: VariantScore(mean=m, n_seeds=3, replicated=True) for v, m in means.items()}
    return StudyScores(study_id, f"s{study_id}", f"data{study_id}", direction, scores)


def test_the_critical_difference_matches_demsars_worked_example():
    # Demšar 2006 §3.2.4: k = 4 classifiers on N = 14 data sets, q_0.05 = 2.569, CD = 1.25.
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.2536, abs=5e-4)
    # Table 5(a): q_0.05 for k = 2..5 is 1.960, 2.343, 2.569, 2.728 (CD with k(k+1)/6N = 1).
    for k, q in [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728)]:
        n = k * (k + 1) / 6
        assert critical_difference(k, n, 0.05) == pytest.approx(q, abs=1e-3)


def test_a_variant_best_in_every_study_is_shown_better_than_the_worst():
    studies = [
        _study(i, {"standard": 0.9 + d, "gaussian": 0.88 + d, "none": 0.85 + d})
        for i, d in enumerate([0.0, 0.01, -0.02, 0.03, 0.0, 0.02], start=1)
    ]
    result = compare_studies(studies)
    assert result["variants"] == ["standard", "gaussian", "none"]
    assert result["mean_ranks"] == {"standard": 1.0, "gaussian": 2.0, "none": 3.0}
    # χ² = 12N/(k(k+1))·Σ(R−(k+1)/2)² = 12·6/12·2 = 12, F = 5·12/(6·2 − 12) → perfect agreement.
    assert result["test"]["statistic"] == pytest.approx(12.0)
    assert result["test"]["rejected"]
    pair = {(p["a"], p["b"]): p for p in result["pairs"]}
    assert result["critical_difference"] == pytest.approx(2.343 * np.sqrt(12 / 36), abs=1e-3)
    assert pair[("standard", "none")]["different"]
    assert not pair[("standard", "gaussian")]["different"]  # 1 rank < CD 1.35
    assert result["answer"].startswith("Across 6 studies (average rank, 1 = best: standard 1.00")
    assert "standard ranks better than none" in result["answer"]
    assert "not shown better than gaussian" in result["answer"]


def test_each_study_is_ranked_in_its_own_direction():
    # A loss study: lower is better, so `b` ranks first there as in the accuracy studies.
    studies = [
        _study(1, {"a": 0.8, "b": 0.9, "c": 0.7}),
        _study(2, {"a": 0.7, "b": 0.95, "c": 0.6}),
    ]
    studies.append(_study(3, {"a": 0.4, "b": 0.2, "c": 0.5}, direction="minimize"))
    result = compare_studies(studies)
    assert [s["scores"]["b"]["rank"] for s in result["studies"]] == [1.0, 1.0, 1.0]
    assert result["variants"] == ["b", "a", "c"]


def test_with_three_studies_the_p_value_is_the_exact_one_not_the_f_approximation():
    # Ranks (1,2,3), (1,2,3), (2,1,3): χ² = 4.67; the exact table gives p = 0.194, while
    # Iman–Davenport's F = 7.0 on (2, 4) df says 0.049 and would claim a difference.
    studies = [_study(1, {"a": 3, "b": 2, "c": 1}), _study(2, {"a": 3, "b": 2, "c": 1})]
    studies.append(_study(3, {"a": 2, "b": 3, "c": 1}))
    test = compare_studies(studies)["test"]
    assert test["statistic"] == pytest.approx(14 / 3)
    assert test["f"] == pytest.approx(7.0) and test["f_p_value"] == pytest.approx(0.0494, abs=1e-3)
    assert test["p_value"] == pytest.approx(0.194, abs=0.01) and not test["rejected"]


# Thousands of simulated null comparisons: 17-62 s on the loaded 2-core machine.
@pytest.mark.slow
@pytest.mark.parametrize(("n_studies", "k"), [(3, 3), (8, 4)])
def test_null_studies_reject_at_most_about_alpha(n_studies, k):
    """400 comparisons with exchangeable scores (seed 0): the permutation gate rejects at most
    5% + 3% (binomial sd ≈ 1.1%) — with 3 studies of 3 variants the exact test can reach only
    p ∈ {0.028, 0.194, …}, so fewer — and a Nemenyi pair is never claimed without it."""
    rng = np.random.default_rng(0)
    rejected = claimed = 0
    runs = 400
    for _ in range(runs):
        studies = [
            _study(i, dict(zip("abcdef"[:k], rng.normal(0.9, 0.01, k), strict=True)))
            for i in range(n_studies)
        ]
        result = compare_studies(studies)
        rejected += result["test"]["rejected"]
        claimed += any(p["different"] for p in result["pairs"])
    assert rejected / runs <= 0.08
    if n_studies == 8:
        assert rejected / runs >= 0.02  # not a test that never rejects
    assert claimed <= rejected


def test_two_shared_variants_use_the_wilcoxon_test_and_say_its_floor():
    studies = [_study(i, {"a": 0.9, "b": 0.8, f"only{i}": 0.5}) for i in range(1, 5)]
    result = compare_studies(studies)
    assert result["test"]["test"] == "wilcoxon" and result["posthoc"] is None
    assert result["left_out"] == {"only1": [2, 3, 4], "only2": [1, 3, 4], "only3": [1, 2, 4],
                                  "only4": [1, 2, 3]}  # fmt: skip
    assert result["test"]["p_value"] == pytest.approx(0.125)  # exact: 2/2⁴
    assert "no evidence that a or b is better" in result["answer"]
    assert "smallest possible p is 0.125" in result["answer"]


@pytest.mark.parametrize(
    ("studies", "reason"),
    [
        ([_study(1, {"a": 0.9, "b": 0.8}), _study(2, {"a": 0.9, "b": 0.8})], "3 to 50 studies"),
        (
            [_study(1, {"a": 0.9}), _study(2, {"b": 0.9}), _study(3, {"a": 0.8, "b": 0.7})],
            "share 0 variants; compare needs 2 measured in every study (variants by study: 1: a",
        ),
        (
            [_study(1, {"a": 0.9, "b": 1}), _study(2, {"a": 1, "c": 1}), _study(3, {"a": 1})],
            "share 1 variant (a)",
        ),
        ([_study(1, {"a": 1, "b": 1})] * 3, "each study may be named once"),
        ([_study(1, {"a": 1, "b": 1}), _study(2, {}), _study(3, {})], "study 2, 3 has no"),
    ],
)
def test_studies_that_cannot_be_ranked_are_refused_with_the_reason(studies, reason):
    with pytest.raises(ComparisonRefused, match=None) as refused:
        compare_studies(studies)
    assert reason in str(refused.value)


def test_the_diagram_joins_each_maximal_run_of_variants_not_told_apart(tmp_path):
    from studyd.client.cd_diagram import indistinct_groups, write_cd_diagram

    studies = [
        _study(i, {"s": 0.97 + d, "g": 0.96 + d, "r": 0.955 + d, "n": 0.9})
        for i, d in enumerate([0.0, 0.01, 0.02, 0.005, 0.015])
    ]
    result = compare_studies(studies)
    assert result["variants"] == ["s", "g", "r", "n"]
    assert indistinct_groups(result["variants"], result["pairs"]) == [
        ["s", "g", "r"],
        ["g", "r", "n"],
    ]
    assert write_cd_diagram(result, tmp_path / "cd.svg") == [["s", "g", "r"], ["g", "r", "n"]]
    assert (tmp_path / "cd.svg").read_text().lstrip().startswith("<?xml")
