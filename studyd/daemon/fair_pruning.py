"""Pruning fair to every variant: a trial is compared only with finished trials of its own variant.

Dropout slows early training by design, so a median over every variant's epoch-2 accuracies
stops exactly the dropout trials a study exists to measure (issue 26: 6 of 7 pruned trials were
dropout trials stopped at epoch 1 or 2 of 40). `StratifiedPruner` wraps Optuna's median or
percentile pruner and hands it a view of the study that holds only the trial's own variant's
COMPLETE trials; its start-up count is then per variant, and its warm-up scales with the epochs
(`scaled_warmup`). bench/fair_pruning.py measures both against no pruning.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from storage.trial_record import meets_constraints

# The warm-up is this fraction of the epochs. bench/fair_pruning.py over three spaces × 6 seeds
# (docs/fair-answers.md has the table): with one start-up trial per variant, 0.15 kept the
# unpruned variant leader in 18 of 18 runs and saved 31–39 % of the epochs; 0.10 saved more but
# changed the leader once, 0.25 saved 27 % on digits.
WARMUP_FRACTION = 0.15
_COMPLETE = (TrialState.COMPLETE,)


def scaled_warmup(epochs: int) -> int:
    """Epochs before the first pruning decision: max(1, ⌊epochs · WARMUP_FRACTION⌋)."""
    return max(1, int(epochs * WARMUP_FRACTION))


def variant_of(trial: FrozenTrial) -> str | None:
    """The trial's dropout variant: its `variant` parameter, or the `variant` attribute the
    worker records before training (a spec with one variant has no such parameter)."""
    found = trial.params.get("variant", trial.user_attrs.get("variant"))
    return None if found is None else str(found)


class StratifiedPruner(BasePruner):
    """`inner` (a median or percentile pruner) judging a trial against its own variant only.

    `inner` must read nothing of the study but `get_trials(states=(COMPLETE,))` and `direction`
    (Optuna's median and percentile pruners), and write nothing.
    """

    # Reads nothing of the study but its COMPLETE trials, writes nothing: one read of those can
    # serve every decision of an epoch (storage.pruning_reads, which cannot import this class).
    reads_completed_only = True

    def __init__(self, inner: BasePruner) -> None:
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_VariantView(study, variant_of(trial)), trial)  # type: ignore[arg-type]


def same_variant(trials: Sequence[FrozenTrial], variant: str | None) -> list[FrozenTrial]:
    """The feasible trials of `variant`, and those whose variant is not recorded (a trial added
    by hand: it may be of any); of every variant when `variant` is unknown (nothing to split
    by). An infeasible trial is no answer: a network over a `param_count` bound learns faster
    than those inside it, and judging them against it would prune the feasible ones (the
    issue's study, rerun: multisample's two feasible trials stopped behind its one too wide)."""
    feasible = [t for t in trials if meets_constraints(t.constraints)]
    if variant is None:
        return feasible
    return [t for t in feasible if variant_of(t) in (variant, None)]


class _VariantView:
    """The study as a median pruner reads it, narrowed to one variant's COMPLETE trials."""

    def __init__(self, study: optuna.Study, variant: str | None) -> None:
        self._study = study
        self._variant = variant

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return same_variant(self._study.get_trials(deepcopy=deepcopy, states=states), self._variant)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
