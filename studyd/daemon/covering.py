"""Every variant asked for is tried: a sampler that proposes each requested variant once first.

Issue 26: five variants asked, and TPE's first draws never reached two of them. After the spec's
own baselines (enqueued at submit), the variant of each new trial is the first requested variant
no trial of the study has (in the spec's order) until every one has a trial; then the base
sampler decides as before. The variant's other parameters are the base sampler's. With the
stratified pruner (`fair_pruning`) a variant's first finished trial is never pruned, so each
requested variant gets a fully trained run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

from studyd.daemon.wrapping_sampler import WrappingSampler

VARIANT = "variant"


def untried_variant(study: Study, trial: FrozenTrial, choices: Sequence[Any]) -> Any | None:
    """The untried variant `trial` takes: of `choices` that no other trial of the study has
    (asked, running, finished, or enqueued as a baseline), in order, the one after those that
    earlier trials still being asked will take; None when every one has a trial.

    Workers ask concurrently: a trial created before this one whose variant is not written yet
    is mid-ask and takes the first untried variant itself, so this one takes the next, and two
    workers starting together do not train the same untried variant twice.
    """
    tried = set()
    asking = 0
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number:
            continue
        fixed = (other.system_attrs.get("fixed_params") or {}).get(VARIANT)
        variant = other.params.get(VARIANT, fixed)
        if variant is None and other.number < trial.number and not other.state.is_finished():
            asking += 1
        tried.add(variant)
    untried = [c for c in choices if c not in tried]
    if not untried:
        return None
    return untried[min(asking, len(untried) - 1)]


class CoveringSampler(WrappingSampler):
    """`base`, but a trial's `variant` is an untried requested variant while one is left."""

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        drawn = self.base.sample_relative(study, trial, search_space)
        space = search_space.get(VARIANT)
        if VARIANT in drawn and isinstance(space, CategoricalDistribution):
            missing = untried_variant(study, trial, space.choices)
            if missing is not None:
                drawn = {**drawn, VARIANT: missing}
        return drawn

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name == VARIANT and isinstance(param_distribution, CategoricalDistribution):
            missing = untried_variant(study, trial, param_distribution.choices)
            if missing is not None:
                return missing
        return self.base.sample_independent(study, trial, param_name, param_distribution)
