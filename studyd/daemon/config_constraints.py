"""Constraints decided before training: a bound on what the configuration alone fixes.

`param_count` is known before the first batch (issue 26: a DropConnect 2 × 191 net with 42,977
parameters against `param_count <= 20000` trained all 40 epochs, 40 % of the study's time). A
proposal that breaks such a bound is told to the sampler untrained (the worker's trial path):

- state PRUNED, with its constraint values set (`Trial.set_constraint`). Optuna's TPE reads a
  trial's constraints before its state (`_split_trials`): a PRUNED trial with a violation > 0 is
  ranked among the infeasible ones by how far it is over, so the sampler steers away from it as
  from a trained infeasible trial. COMPLETE would need an objective value nobody measured (and
  would count as a trained run); FAIL is dropped by every sampler, which would propose it again.
- user attribute `infeasible_untrained` (the reason), so summaries, the dashboard and the CLI
  tell it apart from a trial the pruner stopped, and nothing counts it as a trained run.

A search whose sampler keeps proposing such configurations ends with a reason
(`infeasible_search_end`) instead of spinning through proposals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.config import ModelConfig
from studyd.spec import StudySpec, constraint_violation, parse_constraint

# Metrics a configuration fixes before training (every other one needs a trained network).
CONFIG_METRICS = ("param_count",)
# The user attribute that marks a trial told infeasible without training.
INFEASIBLE_ATTR = "infeasible_untrained"
# Untrained infeasible proposals in a row after which the search ends: the sampler keeps
# proposing outside the bound (as `runs.REPEATS_IN_A_ROW` ends one that keeps repeating itself).
INFEASIBLE_IN_A_ROW = 20


@dataclass(frozen=True)
class UntrainedInfeasible:
    """A proposal that breaks a config-decidable constraint: what it is and why."""

    values: dict[str, float]  # metric → its value from the config (param_count → n)
    violations: dict[str, float]  # every spec constraint text → Optuna's violation (> 0 broken)
    reason: str  # "42,977 parameters; param_count <= 20000"

    def attrs(self) -> dict[str, Any]:
        """The user attributes the worker records on the trial (beside `config_attrs`)."""
        return {INFEASIBLE_ATTR: self.reason, **self.values}


def config_param_count(model_cfg: ModelConfig) -> int:
    """Trainable parameters of the network `model_cfg` builds, counted without allocating it."""
    import torch

    from models.mlp import build_mlp, count_parameters

    with torch.device("meta"):  # shapes only: no weights are initialised
        return count_parameters(build_mlp(model_cfg))


def decidable_constraints(spec: StudySpec) -> list[str]:
    """The spec's constraints whose metric the configuration fixes."""
    return [c for c in spec.search.constraints if parse_constraint(c)[0] in CONFIG_METRICS]


def untrained_infeasible(spec: StudySpec, model_cfg: ModelConfig) -> UntrainedInfeasible | None:
    """The broken config-decidable constraints of a proposal; None when it may be trained.

    Only the decidable constraints get a value: one that needs training is unknown, and
    `records.constraint_values`' +inf for it would hide from TPE how far over the bound it is.
    """
    decidable = decidable_constraints(spec)
    if not decidable:
        return None
    values = {"param_count": float(config_param_count(model_cfg))}
    violations = {c: constraint_violation(c, values[parse_constraint(c)[0]]) for c in decidable}
    broken = [c for c, v in violations.items() if v > 0]
    if not broken:
        return None
    count = int(values["param_count"])
    reason = f"{count:,} parameters; {', '.join(broken)}"
    return UntrainedInfeasible(values=values, violations=violations, reason=reason)


def infeasible_search_end(in_a_row: int, last_reason: str) -> str | None:
    """Why the search ends after `in_a_row` untrained infeasible proposals; None to go on."""
    if in_a_row < INFEASIBLE_IN_A_ROW:
        return None
    return (
        f"the sampler proposed {in_a_row} configurations in a row that break a constraint "
        f"known before training (last: {last_reason}); loosen the bound or narrow the space "
        "(width, depth)"
    )
