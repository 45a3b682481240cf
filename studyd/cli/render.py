"""How the client commands show API JSON to a person: rich tables and one-line progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from studyd.analysis.coverage import plural
from studyd.client.summary_rows import (
    JSON,
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

STATE_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "magenta",
    "COMPLETE": "green",
    "PRUNED": "yellow",
    "FAIL": "red",
    "RUNNING": "cyan",
    "WAITING": "dim",
}


# -- reading the study JSON ------------------------------------------------------------------


def trial_counts(study: JSON) -> dict[str, int]:
    """Trial counts by Optuna state (`COMPLETE`, `PRUNED`, `RUNNING`, `FAIL`, `WAITING`)."""
    counts = study.get("trial_counts") or study.get("counts") or study.get("progress") or {}
    if not isinstance(counts, dict):
        return {}
    return {str(k).upper(): int(v) for k, v in counts.items() if isinstance(v, int | float)}


def finished_of(study: JSON) -> int:
    if isinstance(study.get("finished"), int):
        return study["finished"]
    counts = trial_counts(study)
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


def running_of(study: JSON) -> int:
    counts = trial_counts(study)
    if "RUNNING" in counts:
        return counts["RUNNING"]
    return max(0, int(study.get("claimed", 0)) - finished_of(study))


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def eta_seconds(study: JSON, now: datetime | None = None) -> float | None:
    """Remaining time at the study's own pace so far: elapsed / finished × remaining."""
    finished, target = finished_of(study), int(study.get("target_trials") or 0)
    started = parse_time(study.get("started_at"))
    if not started or finished <= 0 or target <= finished:
        return 0.0 if target and finished >= target else None
    elapsed = ((now or datetime.now(UTC)) - started).total_seconds()
    return max(0.0, elapsed / finished * (target - finished))


# -- formatting values -----------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{sec:02d}s"
    return f"{sec}s"


def styled_state(state: Any) -> Text:
    text = str(state or "—")
    return Text(text, style=STATE_STYLE.get(text, ""))


def target_parts(study: JSON) -> str | None:
    """`20 searched + 12 seed replicates` once the finaliser has added replicates to the
    target (it grows past the spec's n_trials); None before, or when the search ended early
    (its target then no longer tells the two apart)."""
    spec = study.get("spec") if isinstance(study.get("spec"), dict) else {}
    searched = (spec.get("search") or {}).get("n_trials")
    target = study.get("target_trials")
    if not isinstance(searched, int) or not isinstance(target, int) or study.get("search_ended"):
        return None
    if target <= searched:
        return None
    return f"{searched} searched + {plural(target - searched, 'seed replicate')}"


def progress_line(study: JSON) -> str:
    """`12/40 finished · 2 running · best 0.9712 (#7) · ETA 1m20s` — one line of progress;
    `20/32 finished (20 searched + 12 seed replicates) · …` once replicates are queued."""
    best = best_of(study)
    best_text = "—"
    if best:
        best_text = f"{fmt_value(best.get('value'))} (#{best.get('number')})"
    parts = target_parts(study)
    line = (
        f"{finished_of(study)}/{study.get('target_trials', '?')} finished"
        f"{f' ({parts})' if parts else ''} · {running_of(study)} running · best {best_text}"
    )
    if study.get("state") in ("done", "failed", "cancelled"):
        return line
    return f"{line} · ETA {fmt_duration(eta_seconds(study))}"


def _cells(*values: Any) -> list[Text]:
    """Cells as plain Text: names and errors from users must never be read as rich markup."""
    return [v if isinstance(v, Text) else Text(str(v)) for v in values]


# -- tables ----------------------------------------------------------------------------------


def studies_table(items: list[JSON], total: int | None = None) -> Table:
    title = f"studies ({len(items)} of {total})" if total is not None else "studies"
    table = Table(title=title, title_justify="left")
    for name, justify in [
        ("id", "right"),
        ("name", "left"),
        ("state", "left"),
        ("finished", "right"),
        ("priority", "right"),
        ("created", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for study in items:
        row = _cells(
            str(study.get("id")),
            str(study.get("name", "")),
            styled_state(study.get("state")),
            f"{finished_of(study)}/{study.get('target_trials', '?')}",
            str(study.get("priority", 0)),
            str(study.get("created_at", ""))[:16].replace("T", " "),
        )
        table.add_row(*row)
    return table


def key_value_table(rows: list[tuple[str, Any]], title: str | None = None) -> Table:
    table = Table(show_header=False, title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(*_cells(key, value if isinstance(value, Text) else fmt_value(value)))
    return table


def study_view(study: JSON) -> Group:
    counts = trial_counts(study)
    best = best_of(study)
    rows: list[tuple[str, Any]] = [
        ("study", f"{study.get('id')} · {study.get('name', '')}"),
        ("state", styled_state(study.get("state"))),
        ("progress", progress_line(study)),
        ("trials", ", ".join(f"{k.lower()} {v}" for k, v in counts.items() if v) or "none yet"),
        ("priority", study.get("priority")),
        ("created", study.get("created_at")),
        ("started", study.get("started_at")),
        ("finished at", study.get("finished_at")),
    ]
    if best:
        rows.append(("best trial", best_trial_line(best)))
        if best.get("params"):
            rows.append(("best params", best.get("params")))
    if study.get("test_score") is not None:
        rows.append(("test score", study.get("test_score")))
    if study.get("search_ended"):
        rows.append(("search ended", study["search_ended"]))
    if study.get("dashboard_url"):
        rows.append(("dashboard", study["dashboard_url"]))
    if study.get("error"):
        rows.append(("error", Text(str(study["error"]), style="red")))
    return Group(key_value_table([(k, v) for k, v in rows if v not in (None, "")]))


def trial_net(trial: JSON) -> str:
    """The hidden widths it trained (the API's `hidden`, from its recorded config): `2×128`
    (depth × width) when equal, else `256-64`."""
    hidden = trial.get("hidden")
    params = trial.get("params") or {}
    if not hidden and "width" in params:  # asked, its network not recorded yet
        return f"{params.get('depth', 1)}×{params['width']}"
    if not hidden:
        return "—"
    if len(set(hidden)) == 1:
        return f"{len(hidden)}×{hidden[0]}"
    return "-".join(str(h) for h in hidden)


# `studyd trials`' columns, and the order they give way in when the terminal (or a pipe's 80
# columns) is too narrow: a column is dropped whole, a number is never cut.
TRIAL_COLUMNS = ("#", "state", "value", "variant", "placement", "rate", "net", "gap", "secs")
DROPPED_FIRST = ("secs", "placement", "gap", "rate", "net")
_LEFT = ("state", "variant", "placement")


def trials_table(items: list[JSON], total: int | None = None, width: int = 80) -> Group:
    """Trials as rows that fit `width` columns: columns that do not fit are left out (named
    under the table) rather than squeezed into "0…"; when the page holds fewer trials than
    the study, the last line says how to see the rest."""
    rows = [_trial_row(trial) for trial in items]
    shown = list(TRIAL_COLUMNS)
    widths = {c: max([len(c), *(len(r[c].plain) for r in rows)]) for c in shown}
    for column in DROPPED_FIRST:
        # One space between columns (the box's divider) and one at each edge.
        if sum(widths[c] for c in shown) + len(shown) + 1 <= width:
            break
        shown.remove(column)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    for name in shown:
        justify = "left" if name in _LEFT else "right"
        table.add_column(name, justify=justify, no_wrap=True, min_width=widths[name])  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[c] for c in shown))
    title = f"trials ({len(items)} of {total})" if total is not None else "trials"
    parts: list[Any] = [Text(title, style="italic"), table]
    left_out = [c for c in TRIAL_COLUMNS if c not in shown]
    if left_out:
        parts.append(Text(f"not shown at this width: {', '.join(left_out)} (--json)", style="dim"))
    if total is not None and total > len(items):
        parts.append(Text(f"{total - len(items)} more: --limit {total} shows all", style="dim"))
    return Group(*parts)


def _trial_row(trial: JSON) -> dict[str, Text]:
    params = trial.get("params") or {}
    values = {
        "#": str(trial.get("number")),
        "state": _trial_state(trial),
        "value": fmt_value(trial.get("value")),
        "variant": str(trial_attr(trial, "variant") or params.get("variant", "—")),
        "placement": str(trial_attr(trial, "placement") or params.get("placement", "—")),
        "rate": fmt_value(trial_rates(trial), 2),
        "net": trial_net(trial),
        "gap": fmt_value(trial_attr(trial, "gap"), 3),
        "secs": fmt_value(trial.get("duration_seconds"), 0),
    }
    return dict(zip(values, _cells(*values.values()), strict=True))


# What `studyd trial` shows of a trial's attributes, in this order (the rest: --json).
TRIAL_ATTRS = ("val_acc", "train_acc", "gap", "val_loss", "param_count", "epoch_seconds")
# Where a trial's result came from when it did not train a run of its own.
TRIAL_LINEAGE = ("reused_from", "replicate_of", "retry_of", "duplicate_of")


def trial_view(trial: JSON) -> Group:
    """One trial: state, value, what it trained, its measures, constraints and learning curve."""
    train = trial.get("train") if isinstance(trial.get("train"), dict) else {}
    rows: list[tuple[str, Any]] = [
        ("trial", trial.get("number")),
        ("state", _trial_state(trial)),
        ("value", trial.get("value")),
        ("variant", trial_attr(trial, "variant")),
        ("placement", trial_attr(trial, "placement")),
        ("params", trial.get("params") or None),
        ("network", trial_net(trial)),
        ("model", config_line(trial["config"]) if trial.get("config") else None),
        ("training", config_line(train) if train else None),
        *[(key, trial_attr(trial, key)) for key in TRIAL_ATTRS],
        *[(key.replace("_", " "), trial_attr(trial, key)) for key in TRIAL_LINEAGE],
        ("seconds", trial.get("duration_seconds")),
    ]
    for text, violation in (trial.get("constraints") or {}).items():
        if violation is None:
            told = Text("not measured (infeasible)", style="red")
        elif violation <= 0:
            told = Text(f"met, {fmt_value(abs(violation))} to spare", style="green")
        else:
            told = Text(f"broken by {fmt_value(violation)}", style="red")
        rows.append((text, told))
    if trial_attr(trial, "error"):
        rows.append(("error", Text(str(trial_attr(trial, "error")), style="red")))
    parts: list[Any] = [key_value_table([(k, v) for k, v in rows if v not in (None, "", "—")])]
    curve = [c for c in trial.get("curve") or [] if isinstance(c, dict)]
    if curve:
        parts.append(rows_table(curve, f"learning curve ({len(curve)} epochs)"))
    elif trial.get("intermediate_values"):
        # Running (the curve is recorded when it ends) or stopped early: what it reported.
        reported = [
            {"epoch": v.get("step"), "value": v.get("value")}
            for v in trial["intermediate_values"]
            if isinstance(v, dict)
        ]
        parts.append(rows_table(reported, f"reported so far ({len(reported)} epochs)"))
    return Group(*parts)


def _trial_state(trial: JSON) -> Text:
    """The trial's state, with the reason when its study's cancel stopped it, fail (cancelled),
    or when it broke a constraint of the spec: complete (infeasible)."""
    text = styled_state(trial.get("state"))
    if str(trial_attr(trial, "error") or "").startswith("cancelled:"):
        text.append(" (cancelled)")
    if trial.get("feasible") is False:
        text.append(" (infeasible)")
    return text


# -- summary ---------------------------------------------------------------------------------

# Keys of the summary shown in its header (SUMMARY_HEADER) or its own section; anything else the
# API adds later (e.g. confidence intervals) is shown after them, generically.
SUMMARY_SECTIONS = (
    "variants",
    "requested_variants",
    "placements",
    "importances",
    "importances_note",
    "best",
    "best_config",
    "best_train",
    "by_variant",
    "by_placement",
    "diagnostics",
    "pareto_front",
    "variant_importances",
    "placement_verdict",
    "objectives",
    "directions",
    "confidence",
)


def config_line(config: JSON) -> str:
    """A model or train config as `k=v, …`, leaving out what does not apply to it."""
    return fmt_value(own_config(config))


def _rows_of(section: Any, key_name: str) -> list[JSON] | None:
    """A list of row dicts from `[{...}, ...]` or `{"name": {...}, ...}`; None if neither."""
    if isinstance(section, list) and section and all(isinstance(r, dict) for r in section):
        return section
    if isinstance(section, dict) and section and all(isinstance(v, dict) for v in section.values()):
        return [{key_name: k, **v} for k, v in section.items()]
    return None


def rows_table(
    rows: list[JSON], title: str, *, headers: dict[str, str] | None = None, digits: int = 4
) -> Group:
    """Rows as a table that fits a narrow terminal without cutting anything: the first column
    (a name) and numbers never wrap (a number split over two lines reads as two), headers and
    other text fold; `headers` renames columns (short labels). Columns are one space apart.
    The title is a line of its own: a table's title folds to the table's width."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k, v in row.items() if k not in columns and not isinstance(v, dict))
    cells = [[fmt_value(row.get(c), digits) for c in columns] for row in rows]
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    for i, name in enumerate(columns):
        label = (headers or {}).get(name, name)
        widest = max((len(row[i]) for row in cells), default=0)
        if i == 0:
            table.add_column(label, no_wrap=True, min_width=max(widest, len(label)))
        elif all(_numeric(row[i]) for row in cells):
            table.add_column(label, justify="right", min_width=widest, overflow="fold")
        else:
            table.add_column(label, justify="right", overflow="fold")
    for row in cells:
        table.add_row(*_cells(*row))
    return Group(Text(title, style="italic"), table) if title else Group(table)


def _numeric(cell: str) -> bool:
    """A number as `fmt_value` writes it (or its "—" for none)."""
    try:
        float(cell.replace("—", "0").rstrip("%*"))
    except ValueError:
        return False
    return True


def importances_table(importances: dict[str, Any]) -> Table:
    table = Table(title="parameter importances", title_justify="left")
    table.add_column("parameter")
    table.add_column("importance", justify="right")
    table.add_column("")
    ranked = sorted(importances.items(), key=lambda kv: -(kv[1] or 0))
    for name, value in ranked:
        share = float(value or 0)
        table.add_row(*_cells(name, fmt_value(share, 3), "█" * max(0, round(share * 30))))
    return table


# Diagnostics: short headers (80 columns hold ten of them) and the legend that spells them out.
DIAGNOSTIC_HEADERS = {
    "n": "runs",
    "train_acc": "train",
    "val_acc": "val",
    "val_ece": "ECE",
    "val_nll": "NLL",
    "mc_ece": "MC ECE",
    "train_eval_sym_kl": "KL",
}

DIAGNOSTIC_LEGEND = (
    "runs: trained runs (a reused trial counts once) · train, val: accuracy · gap: train − val · "
    "ECE: val calibration error (15 bins) · NLL: val log-loss · MC ECE: ECE of the MC-dropout "
    "mean · KL: train- vs eval-mode symmetric KL (timings: --json)"
)
STATS_HEADERS = {"n": "runs", "n_reused": "reused"}


def _stats_table(summary: JSON, kind: str) -> Group | None:
    rows = _rows_of(summary.get(f"{kind}s"), kind)
    if not rows:
        return None
    title = f"trials by {kind}: best and median of trained runs"
    return rows_table(rows, title, headers=STATS_HEADERS)


def evidence_parts(summary: JSON) -> list[Any]:
    """The per-variant, then per-placement story: trials, the verdict's ranking, diagnostics;
    then importances and the Pareto front. Every title is distinct."""
    parts: list[Any] = []
    for kind in ("variant", "placement"):
        if kind == "placement" and summary.get("placement_verdict"):
            parts.append(Text(str(summary["placement_verdict"]), style="bold"))
        if table := _stats_table(summary, kind):
            parts.append(table)
        ranked = summary.get(f"by_{kind}") or []
        # Without two replicated groups there is no ranking to show: the verdict says why.
        if sum(bool(row.get("replicated")) for row in ranked) >= 2:
            rows = ranking_rows(ranked, kind)
            title = f"verdict by {kind}, in points: mean over fresh seeds (* = claimed)"
            parts.append(rows_table(rows, title))
    if diagnostics := summary.get("diagnostics"):
        rows = without_timings(diagnostics)
        title = "diagnostics by variant: means over trained runs, largest gap first"
        parts.append(rows_table(rows, title, headers=DIAGNOSTIC_HEADERS, digits=3))
        parts.append(Text(DIAGNOSTIC_LEGEND, style="dim"))
    if rows := importance_rows(summary.get("variant_importances")):
        title = "importances within each variant (vs all: its mean − all runs', points)"
        parts.append(rows_table(rows, title))
    if rows := pareto_rows(summary):
        parts.append(rows_table(rows, "Pareto front (feasible, non-dominated)"))
    return parts


def requested_lines(summary: JSON) -> Text | None:
    """Every variant the spec asks for and what became of it, one line each: a variant with
    no trained run is named, not left out of the tables below."""
    rows = [r for r in summary.get("requested_variants") or [] if isinstance(r, dict)]
    if not rows:
        return None
    lines = "\n".join(f"  {r.get('status')}" for r in rows)
    return Text(f"variants asked for:\n{lines}")


def summary_view(summary: JSON) -> Group:
    """Verdict, per-variant and per-placement tables, importances, best config, test score."""
    counted = f"{summary.get('n_complete')} complete trials"
    if summary.get("constraints") and summary.get("n_feasible"):
        # The verdict and every per-variant number count feasible configurations only (all while
        # none is feasible): `analysis.counted`.
        counted += f", {summary['n_feasible']} feasible (only feasible configs count below)"
    parts: list[Any] = [
        Text(
            f"study {summary.get('study_id')} · {summary.get('state')} · "
            f"{counted} · {summary.get('direction', 'maximize')}",
            style="dim",
        )
    ]
    if summary.get("verdict"):
        parts.append(Text(str(summary["verdict"]), style="bold"))
    if summary.get("best_trial_note"):
        parts.append(Text(str(summary["best_trial_note"])))
    if asked := requested_lines(summary):
        parts.append(asked)
    parts += evidence_parts(summary)
    if len(summary.get("importances") or {}) > 1:
        # One parameter varying is all of the variance by definition: a table of "x 1".
        parts.append(importances_table(summary["importances"]))
    elif summary.get("importances_note"):
        parts.append(Text(f"importances: {summary['importances_note']}", style="dim"))
    scalars: list[tuple[str, Any]] = []
    if isinstance(summary.get("best"), dict):
        scalars.append(("best trial", best_trial_line(summary["best"])))
    for key, label in (("best_config", "its config"), ("best_train", "its training")):
        if isinstance(summary.get(key), dict):
            scalars.append((label, config_line(summary[key])))
    for key, section in summary.items():
        if key in SUMMARY_HEADER or key in SUMMARY_SECTIONS or section in (None, [], {}):
            continue
        if key == "n_feasible" and not summary.get("constraints"):
            continue  # every trial is feasible without constraints: a count of nothing
        label = key.replace("_", " ")
        if (rows := _rows_of(section, "name")) is not None:
            parts.append(rows_table(rows, label))
        elif isinstance(section, dict):
            parts.append(key_value_table(list(section.items()), title=label))
        else:
            scalars.append((label, section))
    if scalars:
        parts.append(key_value_table(scalars))
    return Group(*parts)
