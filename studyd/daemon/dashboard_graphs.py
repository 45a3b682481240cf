"""The key plots of a study, saved as optuna-dashboard graphs on its page: the objective and the
train−validation gap per variant, and dropout rate against the objective coloured by variant.

Each graph has a fixed id, so a study re-finalised (replicates, then its test score) overwrites
its graphs instead of adding copies. Only the runs the search counted are plotted: a repeat
(`duplicate_of`) is the same run again and a seed replicate re-measures one, so both would
weigh a configuration twice; an infeasible configuration is no answer while a feasible one is.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.queue import DUPLICATE_ATTR
from storage.trial_record import meets_constraints

if TYPE_CHECKING:
    import plotly.graph_objects as go

# Graph ids (HTML ids) on the dashboard page, and their titles' stems.
OBJECTIVE_BY_VARIANT = "studyd-objective-by-variant"
GAP_BY_VARIANT = "studyd-gap-by-variant"
RATE_VS_OBJECTIVE = "studyd-rate-vs-objective"


def counted_runs(study: optuna.Study) -> list[FrozenTrial]:
    """The study's completed search runs, each configuration once (no repeats, no replicates);
    with constraints, the feasible ones while some are (as the summary counts: analysis.counted)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    searched = [
        t for t in done if DUPLICATE_ATTR not in t.user_attrs and "replicate_of" not in t.user_attrs
    ]
    feasible = [t for t in searched if meets_constraints(t.constraints)]
    return feasible if 0 < len(feasible) < len(searched) else searched


def study_figures(trials: list[FrozenTrial], metric: str) -> dict[str, go.Figure]:
    """The three figures by graph id (none when no run completed)."""
    # Plotly loads in a finalising worker only, not in every process importing the daemon.
    import plotly.graph_objects as go

    if not trials:
        return {}
    by_variant: dict[str, list[FrozenTrial]] = defaultdict(list)
    for trial in trials:
        by_variant[str(trial.user_attrs.get("variant", trial.params.get("variant", "?")))].append(
            trial
        )
    variants = sorted(by_variant, key=lambda v: -max(t.values[0] for t in by_variant[v]))
    objective = go.Figure(
        [go.Box(name=v, y=[t.values[0] for t in by_variant[v]], boxpoints="all") for v in variants]
    )
    objective.update_layout(title=f"{metric} per variant", yaxis_title=metric, showlegend=False)
    gap = go.Figure(
        [
            go.Box(name=v, y=[g for t in by_variant[v] if (g := _gap(t)) is not None])
            for v in variants
        ]
    )
    gap.update_layout(
        title="train − validation accuracy gap per variant",
        yaxis_title="train acc − val acc",
        showlegend=False,
    )
    rate = go.Figure(
        [
            go.Scatter(
                name=v,
                mode="markers",
                x=[rate_of(t) for t in by_variant[v]],
                y=[t.values[0] for t in by_variant[v]],
            )
            for v in variants
        ]
    )
    rate.update_layout(
        title=f"dropout rate vs {metric}, by variant",
        xaxis_title="dropout rate (mean over its sites)",
        yaxis_title=metric,
    )
    return {OBJECTIVE_BY_VARIANT: objective, GAP_BY_VARIANT: gap, RATE_VS_OBJECTIVE: rate}


def rate_of(trial: FrozenTrial) -> float:
    """The trial's dropout rate: the mean over the network's dropout sites (0 without dropout)."""
    config: dict[str, Any] = trial.user_attrs.get("config") or {}
    rates = list(config.get("rates") or [])
    if config.get("input_rate"):
        rates.append(config["input_rate"])
    return fmean(rates) if rates else 0.0


def _gap(trial: FrozenTrial) -> float | None:
    gap = trial.user_attrs.get("gap")
    return float(gap) if isinstance(gap, int | float) else None


def save_study_graphs(study: optuna.Study, metric: str) -> list[str]:
    """Draw and save the study's graphs on its dashboard page; returns their ids."""
    from optuna_dashboard import save_plotly_graph_object

    figures = study_figures(counted_runs(study), metric)
    for graph_id, figure in figures.items():
        save_plotly_graph_object(study, figure, graph_object_id=graph_id)
    return list(figures)
