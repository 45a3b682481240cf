"""bench.throughput's figures over seeds: the paired difference of final bests and its CI, the
speed-ups to (a)'s own target and over the whole study, and the issue's goal line."""

from __future__ import annotations

import pytest

from bench.study_runs import StudyRun
from bench.throughput import best_difference, goal_line, over_seeds, own_target_ratios


def _run(
    best: float, seconds_to_best: float, whole: float | None = None, to_done: float | None = None
) -> StudyRun:
    return StudyRun(
        best,
        0.5,
        100,
        10.0,
        [(seconds_to_best / 2, 50, best - 0.1), (seconds_to_best, 100, best)],
        whole,
        whole if to_done is None else to_done,
    )


def test_best_difference_is_the_paired_mean_and_its_t_interval():
    runs = [{"a": _run(0.50, 9), "b": _run(b, 3)} for b in (0.51, 0.49, 0.53)]
    # Differences +.01, −.01, +.03: mean .01, sd .02, t(0.975, 2) = 4.3027, half 4.3027·.02/√3.
    half = 4.3027 * 0.02 / 3**0.5
    text = best_difference(runs, "b", "a")
    low, high = (float(x) for x in text.split("[")[1].rstrip("]").split(", "))
    assert text.startswith("best (b)−(a) +0.010 [")
    assert low == pytest.approx(0.010 - half, abs=1e-3) and high == pytest.approx(
        0.010 + half, abs=1e-3
    )


def test_over_seeds_prints_the_difference_only_for_the_other_ways(capsys):
    over_seeds([{"a": _run(0.50, 9, 60), "b": _run(0.52, 3, 15, to_done=12)} for _ in range(2)])
    lines = capsys.readouterr().out.splitlines()
    a_line = next(line for line in lines if line.strip().startswith("(a) s/epoch"))
    b_line = next(line for line in lines if line.strip().startswith("(b) s/epoch"))
    assert "best (b)−(a) +0.020 [+0.020, +0.020]" in b_line and "best (" not in a_line
    assert "own (a)/(b) median 3.00x [3.00–3.00] reached 2/2" in b_line
    assert "to done (a)/(b) median 5.00x [5.00–5.00]" in b_line
    assert "with test run (a)/(b) median 4.00x [4.00–4.00]" in b_line
    assert not any(line.strip().startswith("(a) goal") for line in lines)


def _seeds(
    b_bests: list[float], a_whole: float, b_whole: float, b_with_test_run: float | None = None
) -> list[dict[str, StudyRun]]:
    """(a) reaches its best at 12 s; (b) at 3 s (4× sooner) where its best is within 0.5 points.
    `b_whole` is (b)'s submission to done; its run ends `b_with_test_run` (default: then)."""
    return [
        {"a": _run(0.50, 12, a_whole), "b": _run(best, 3, b_with_test_run or b_whole, b_whole)}
        for best in b_bests
    ]


def test_goal_line_is_met_when_as_good_and_three_times_sooner_both_ways():
    runs = _seeds([0.51, 0.51, 0.52, 0.51], a_whole=90, b_whole=30)
    assert goal_line(runs, "b", "a") == (
        "goal: CI low >= -0.005 (met); whole study (submission to done) median >= 3x (met); "
        "to target median >= 3x (met)"
    )


def test_goal_line_fails_the_whole_study_just_under_three_times_alone():
    runs = _seeds([0.51, 0.51, 0.52, 0.51], a_whole=89, b_whole=30)
    assert "whole study (submission to done) median >= 3x (not met)" in goal_line(runs, "b", "a")
    assert "CI low >= -0.005 (met)" in goal_line(runs, "b", "a")


def test_goal_line_fails_quality_when_the_ci_reaches_below_half_a_point():
    # Differences 0, −.01, 0, +.005: mean −.00125, sd .0063, CI low ≈ −.0113 < −.005.
    runs = _seeds([0.50, 0.49, 0.50, 0.505], a_whole=90, b_whole=30)
    line = goal_line(runs, "b", "a")
    assert "CI low >= -0.005 (not met)" in line
    assert "whole study (submission to done) median >= 3x (met)" in line


def test_a_seed_that_never_reaches_the_target_counts_as_no_speed_up():
    # (b) misses (a)'s best − 0.5 points on the seeds at .49: 0×, not left out of the median.
    one_missed = _seeds([0.50, 0.49, 0.50], a_whole=90, b_whole=30)
    assert own_target_ratios(one_missed, "b", "a") == [4.0, 0.0, 4.0]
    assert "to target median >= 3x (met)" in goal_line(one_missed, "b", "a")
    two_missed = _seeds([0.50, 0.49, 0.49], a_whole=90, b_whole=30)
    assert "to target median >= 3x (not met)" in goal_line(two_missed, "b", "a")


def test_the_whole_study_goal_is_submission_to_done_not_the_test_run_after_it():
    # (b) is done at 30 s (3×) and has its test score at 40 s: the goal reads the former.
    runs = _seeds([0.51, 0.51, 0.52, 0.51], a_whole=90, b_whole=30, b_with_test_run=40)
    assert "whole study (submission to done) median >= 3x (met)" in goal_line(runs, "b", "a")
    late = _seeds([0.51, 0.51, 0.52, 0.51], a_whole=90, b_whole=40, b_with_test_run=40)
    assert "whole study (submission to done) median >= 3x (not met)" in goal_line(late, "b", "a")
