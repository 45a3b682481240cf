"""A static HTML + PNG report of one study, built from the API's JSON (never from the database).

Plots: optimisation history, accuracy per variant, dropout rate vs accuracy, train−val gap per
variant (what dropout exists to shrink), and the learning curves of the best trials.
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are written on servers without a display
import matplotlib.pyplot as plt  # noqa: E402

from models.config import VARIANTS  # noqa: E402
from studyd.analysis.counted import candidates, counted_runs  # noqa: E402
from studyd.client.rest import ClientError, StudydClient  # noqa: E402
from studyd.client.summary_rows import (  # noqa: E402
    SUMMARY_HEADER,
    best_of,
    best_trial_line,
    fmt_value,
    importance_rows,
    own_config,
    pareto_rows,
    ranking_rows,
    trial_attr,
    trial_rates,
    without_timings,
)

JSON = dict[str, Any]


def _variant_index(name: str) -> int:
    return VARIANTS.index(name) if name in VARIANTS else len(VARIANTS)


def variant_color(name: str) -> str:
    """One colour per variant in every plot (matplotlib's tab10 in VARIANTS order)."""
    return f"C{_variant_index(name) % 10}"


@dataclass
class ReportFiles:
    """What `write_report` wrote: the HTML page and every file beside it."""

    index: Path
    files: list[Path] = field(default_factory=list)


@dataclass
class Figure:
    filename: str
    title: str
    caption: str


def write_report(
    api: StudydClient, study_id: int, out_dir: Path, *, compare_with: Sequence[int] = ()
) -> ReportFiles:
    """Fetch a study's JSON over the API and write `index.html` plus one PNG per plot; with
    `compare_with`, also the variants ranked across those studies and this one (GET /compare)."""
    study = api.study(study_id)
    try:
        summary: JSON = api.summary(study_id)
    except ClientError:  # a study with no finished trial may have no summary yet
        summary = {}
    trials = list(api.iter_trials(study_id, sort="number"))
    best = best_of_each_variant(counted_runs(_done(trials)), _maximize(study))
    detailed = [_with_curve(api, study_id, t) for t in best]
    comparison = api.compare([study_id, *compare_with]) if compare_with else None
    return render_report(study, summary, trials, detailed, out_dir, comparison=comparison)


def render_report(
    study: JSON,
    summary: JSON,
    trials: list[JSON],
    best: list[JSON],
    out_dir: Path,
    *,
    comparison: JSON | None = None,
) -> ReportFiles:
    """Write the report from already-fetched JSON (separate so it is testable without a server)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # The plots of results count what the summary counts (analysis.counted): trained runs, a
    # reused trial once, feasible configurations only while some are.
    runs = counted_runs(_done(trials))
    figures = [
        fig
        for fig in (
            _history(trials, _maximize(study), out_dir),
            _per_variant(runs, "value", "validation accuracy", "variants.png", out_dir),
            _rate_vs_accuracy(runs, out_dir),
            _per_variant(runs, "gap", "train − val accuracy gap", "gap.png", out_dir),
            _curves(best, out_dir),
            _across_studies(comparison, out_dir),
        )
        if fig is not None
    ]
    index = out_dir / "index.html"
    index.write_text(_page(study, summary, trials, figures), encoding="utf-8")
    return ReportFiles(index=index, files=[index, *(out_dir / f.filename for f in figures)])


# -- reading trials ----------------------------------------------------------------------------


def _is_complete(trial: JSON) -> bool:
    return str(trial.get("state", "")).upper() == "COMPLETE"


def _done(trials: list[JSON]) -> list[JSON]:
    """The complete trials with a value (pages without `user_attrs` read as having none)."""
    return [
        {**t, "user_attrs": t.get("user_attrs") or {}}
        for t in trials
        if _is_complete(t) and t.get("value") is not None
    ]


def _maximize(study: JSON) -> bool:
    direction = study.get("direction") or (study.get("directions") or ["maximize"])[0]
    spec = study.get("spec") or {}
    search = spec.get("search") if isinstance(spec, dict) else None
    if isinstance(search, dict) and search.get("direction"):
        direction = search["direction"]
    return str(direction).lower() != "minimize"


def _variant(trial: JSON) -> str:
    return str(trial_attr(trial, "variant") or (trial.get("params") or {}).get("variant", "?"))


def _mean_rate(trial: JSON) -> float | None:
    rates = trial_rates(trial)
    if isinstance(rates, int | float):
        return float(rates)
    if isinstance(rates, list) and rates:
        return float(statistics.fmean(float(r) for r in rates))
    return None


def best_of_each_variant(runs: list[JSON], maximize: bool) -> list[JSON]:
    """Each variant's best run, best first: the five best trials were often all one variant,
    with no `none` to compare against. A tie goes to the earlier trial (the best trial's rule)."""
    sign = -1.0 if maximize else 1.0
    ranked = sorted(runs, key=lambda t: (sign * t["value"], t["number"]))
    firsts: dict[str, JSON] = {}
    for trial in ranked:
        firsts.setdefault(_variant(trial), trial)
    return list(firsts.values())


def _with_curve(api: StudydClient, study_id: int, trial: JSON) -> JSON:
    if trial_attr(trial, "curve"):
        return trial
    return api.trial(study_id, int(trial["number"]))


# -- figures -----------------------------------------------------------------------------------


def _save(fig: Any, out_dir: Path, filename: str) -> None:
    fig.tight_layout()
    fig.savefig(out_dir / filename, dpi=110)
    plt.close(fig)


def _history(trials: list[JSON], maximize: bool, out_dir: Path) -> Figure | None:
    done = _done(trials)
    if not done:
        return None
    # The best so far runs over the trials the best trial is chosen from (feasible ones while
    # some are), so that it ends at the study's best.
    eligible = {t["number"] for t in candidates(done)}
    fig, ax = plt.subplots(figsize=(7, 4))
    shown = [t for t in done if t["number"] in eligible]
    ax.scatter([t["number"] for t in shown], [t["value"] for t in shown], s=18, alpha=0.7,
               label="complete trial")  # fmt: skip
    if others := [t for t in done if t["number"] not in eligible]:
        ax.scatter([t["number"] for t in others], [t["value"] for t in others], s=22,
                   marker="x", color="grey", label="infeasible (not counted)")  # fmt: skip
    pick = max if maximize else min
    numbers: list[int] = []
    running: list[float] = []
    for t in shown:
        numbers.append(t["number"])
        running.append(t["value"] if not running else pick(running[-1], t["value"]))
    ax.step(numbers, running, where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial number", ylabel="objective (validation accuracy)")
    ax.legend(loc="lower right")
    _save(fig, out_dir, "history.png")
    caption = "Every complete trial and the best so far"
    caption += ", over feasible configurations (a grey × broke a constraint)." if others else "."
    return Figure("history.png", "Optimisation history", caption)


def _per_variant(
    trials: list[JSON], key: str, label: str, filename: str, out_dir: Path
) -> Figure | None:
    groups: dict[str, list[float]] = defaultdict(list)
    for t in trials:
        value = t.get("value") if key == "value" else trial_attr(t, key)
        if _is_complete(t) and isinstance(value, int | float):
            groups[_variant(t)].append(float(value))
    if not groups:
        return None
    names = sorted(groups, key=lambda n: (_variant_index(n), n))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot([groups[n] for n in names], tick_labels=names, showfliers=False)
    for i, name in enumerate(names, start=1):
        ax.scatter([i] * len(groups[name]), groups[name], s=14, alpha=0.7, c=variant_color(name))
    ax.set(ylabel=label)
    ax.tick_params(axis="x", rotation=30)
    _save(fig, out_dir, filename)
    counts = ", ".join(f"{name} {len(groups[name])}" for name in names)
    caption = (
        f"{label} of each variant's trained runs, as the summary counts them (a reused trial "
        f"once; feasible configurations only while some are). Box: quartiles. Runs: {counts}."
    )
    return Figure(filename, f"{label[0].upper()}{label[1:]} per variant", caption)


def _rate_vs_accuracy(trials: list[JSON], out_dir: Path) -> Figure | None:
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t in trials:
        rate = _mean_rate(t)
        if _is_complete(t) and rate is not None and t.get("value") is not None:
            points[_variant(t)].append((rate, float(t["value"])))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in sorted(points, key=lambda n: (_variant_index(n), n)):
        xs, ys = zip(*points[name], strict=True)
        ax.scatter(xs, ys, s=18, alpha=0.75, label=name, c=variant_color(name))
    ax.set(xlabel="dropout rate p (mean over layers)", ylabel="validation accuracy")
    ax.legend(fontsize="small", ncols=2)
    _save(fig, out_dir, "rate.png")
    caption = "Each trained run's dropout rate and score, as the summary counts them."
    return Figure("rate.png", "Rate vs accuracy", caption)


def _curves(best: list[JSON], out_dir: Path) -> Figure | None:
    curved = [t for t in best if trial_attr(t, "curve")]
    if not curved:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for trial in curved:
        curve = trial_attr(trial, "curve")
        epochs = [p.get("epoch", j) for j, p in enumerate(curve)]
        color = variant_color(_variant(trial))
        label = f"#{trial['number']} {_variant(trial)}"
        ax.plot(epochs, [p.get("val_acc") for p in curve], color=color, label=f"{label} val")
        ax.plot(epochs, [p.get("train_acc") for p in curve], color=color, linestyle="--")
    ax.set(xlabel="epoch", ylabel="accuracy (solid: validation, dashed: train)")
    ax.legend(fontsize="small")
    _save(fig, out_dir, "curves.png")
    return Figure(
        "curves.png",
        "Learning curves of each variant's best trial",
        "Train (dashed) and validation (solid).",
    )


# -- the page ----------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3;text-align:left}td.n{text-align:right}img{max-width:100%}
.verdict{font-size:1.15em;font-weight:600;padding:.6em;
background:#eef6ee;border-left:4px solid #4a4}
"""


def _across_studies(comparison: JSON | None, out_dir: Path) -> Figure | None:
    """Demšar's critical-difference diagram of GET /compare, its answer as the caption."""
    if comparison is None:
        return None
    from studyd.client.cd_diagram import write_cd_diagram

    write_cd_diagram(comparison, out_dir / "across-studies.png")
    studies = ", ".join(f"{s['study_id']} ({s['dataset']})" for s in comparison["studies"])
    return Figure(
        "across-studies.png",
        "variants across studies (average rank, critical difference)",
        f"Studies {studies}. {comparison['answer']}",
    )


def _table(rows: list[JSON]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k, v in row.items() if k not in columns and not isinstance(v, dict))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if isinstance(r.get(c), int | float) else ""}">'
            f"{html.escape(fmt_value(r.get(c)))}</td>"
            for c in columns
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_html(summary: JSON) -> str:
    parts: list[str] = []
    # The evidence's nested rows, flattened the way `studyd summary` shows them.
    summary = {
        **summary,
        "by_variant": ranking_rows(summary.get("by_variant")),
        "by_placement": ranking_rows(summary.get("by_placement")),
        "variant_importances": importance_rows(summary.get("variant_importances")),
        "pareto_front": pareto_rows(summary),
        "diagnostics": without_timings(summary.get("diagnostics")),
        # One parameter varying has all of the variance by definition: nothing to read.
        "importances": summary.get("importances")
        if len(summary.get("importances") or {}) > 1
        else None,
        # The variant's own knobs only (not every variant's defaults).
        **{
            key: own_config(summary[key])
            for key in ("best_config", "best_train")
            if isinstance(summary.get(key), dict)
        },
    }
    if summary.get("verdict"):
        parts.append(f'<p class="verdict">{html.escape(str(summary["verdict"]))}</p>')
    if summary.get("best_trial_note"):
        parts.append(f"<p>{html.escape(str(summary['best_trial_note']))}</p>")
    if isinstance(summary.get("best"), dict):
        parts.append(f"<p><b>best trial:</b> {html.escape(best_trial_line(summary['best']))}</p>")
    if summary.get("importances_note") and not summary.get("importances"):
        parts.append(f"<p><i>importances: {html.escape(str(summary['importances_note']))}</i></p>")
    for key, section in summary.items():
        if key in SUMMARY_HEADER or key in ("best", "importances_note"):
            continue
        if section in (None, [], {}):
            continue
        title = f"<h3>{html.escape(key.replace('_', ' '))}</h3>"
        if isinstance(section, list) and all(isinstance(r, dict) for r in section):
            parts.append(title + _table(section))
        elif isinstance(section, dict) and all(isinstance(v, dict) for v in section.values()):
            parts.append(title + _table([{"name": k, **v} for k, v in section.items()]))
        elif isinstance(section, dict):
            parts.append(title + _table([{"name": k, "value": v} for k, v in section.items()]))
        else:
            label = html.escape(key.replace("_", " "))
            parts.append(f"<p><b>{label}:</b> {html.escape(fmt_value(section))}</p>")
    return "\n".join(parts)


def _page(study: JSON, summary: JSON, trials: list[JSON], figures: list[Figure]) -> str:
    best = best_of(study)
    meta = [
        {"field": "study", "value": f"{study.get('id')} · {study.get('name', '')}"},
        {"field": "state", "value": study.get("state")},
        {"field": "trials listed", "value": len(trials)},
        {"field": "target trials", "value": study.get("target_trials")},
        {
            "field": "best trial",
            "value": f"#{best.get('number')}: {fmt_value(best.get('value'))}" if best else None,
        },
        {"field": "test score (best trial)", "value": study.get("test_score")},
        {"field": "created", "value": study.get("created_at")},
        {"field": "finished", "value": study.get("finished_at")},
    ]
    figures_html = "\n".join(
        f"<h2>{html.escape(f.title)}</h2><p>{html.escape(f.caption)}</p>"
        f'<img src="{html.escape(f.filename)}" alt="{html.escape(f.title)}">'
        for f in figures
    )
    title = f"studyd report — study {study.get('id')} ({study.get('name', '')})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{_table([m for m in meta if m["value"] is not None])}
<h2>Summary</h2>
{_summary_html(summary) or "<p>No summary yet (no finished trial).</p>"}
{figures_html}
</body></html>
"""
