"""bench.throughput's figures over seeds: the paired difference of final bests and its CI."""

from __future__ import annotations

import pytest

from bench.study_runs import StudyRun
from bench.throughput import best_difference, over_seeds


def _run(best: float, seconds_to_best: float) -> StudyRun:
    return StudyRun(
        best, 0.5, 100, 10.0, [(seconds_to_best / 2, 50, best - 0.1), (seconds_to_best, 100, best)]
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
    over_seeds([{"a": _run(0.50, 9), "b": _run(0.52, 3)} for _ in range(2)])
    lines = capsys.readouterr().out.splitlines()
    a_line = next(line for line in lines if line.strip().startswith("(a)"))
    b_line = next(line for line in lines if line.strip().startswith("(b)"))
    assert "best (b)−(a) +0.020 [+0.020, +0.020]" in b_line and "best (" not in a_line
    assert "own (a)/(b) median 3.00x" in b_line
