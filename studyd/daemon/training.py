"""What a worker's trial trains and records: `TorchTrainer`, the real `worker.trials.Trainer`.

The worker wing orchestrates (ask, report, tell, settle); this is the science it is handed: the
configs an Optuna trial's suggestions make (`runs.trial_config`) and the attributes that record
them, the training — alone (`models.training.train_model`, the unbatched reference: what
`--batch-trials 1` runs) or with the others of its stack (`models.batched.train_batched`, each
trial's result the same as alone to rounding) — what a trained trial records (its curve and
final metrics and, unless pruned, its regularisation diagnostics), and the objective values and
constraint violations Optuna is told from those records.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from models.batched import batch_key, train_batched
from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.diagnostics import regularisation_diagnostics
from models.training import EpochMetrics, TrainResult, train_model
from studyd.daemon.config_constraints import UntrainedInfeasible, untrained_infeasible
from studyd.daemon.records import (
    config_attrs,
    constraint_values,
    diagnostic_attrs,
    infeasible_mark,
    objective_values,
    result_attrs,
)
from studyd.daemon.runs import trial_config
from studyd.spec import StudySpec

# Stochastic passes for the MC-dropout diagnostics of each trial (on the validation split).
MC_PASSES = 20

# After an epoch: each trial's metrics (None once it has ended) → which trials stop now.
OnEpoch = Callable[[list[EpochMetrics | None]], list[bool]]


@dataclass
class TrialPlan:
    """What a trial trains, and the attributes that record it (`config`, `run_key`, …)."""

    model: ModelConfig
    train: TrainConfig
    attrs: dict[str, Any]


class TorchTrainer:
    """Trains on `device` with the models package."""

    def __init__(self, device: str) -> None:
        self.device = device

    def plan(
        self, trial: optuna.Trial, spec: StudySpec, data: DatasetSplits, **where: Any
    ) -> TrialPlan:
        """The configs `trial`'s suggestions make; `where`: device, worker_id, host."""
        model, train = trial_config(trial, spec, data)
        return TrialPlan(model, train, config_attrs(model, train, spec.dataset.name, **where))

    def untrained_infeasible(
        self, spec: StudySpec, model: ModelConfig
    ) -> UntrainedInfeasible | None:
        """A proposal a constraint the config decides (param_count) rules out: never trained."""
        return untrained_infeasible(spec, model)

    def stack_key(self, model: ModelConfig, train: TrainConfig) -> Hashable | None:
        """What trials must share to train as one stack; None: this one trains alone."""
        return batch_key(model, train)

    def train(
        self,
        models: Sequence[ModelConfig],
        trains: Sequence[TrainConfig],
        data: DatasetSplits,
        *,
        stacked: bool,
        on_epoch: OnEpoch,
        interrupt: Callable[[], bool],
    ) -> list[TrainResult]:
        """Train one trial alone (`stacked=False`) or a stack of trials sharing a `stack_key`."""
        if not stacked:
            [model], [train] = models, trains
            result = train_model(
                model,
                train,
                data,
                device=self.device,
                on_epoch=lambda m: on_epoch([m])[0],
                interrupt=interrupt,
            )
            return [result]
        return train_batched(
            list(models),
            list(trains),
            data,
            device=self.device,
            on_epoch=lambda _epoch, metrics: on_epoch(metrics),
            interrupt=interrupt,
        )

    def outcome(
        self, result: TrainResult, pruned: bool, data: DatasetSplits, seed: int
    ) -> dict[str, Any]:
        """The attributes a trained trial records: its results, and unless pruned its
        regularisation diagnostics."""
        outcome = result_attrs(result)
        if not pruned:
            diagnostics = regularisation_diagnostics(
                result.model, data.x_val, data.y_val, mc_passes=MC_PASSES, seed=seed
            )
            outcome |= diagnostic_attrs(diagnostics)
        return outcome

    def objective_values(self, spec: StudySpec, attrs: dict[str, Any]) -> list[float] | None:
        """The values Optuna is told, in the spec's objective order; None: not finite."""
        return objective_values(spec.search.objective_names(), attrs)

    def constraint_values(self, spec: StudySpec, attrs: dict[str, Any]) -> dict[str, float]:
        """Each of the spec's constraints' violation (≤ 0 feasible)."""
        return constraint_values(spec.search.constraints, attrs)

    def infeasible_mark(self, violations: dict[str, float]) -> dict[str, str]:
        """The `infeasible` attribute the dashboard's trials table shows; {} when feasible."""
        return infeasible_mark(violations)
