"""Which of a study's complete trials a summary counts — one rule for the API's summary, the
dashboard note and the client's report.

A trial here is a mapping with `number`, `user_attrs` (at least `replicate_of` and `reused_from`
when set) and `feasible`: True or False, or None (the API's trial pages: no constraints), which
counts as feasible. Light on purpose: the client imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Trial = Mapping[str, Any]


def _feasible(trial: Trial) -> bool:
    return trial.get("feasible") is not False


def trained(trials: Sequence[Trial]) -> list[Trial]:
    """Trials that trained: a reused trial is its original's result again, so it counts once
    (as the original) in every per-variant number of the summary."""
    return [t for t in trials if "reused_from" not in t["user_attrs"]]


def feasible_candidates(trials: Sequence[Trial]) -> list[Trial]:
    """With constraints an infeasible trial is no answer: like the best trial, the verdict and
    every per-variant number count feasible trials (`counted_runs` counts all while none is).

    Feasibility is a configuration's, judged on its search trial: a seed replicate of a feasible
    one counts whatever its own seed measured. Dropping the replicates whose seed broke a
    seed-dependent bound (`gap <= 0.05`, say) would keep only a config's lucky seeds and bias its
    mean over seeds, which is what the verdict compares. (A replicate whose search trial is not
    among `trials` is judged on its own.)"""
    searched = {t["number"]: _feasible(t) for t in trials if "replicate_of" not in t["user_attrs"]}
    return [
        t
        for t in trials
        if searched.get(t["user_attrs"].get("replicate_of", t["number"]), _feasible(t))
    ]


def candidates(trials: Sequence[Trial]) -> list[Trial]:
    """The trials the summary's numbers may count: the feasible configurations' while some but
    not all are feasible, else every one (no constraints, or none met yet)."""
    n_feasible = sum(_feasible(t) for t in trials)
    return feasible_candidates(trials) if 0 < n_feasible < len(trials) else list(trials)


def counted_runs(trials: Sequence[Trial]) -> list[Trial]:
    """What every per-variant number, the diagnostics and the importances count: the trained
    runs among `candidates`."""
    return trained(candidates(trials))
