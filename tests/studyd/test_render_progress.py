"""Progress says what the study's target is made of once seed replicates join it."""

from __future__ import annotations

from studyd.cli.render import progress_line


def _study(target: int, finished: int, **extra) -> dict:
    return {
        "state": "running",
        "target_trials": target,
        "finished": finished,
        "trial_counts": {"running": 1},
        "spec": {"search": {"n_trials": 20}},
        **extra,
    }


def test_a_target_grown_by_replicates_says_searched_plus_replicates():
    line = progress_line(_study(32, 20))
    assert line.startswith("20/32 finished (20 searched + 12 seed replicates) · 1 running")


def test_one_replicate_is_singular_and_a_plain_search_says_nothing_more():
    assert "(20 searched + 1 seed replicate)" in progress_line(_study(21, 20))
    assert progress_line(_study(20, 5)).startswith("5/20 finished · 1 running")


def test_a_search_that_ended_early_does_not_guess():
    line = progress_line(_study(14, 10, search_ended="the sampler keeps repeating itself"))
    assert line.startswith("10/14 finished · ")
