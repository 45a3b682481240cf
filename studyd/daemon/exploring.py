"""A model-based sampler that can be told to draw a trial at random: how a search whose sampler
keeps proposing runs the study already has goes on buying distinct configurations.

A repeat is told its known result, so TPE learns it — and that very result can make it propose
the same run again: in `examples/d2l.yaml` TPE proposed `none` (one network, no knob) twenty
times in a row after eight distinct runs, and the study ended with 8 of its 30 trials. After a
few repeats in a row the worker marks the next trials (`explore`) and they are drawn uniformly
from the space, as the sampler's own start-up trials are; the model-based proposals resume once
a new run counts. Reproducible: each such draw is seeded by the study's seed and the trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from studyd.daemon.wrapping_sampler import WrappingSampler


class ExploringSampler(WrappingSampler):
    """`base` for every trial except those marked with `explore`, which are drawn at random."""

    def __init__(self, base: BaseSampler, seed: int | None) -> None:
        super().__init__(base)
        self.seed = seed
        # Marked trials by number, each with its own random stream (one draw per parameter).
        self.marked: dict[int, RandomSampler] = {}

    def explore(self, number: int) -> None:
        """Draw trial `number`'s parameters at random (call before they are suggested)."""
        seed = None if self.seed is None else self.seed * 100_003 + number
        self.marked[number] = RandomSampler(seed=seed)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if trial.number in self.marked:
            return {}
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number in self.marked:
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if trial.number in self.marked:
            return self.marked[trial.number].sample_independent(
                study, trial, param_name, param_distribution
            )
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.marked.pop(trial.number, None)
        super().after_trial(study, trial, state, values)
