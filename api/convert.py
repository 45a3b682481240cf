"""Records from storage → response models (one place, so every route shows the same shapes)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from api.schemas import (
    IntermediateValue,
    Study,
    StudyDetail,
    Timings,
    TrialBrief,
    TrialCounts,
    TrialDetail,
    Worker,
)
from storage.queue import StudyRecord
from storage.timestamps import as_utc
from storage.trial_record import TrialRecord
from storage.trials import StudyTrialStats

_STUDY_FIELDS = tuple(Study.model_fields)


def study_out(record: StudyRecord) -> Study:
    return Study(**{name: getattr(record, name) for name in _STUDY_FIELDS})


def _elapsed(record: StudyRecord) -> float | None:
    start = as_utc(record.started_at)
    if start is None:
        return None
    end = as_utc(record.finished_at) or dt.datetime.now(dt.UTC)
    return max(0.0, (end - start).total_seconds())


def study_detail(
    record: StudyRecord, stats: StudyTrialStats, best: TrialRecord | None
) -> StudyDetail:
    timings = Timings(
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        first_trial_start=stats.first_trial_start,
        last_trial_complete=stats.last_trial_complete,
        elapsed_seconds=_elapsed(record),
        test_scored_at=record.test_scored_at,
        test_score_seconds=record.test_score_seconds,
    )
    return StudyDetail(
        **study_out(record).model_dump(),
        spec=dict(record.spec),
        direction=stats.direction,
        trial_counts=TrialCounts(**stats.counts),
        best_trial=trial_brief(best) if best is not None else None,
        timings=timings,
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _hidden(config: Any) -> list[int] | None:
    hidden = config.get("hidden") if isinstance(config, dict) else None
    if isinstance(hidden, list) and hidden and all(isinstance(h, int) for h in hidden):
        return hidden
    return None


# What a page keeps of a config beside `hidden`: the family and its fields, which `studyd
# trials`' net column shows (an MLP's config has neither: its page leaves the config out).
PAGE_CONFIG_KEYS = ("family", "arch")


def _page_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in attrs.items() if k != "config"}
    config = attrs.get("config")
    kept = (
        {k: config[k] for k in PAGE_CONFIG_KEYS if k in config} if isinstance(config, dict) else {}
    )
    return {**out, "config": kept} if kept else out


def trial_brief(row: TrialRecord, *, page: bool = False) -> TrialBrief:
    """A trial's brief; on a `page`, its user attributes leave out the config but its family
    and the family's fields (`hidden` says the widths)."""
    attrs = row.user_attrs
    return TrialBrief(
        number=row.number,
        state=row.state,  # type: ignore[arg-type]
        value=row.value,
        variant=_str_or_none(row.user_attrs.get("variant", row.params.get("variant"))),
        placement=_str_or_none(row.user_attrs.get("placement", row.params.get("placement"))),
        params=row.params,
        datetime_start=row.datetime_start,
        datetime_complete=row.datetime_complete,
        duration_seconds=row.duration_seconds,
        user_attrs=_page_attrs(attrs) if page else attrs,
        hidden=_hidden(attrs.get("config")),
        feasible=row.feasible,
        constraints={k: v if math.isfinite(v) else None for k, v in row.constraints.items()},
    )


def trial_detail(row: TrialRecord) -> TrialDetail:
    attrs = row.user_attrs
    curve = attrs.get("curve")
    return TrialDetail(
        **trial_brief(row).model_dump(),
        config=attrs.get("config") if isinstance(attrs.get("config"), dict) else None,
        train=attrs.get("train") if isinstance(attrs.get("train"), dict) else None,
        curve=[c for c in curve if isinstance(c, dict)] if isinstance(curve, list) else [],
        intermediate_values=[
            IntermediateValue(step=step, value=value) for step, value in row.intermediate_values
        ],
    )


def worker_out(record: Any) -> Worker:
    """A `storage.queue.WorkerRecord` (fields read by name, missing ones as null)."""
    names = Worker.model_fields
    values = {name: getattr(record, name, None) for name in names}
    values["last_heartbeat"] = values["last_heartbeat"] or getattr(record, "heartbeat_at", None)
    values["host"] = values["host"] or ""
    values["device"] = values["device"] or ""
    # A worker row has no `state`/`restarts` (only a down embedded worker does): the defaults.
    values = {k: v for k, v in values.items() if v is not None or names[k].is_required()}
    return Worker(**values)
