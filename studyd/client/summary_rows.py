"""Plain data out of the API's study, trial and summary JSON: values, rows and lines that the
CLI's tables (`studyd.cli.render`) and the HTML report (`studyd.client.report`) both show."""

from __future__ import annotations

import math
from typing import Any

from models.variants import KNOBS, knob_owner
from studyd.analysis.points import comparison, points, signed_points

JSON = dict[str, Any]
# A variant's own knobs (models/variants.py): shown only for that variant.
VARIANT_KNOBS = {k.name: knob_owner(k.name) for k in KNOBS}
# Timings measure the machine as much as the variant (its load, the stack a trial trained in):
# kept out of the per-variant comparison, shown by `--json` and `studyd trial`.
TIMING_COLUMNS = ("ms_per_1k", "epoch_seconds")
# What a config of any noisy variant sets and `none` ignores.
NOISE_KEYS = ("rates", "placements", "input_rate")
# Keys of the summary shown in its header (the CLI's view and the report's page alike).
SUMMARY_HEADER = ("study_id", "state", "direction", "n_complete", "verdict", "best_trial_note")


def best_of(study: JSON) -> JSON | None:
    best = study.get("best_trial", study.get("best"))
    return best if isinstance(best, dict) else None


def fmt_value(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    if isinstance(value, list):
        return ", ".join(fmt_value(v, digits) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v, digits)}" for k, v in value.items())
    return str(value)


def own_config(config: JSON) -> JSON:
    """A model or train config without what does not apply to it: other variants' knobs, an
    input rate without input dropout, a no-dropout network's rates, the data's shape."""
    variant = config.get("variant")
    placements = config.get("placements") or []
    shown = {}
    for key, value in config.items():
        if key in ("input_dim", "num_classes") or value in (None, [], ""):
            continue
        if key in VARIANT_KNOBS and VARIANT_KNOBS[key] != variant:
            continue
        if key == "input_rate" and "input" not in placements:
            continue
        if variant == "none" and key in NOISE_KEYS:
            continue  # no dropout: its rates and placements are the config's defaults
        shown[key] = value
    return shown


def trial_attr(trial: JSON, key: str) -> Any:
    for source in (trial, trial.get("user_attrs") or {}, trial.get("attrs") or {}):
        if isinstance(source, dict) and key in source:
            return source[key]
    return None


def trial_rates(trial: JSON) -> Any:
    """The dropout rate(s) a trial used, from its params or its stored model config."""
    params = trial.get("params") or {}
    rates = [v for k, v in sorted(params.items()) if "rate" in k and "lr" not in k]
    if rates:
        return rates[0] if len(rates) == 1 else rates
    config = trial_attr(trial, "config") or {}
    return config.get("rates") if isinstance(config, dict) else None


def without_timings(rows: Any) -> list[JSON]:
    """Per-variant rows without their timing columns (`TIMING_COLUMNS`)."""
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows or []]


def ranking_rows(rows: Any, kind: str = "group") -> list[JSON]:
    """The verdict's ranking as flat rows, every number in points: the chosen config's mean over
    its replicate seeds, the 95% CI half-width, paired differences against the leader and
    `none`. A group without replicates is listed with dashes: nothing of it was measured on
    fresh seeds."""
    out = []
    for row in rows if isinstance(rows, list) else []:
        fresh = bool(row.get("replicated"))
        out.append(
            {
                kind: row.get("group"),
                "seeds": row.get("n_seeds") if fresh else 0,
                "configs": row.get("n_configs"),
                "mean": points(row.get("mean") if fresh else None, 2),
                "±95%": points(row.get("half_width") if fresh else None, 1),
                "vs leader": comparison(row.get("vs_best")) if fresh else "—",
                "vs none": comparison(row.get("vs_none")) if fresh else "—",
            }
        )
    return out


def importance_rows(importances: Any) -> list[JSON]:
    """Variant-aware importances: each variant's mean against every run's (`vs all`, in points:
    its marginal effect) and its own top parameters."""
    variants = importances.get("variants") if isinstance(importances, dict) else None
    out = []
    for name, v in (variants or {}).items():
        ranked = sorted((v.get("params") or {}).items(), key=lambda kv: -kv[1])
        out.append(
            {
                "variant": name,
                "runs": v.get("n_trials"),
                "vs all": signed_points(v.get("marginal_effect")),
                "own parameters (fANOVA)": ", ".join(f"{k} {x:.2f}" for k, x in ranked[:4]) or "—",
            }
        )
    return out


def pareto_rows(summary: JSON) -> list[JSON]:
    names = summary.get("objectives") or []
    out = []
    for p in summary.get("pareto_front") or []:
        row: JSON = {"#": p.get("number"), "variant": p.get("variant")}
        values = p.get("values") or []
        row.update({n: v for n, v in zip(names, values, strict=False)})
        row["placement"] = p.get("placement")
        out.append(row)
    return out


def best_trial_line(best: JSON) -> str:
    where = " · ".join(str(best[k]) for k in ("variant", "placement") if best.get(k))
    return f"#{best.get('number')} value {fmt_value(best.get('value'))} ({where})"
