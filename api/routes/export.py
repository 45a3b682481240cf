"""Every trial of a study as CSV, streamed one keyset page at a time (never the whole study).

Columns: `number, state, datetime_start, datetime_complete`, one `value.<objective>` per objective,
one `param.<name>` per parameter, then the user attributes (scalars as they are; the `config`,
`train` and `diagnostics` dicts expanded as `config.<field>` etc.; learning curves left out: they
are on `GET /studies/{id}/trials/{n}`). A spec with constraints adds `feasible` and one
`constraint.<text>` per constraint (its violation: ≤ 0 met) after the values. Cells: empty is
null, strings as they are, anything else JSON (numbers, booleans, lists).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from api.context import AppContext, context
from api.errors import responses
from api.params import StudyId
from models.config import ModelConfig, TrainConfig
from storage import queue
from storage.trial_record import TrialRecord
from storage.trial_scan import scan_trials, trial_columns
from studyd.spec import SpecError, validate_spec

router = APIRouter(tags=["trials"])

EXPANDED: dict[str, tuple[str, ...]] = {
    "config": tuple(ModelConfig.model_fields),
    "train": tuple(TrainConfig.model_fields),
    "diagnostics": (
        "n",
        "eval_acc",
        "val_nll",
        "val_ece",
        "mc_passes",
        "stochastic_layers",
        "mc_acc",
        "mc_nll",
        "mc_ece",
        "train_eval_sym_kl",
        "train_eval_tv",
        "ms_per_1k",
        "ece_bins",
    ),
}
LEFT_OUT = ("curve",)
CSV_DOC = {
    200: {
        "description": "one CSV row per trial (header first), streamed",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _search_names(record: queue.StudyRecord, n_objectives: int) -> tuple[list[str], list[str]]:
    """The spec's objective names (numbered when they do not match the study) and constraints."""
    try:
        search = validate_spec(record.spec).search
        names, constraints = search.objective_names(), list(search.constraints)
    except SpecError:
        names, constraints = [], []
    if len(names) != n_objectives:
        names = [f"{i}" for i in range(n_objectives)]
    return names, constraints


def _row(
    trial: TrialRecord, n_values: int, constraints: list[str], params: list[str], attrs: list[str]
) -> list[str]:
    read = list(trial.values or [])
    values = read + [None] * (n_values - len(read))
    out = [str(trial.number), trial.state]
    out += [
        cell(t.isoformat() if t else None) for t in (trial.datetime_start, trial.datetime_complete)
    ]
    out += [cell(v) for v in values[:n_values]]
    if constraints:
        # Empty until the trial is told; a violation of +inf (its metric missing) is empty too.
        out.append(cell(trial.feasible))
        for text in constraints:
            v = trial.constraints.get(text)
            out.append(cell(v if v is not None and math.isfinite(v) else None))
    out += [cell(trial.params.get(p)) for p in params]
    for key in attrs:
        head, _, sub = key.partition(".")
        if sub and head in EXPANDED:
            nested = trial.user_attrs.get(head)
            out.append(cell(nested.get(sub) if isinstance(nested, dict) else None))
        else:
            out.append(cell(trial.user_attrs.get(key)))
    return out


@router.get(
    "/studies/{study_id}/export.csv",
    response_class=StreamingResponse,
    responses={**CSV_DOC, **responses(404, 422, 503)},
)
def export_csv(study_id: StudyId, ctx: Annotated[AppContext, Depends(context)]) -> Any:
    """Every trial with its state, values, params and diagnostics, as CSV (streamed)."""
    record = queue.get_study(ctx.engine, study_id)
    n_values, params, attr_keys = trial_columns(ctx.engine, record.optuna_name)
    objectives, constraints = _search_names(record, n_values)
    attrs: list[str] = []
    for key in attr_keys:
        if key in EXPANDED:
            attrs += [f"{key}.{sub}" for sub in EXPANDED[key]]
        elif key not in LEFT_OUT:
            attrs.append(key)
    header = ["number", "state", "datetime_start", "datetime_complete"]
    header += [f"value.{o}" for o in objectives]
    if constraints:
        header += ["feasible", *(f"constraint.{c}" for c in constraints)]
    header += [f"param.{p}" for p in params] + attrs
    wanted = [k for k in attr_keys if k not in LEFT_OUT]
    pages = scan_trials(ctx.engine, record.optuna_name, attr_keys=wanted)
    # Read the first page now: a database outage is then a 503, not a 200 cut short.
    first = next(pages, [])

    def body() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for page in itertools.chain([first], pages):
            writer.writerows(_row(t, n_values, constraints, params, attrs) for t in page)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.getvalue():
            yield buffer.getvalue()

    filename = f"{record.optuna_name}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
