"""Trial records: the user attributes and values a worker writes (ARCHITECTURE "Trial records")."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from models.config import ModelConfig, TrainConfig
from models.training import TrainResult
from storage.trial_record import REPLICATE_ATTR, meets_constraints
from studyd.analysis.canonical import config_key
from studyd.spec import constraint_violation, parse_constraint

# Diagnostics also stored as top-level user attributes (objectives, constraints, CSV columns).
FLAT_DIAGNOSTICS: tuple[str, ...] = (
    "val_ece",
    "val_nll",
    "mc_acc",
    "mc_ece",
    "train_eval_sym_kl",
    "ms_per_1k",
)
# A reused trial copies these from the finished trial of the same run (same canonical config
# and seed); what it trained, where and when stays its own.
REUSED_ATTRS: tuple[str, ...] = (
    "curve",
    "train_acc",
    "val_acc",
    "train_loss",
    "val_loss",
    "gap",
    "param_count",
    "epoch_seconds",
    "diagnostics",
    *FLAT_DIAGNOSTICS,
)


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
        # Same configuration (seed replicates pooled) / same run (a finished one is reused).
        "config_key": config_key(model_cfg, train_cfg, with_seed=False),
        "run_key": config_key(model_cfg, train_cfg, with_seed=True),
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


def _finite_or_none(value: Any) -> Any:
    # JSON has no NaN/inf (the API could not serve them): a diverged net's metric is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def diagnostic_attrs(diagnostics: dict[str, Any]) -> dict[str, Any]:
    """`diagnostics` (the whole dict) plus its FLAT_DIAGNOSTICS as top-level attributes."""
    clean = {k: _finite_or_none(v) for k, v in diagnostics.items()}
    return {"diagnostics": clean, **{k: clean.get(k) for k in FLAT_DIAGNOSTICS}}


def _metric(attrs: dict[str, Any], name: str) -> float:
    value = attrs.get(name)
    return float("nan") if value is None else float(value)


def objective_values(objectives: list[str], attrs: dict[str, Any]) -> list[float] | None:
    """The trial's values in the spec's objective order, read from its recorded attributes
    (`result_attrs` + `diagnostic_attrs`); None if any is missing or not finite."""
    values = [_metric(attrs, o) for o in objectives]
    return values if all(math.isfinite(v) for v in values) else None


def constraint_values(constraints: list[str], attrs: dict[str, Any]) -> dict[str, float]:
    """Each constraint's violation (≤ 0 feasible); a metric that is missing counts as +inf."""
    out = {}
    for text in constraints:
        value = _metric(attrs, parse_constraint(text)[0])
        out[text] = constraint_violation(text, value) if math.isfinite(value) else math.inf
    return out


# The user attribute that marks an infeasible trial where optuna-dashboard's trials table shows
# it (constraint values are system attributes, which it does not list).
INFEASIBLE_MARK = "infeasible"


def infeasible_mark(violations: dict[str, float]) -> dict[str, str]:
    """`{"infeasible": "param_count <= 20000 (over by 22977)"}` for the broken constraints; {}
    when none is. Recorded with the result, before Optuna's tell (a finished trial is final)."""
    broken = [
        f"{text} ({'not measured' if not math.isfinite(v) else f'over by {v:g}'})"
        for text, v in violations.items()
        if v > 0
    ]
    return {INFEASIBLE_MARK: "; ".join(broken)} if broken else {}


def is_feasible(trial: FrozenTrial) -> bool:
    """No constraint violated (Optuna's rule: every constraint value ≤ 0)."""
    return meets_constraints(trial.constraints)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete search trial (by the first objective in multi-objective studies);
    feasible trials first when the study has constraints. Seed replicates are not candidates
    (`REPLICATE_ATTR`): the best of a config's fresh seeds is its luckiest one."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    complete = [t for t in complete if REPLICATE_ATTR not in t.user_attrs] or complete
    complete = [t for t in complete if is_feasible(t)] or complete
    if not complete:
        return None
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(complete, key=lambda t: sign * t.values[0])
