"""What optuna-dashboard shows of a study: its objectives by name and, in the study's note, the
answer — the verdict, the per-variant table with the train−validation gap, the test score and
the variant-aware importances (fANOVA within each variant); and its key plots as graphs
(`studyd.daemon.dashboard_graphs`).

The dashboard's own importance panel runs fANOVA over every parameter at once, where a knob only
one variant has looks decisive and `variant` looks irrelevant; the note gives studyd's reading.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from sqlalchemy import Engine

from storage import trial_store
from studyd.analysis.points import comparison, points
from studyd.daemon.dashboard_graphs import save_study_graphs
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)

# Parameters listed per variant in the note (most important first).
TOP_PARAMS = 3


def name_objectives(study: optuna.Study, spec: StudySpec) -> None:
    """The dashboard labels objectives by these names (`val_acc`, …), not "Objective 0"."""
    # Optuna's metric names (optuna-dashboard's `set_objective_names` is deprecated for it).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.search.objective_names()))


def write_study_note(
    engine: Engine, study: optuna.Study, spec: StudySpec, *, test_score: float | None
) -> str:
    """Compute the study's evidence and save it as the study's dashboard note, with its graphs
    (`dashboard_graphs`); returns the note."""
    from optuna_dashboard import save_note

    # optuna.importance brings scikit-learn and SciPy: only a finalising worker needs them.
    from studyd.analysis.evidence import study_coverage, study_evidence

    name_objectives(study, spec)
    evidence = study_evidence(
        engine,
        study.study_name,
        directions=spec.search.directions(),
        auto_repeats=spec.auto_repeats,
    )
    evidence["requested_variants"] = study_coverage(engine, study.study_name, spec.dropout.variants)
    note = study_note(
        evidence,
        metric=spec.search.objective_names()[0],
        studyd_id=study.user_attrs.get("studyd_id"),
        test_score=test_score,
        test_trial=study.user_attrs.get("test_trial"),
        search_ended=study.user_attrs.get("search_ended"),
        panel_best=trial_store.storage_best_number(study),
    )
    save_note(study, note)
    save_study_graphs(study, spec.search.objective_names()[0])
    return note


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def study_note(
    evidence: dict[str, Any],
    *,
    metric: str,
    studyd_id: Any,
    test_score: float | None,
    test_trial: Any = None,
    search_ended: str | None = None,
    panel_best: int | None = None,
) -> str:
    """The note's Markdown from `analysis.evidence.study_evidence`'s output; `panel_best`: the
    trial the dashboard's own Best Trial panel shows, explained when it is not studyd's."""
    from studyd.analysis.evidence import headline_verdict  # the summary's own sentence

    stats = evidence.get("variant_stats") or []
    verdict = headline_verdict(evidence.get("verdict"), stats)
    lines = [f"# studyd study {studyd_id}: the answer", "", f"**Verdict:** {verdict or '—'}", ""]
    if test_score is not None:
        lines.append(f"**Test score** of the best trial (#{test_trial}): {_fmt(test_score)}")
        lines.append("")
    if test_trial is not None and panel_best is not None and panel_best != test_trial:
        lines.append(
            f"studyd's best trial is #{test_trial}: the best feasible search trial (a seed "
            "replicate is not a candidate: the best of a config's fresh seeds is its luckiest), "
            f"the lowest number among equal values. The dashboard's Best Trial panel shows "
            f"#{panel_best}: its query counts seed replicates, ignores constraints and picks "
            "among equal values in no set order."
        )
        lines.append("")
    if search_ended:
        lines += [f"**Search:** {search_ended}", ""]
    lines += _requested_lines(evidence.get("requested_variants") or [])
    lines += _replicate_table(evidence.get("by_variant") or [])
    lines += _variant_table(stats, evidence.get("diagnostics") or [], metric)
    lines += _importance_lines(evidence.get("variant_importances"))
    return "\n".join(lines) + "\n"


def _requested_lines(coverage: list[dict[str, Any]]) -> list[str]:
    """Every variant the spec asks for, with what became of it (`analysis.coverage`)."""
    if not coverage:
        return []
    return ["## Variants asked for", "", *(f"- {row['status']}" for row in coverage), ""]


def _replicate_table(ranked: list[dict[str, Any]]) -> list[str]:
    """The verdict's evidence: each variant's chosen config over its fresh seeds, in points."""
    rows = [row for row in ranked if row.get("replicated")]
    if not rows:
        return []
    lines = [
        "## Seed replicates (what the verdict rests on)",
        "",
        "| variant | seeds | mean | ±95% CI | vs leader | vs none |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [row["group"], row.get("n_seeds"), points(row.get("mean"), 2)]
        cells += [points(row.get("half_width"), 1)]
        cells += [comparison(row.get("vs_best")), comparison(row.get("vs_none"))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    note = "In points; a difference is paired over shared seeds, * where the verdict claims it."
    return [*lines, "", note, ""]


def _variant_table(
    stats: list[dict[str, Any]], diagnostics: list[dict[str, Any]], metric: str
) -> list[str]:
    gaps = {d.get("variant"): d for d in diagnostics}
    lines = [
        "## Per variant",
        "",
        f"| variant | runs | best {metric} | median {metric} | train acc | val acc | gap |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in stats:
        diag = gaps.get(row["group"], {})
        cells = [row["group"], row["n"], row["best"], row["median"]]
        cells += [diag.get("train_acc"), diag.get("val_acc"), diag.get("gap")]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    lines += ["", "gap = train accuracy − validation accuracy (mean over the variant's runs).", ""]
    return lines


def _importance_lines(importances: dict[str, Any] | None) -> list[str]:
    if not importances:
        return []
    lines = ["## What matters (fANOVA within each variant)", ""]
    overall = (importances.get("overall") or {}).get("params") or {}
    if overall:
        lines.append(f"- across variants: {_top(overall)}")
    for variant, result in (importances.get("variants") or {}).items():
        effect = result.get("marginal_effect")
        own = _top(result.get("params") or {}) or "too few runs for fANOVA"
        lines.append(f"- **{variant}** (effect vs mean {_fmt(effect, 4)}): {own}")
    return [*lines, ""]


def _top(params: dict[str, float]) -> str:
    ranked = sorted(params.items(), key=lambda kv: -(kv[1] or 0))[:TOP_PARAMS]
    return ", ".join(f"{name} {share:.2f}" for name, share in ranked)
