"""The spec's `search:` section: sampler, pruner, budget, objectives and constraints."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from studyd.spec.dims import StrictModel
from studyd.spec.limits import MAX_CONSTRAINTS, MAX_EPOCHS, MAX_TIMEOUT_S, MAX_TRIALS

# Source studies of a warm start: each is read whole at submit.
MAX_WARM_START = 20

Sampler = Literal["tpe", "random", "qmc", "gp", "grid"]
PrunerName = Literal["none", "median", "percentile", "successive_halving", "hyperband"]
Metric = Literal["val_acc", "val_loss"]
Objective = Literal[
    "val_acc",
    "val_loss",
    "gap",
    "param_count",
    "val_ece",
    "val_nll",
    "train_eval_sym_kl",
    "ms_per_1k",
]
Direction = Literal["maximize", "minimize"]
OBJECTIVE_DIRECTIONS: dict[str, str] = {
    "val_acc": "maximize",
    "val_loss": "minimize",
    "gap": "minimize",
    "param_count": "minimize",
    # Regularisation diagnostics (models/diagnostics.py), measured on the validation split.
    "val_ece": "minimize",
    "val_nll": "minimize",
    "train_eval_sym_kl": "minimize",
    "ms_per_1k": "minimize",
}
_CONSTRAINT = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """`"gap <= 0.05"` → ("gap", "<=", 0.05); ValueError naming what to write otherwise."""
    match = _CONSTRAINT.match(text)
    metric = match.group(1) if match else None
    if match is None or metric not in OBJECTIVE_DIRECTIONS:
        raise ValueError(
            f"{text!r} is not a constraint; write METRIC <= NUMBER or METRIC >= NUMBER with a "
            f"metric of {', '.join(OBJECTIVE_DIRECTIONS)}, e.g. 'gap <= 0.05'"
        )
    try:
        bound = float(match.group(3))
    except ValueError:
        raise ValueError(f"{text!r}: {match.group(3)!r} is not a number") from None
    if not math.isfinite(bound):
        raise ValueError(f"{text!r}: the bound must be a finite number")
    return metric, match.group(2), bound


def constraint_text(metric: str, op: str, bound: float) -> str:
    """The stored text of a constraint, its bound exact: `{:g}` kept 6 digits, so
    `param_count <= 1234567` was enforced as 1234570. A bound `{:g}` writes exactly keeps that
    text, so the specs stored before (and their trials' constraint names) read the same."""
    short = f"{bound:g}"
    if float(short) != bound:
        short = str(int(bound)) if bound.is_integer() and abs(bound) < 1e15 else repr(bound)
    return f"{metric} {op} {short}"


def constraint_violation(text: str, value: float) -> float:
    """Optuna's convention: ≤ 0 is feasible (`value − bound` for <=, `bound − value` for >=)."""
    _, op, bound = parse_constraint(text)
    return value - bound if op == "<=" else bound - value


class PrunerSpec(StrictModel):
    """Which pruner; `startup_trials`/`warmup_epochs` delay pruning, `percentile` for percentile.

    The median and percentile pruners judge a trial against finished trials of its own variant
    (`by_variant`; dropout slows early training by design), once `startup_trials` of that
    variant have finished and after `warmup_epochs` (default: 15 % of the epochs,
    studyd.daemon.fair_pruning; bench/fair_pruning.py measured it).
    """

    name: PrunerName = "median"
    startup_trials: int = Field(default=1, ge=0, le=MAX_TRIALS, strict=True)
    warmup_epochs: int | None = Field(default=None, ge=0, le=MAX_EPOCHS, strict=True)
    percentile: float = Field(default=25.0, gt=0.0, lt=100.0)
    by_variant: bool = True

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw


class SearchSpec(StrictModel):
    """Sampler, pruner, budget and what to optimize."""

    sampler: Sampler = "tpe"
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    n_trials: int = Field(default=20, ge=1, le=MAX_TRIALS, strict=True)
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    seed: int | None = Field(default=0, ge=0, le=2**31 - 1, strict=True)
    metric: Metric = "val_acc"
    direction: Direction | None = None
    objectives: list[Objective] | None = None
    # Feasibility: `METRIC <= x` / `METRIC >= x`; infeasible trials never count as best and
    # Optuna's samplers (TPE, NSGA-II, GP) steer away from them (Trial.set_constraint).
    constraints: list[str] = Field(default_factory=list, max_length=MAX_CONSTRAINTS)
    # Earlier studies (ids) whose finished trials seed this one (studyd.daemon.warm_start).
    warm_start: list[Annotated[int, Field(ge=1, le=2**31 - 1, strict=True)]] = Field(
        default_factory=list, max_length=MAX_WARM_START
    )

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, raw: list[str]) -> list[str]:
        out: list[str] = []
        for text in raw:
            normal = constraint_text(*parse_constraint(text))
            if normal in out:
                raise ValueError(
                    f"{text!r} repeats {raw[out.index(normal)]!r} (both are {normal!r}); "
                    "list each constraint once"
                )
            out.append(normal)
        return out

    @field_validator("warm_start")
    @classmethod
    def _warm_start(cls, raw: list[int]) -> list[int]:
        if len(set(raw)) != len(raw):
            raise ValueError("name each study once")
        return raw

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, raw: list[str] | None) -> list[str] | None:
        if raw is None:
            return None
        if len(raw) < 2 or len(set(raw)) != len(raw):
            raise ValueError(
                "objectives needs two or more different metrics, e.g. [val_acc, gap]; "
                "for one objective use metric instead"
            )
        return raw

    @model_validator(mode="after")
    def _pruning(self) -> SearchSpec:
        if self.objectives and self.pruner.name != "none":
            raise ValueError(
                "pruner: Optuna cannot prune multi-objective studies; write pruner: none"
            )
        return self

    def directions(self) -> list[str]:
        """Optuna study directions: one per objective."""
        if self.objectives:
            return [OBJECTIVE_DIRECTIONS[o] for o in self.objectives]
        return [self.direction or OBJECTIVE_DIRECTIONS[self.metric]]

    def objective_names(self) -> list[str]:
        return list(self.objectives) if self.objectives else [self.metric]
