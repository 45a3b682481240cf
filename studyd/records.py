"""Trial records: the user attributes and values a worker writes (ARCHITECTURE "Trial records")."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from models.config import ModelConfig, TrainConfig
from models.training import TrainResult


def placement_name(model_cfg: ModelConfig) -> str:
    """Placements joined with `+`; `none` for the no-dropout variant (it has no placement)."""
    return "+".join(model_cfg.placements) if model_cfg.variant != "none" else "none"


def config_attrs(
    model_cfg: ModelConfig, train_cfg: TrainConfig, dataset: str, **where: Any
) -> dict[str, Any]:
    """What a trial trains, recorded before training starts; `where`: device, worker_id, host."""
    return {
        "config": model_cfg.model_dump(mode="json"),
        "train": train_cfg.model_dump(mode="json"),
        "variant": model_cfg.variant,
        "placement": placement_name(model_cfg),
        "dataset": dataset,
        **where,
    }


def result_attrs(result: TrainResult) -> dict[str, Any]:
    """Learning curve and final-epoch metrics; gap = train_acc − val_acc."""
    final = result.final
    return {
        "curve": [m.as_dict() for m in result.history],
        "train_acc": final.train_acc,
        "val_acc": final.val_acc,
        "train_loss": final.train_loss,
        "val_loss": final.val_loss,
        "gap": final.train_acc - final.val_acc,
        "param_count": result.param_count,
        "epoch_seconds": sum(m.seconds for m in result.history) / len(result.history),
        "device": result.device,
    }


def objective_values(objectives: list[str], result: TrainResult) -> list[float] | None:
    """The trial's values in the spec's objective order; None if any is not finite."""
    final = result.final
    named = {
        "val_acc": final.val_acc,
        "val_loss": final.val_loss,
        "gap": final.train_acc - final.val_acc,
        "param_count": float(result.param_count),
    }
    values = [named[o] for o in objectives]
    return values if all(math.isfinite(v) for v in values) else None


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial (by the first objective in multi-objective studies)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(complete, key=lambda t: sign * t.values[0])
