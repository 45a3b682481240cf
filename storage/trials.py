"""Read-only, paginated SQL over Optuna's own tables: what the API serves, never a whole study.

Every function takes an engine and the Optuna study name (`StudyRecord.optuna_name`). Pages are
one query for the trial rows plus one per side table restricted to the page's trial ids, so the
cost of a page does not grow with the study. Datetimes come back as aware UTC (Optuna stores
naive UTC).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial, TrialState, create_trial
from sqlalchemy.engine import Connection, Engine

from storage.engine import read_only

TRIAL_STATES: tuple[str, ...] = ("running", "waiting", "complete", "pruned", "fail")
TrialSort = Literal["number", "value"]
SortOrder = Literal["asc", "desc"]
# The user attributes a page row carries; the detail view carries them all.
BRIEF_ATTRS: tuple[str, ...] = (
    "variant",
    "placement",
    "train_acc",
    "val_acc",
    "gap",
    "param_count",
    "epoch_seconds",
    "retry_of",
)

_studies = sa.table("studies", sa.column("study_id"), sa.column("study_name"))
_directions = sa.table(
    "study_directions", sa.column("study_id"), sa.column("objective"), sa.column("direction")
)
_trials = sa.table(
    "trials",
    sa.column("trial_id"),
    sa.column("number"),
    sa.column("study_id"),
    sa.column("state"),
    sa.column("datetime_start", sa.DateTime),
    sa.column("datetime_complete", sa.DateTime),
)
_values = sa.table(
    "trial_values",
    sa.column("trial_id"),
    sa.column("objective"),
    sa.column("value", sa.Float),
    sa.column("value_type"),
)
_params = sa.table(
    "trial_params",
    sa.column("trial_id"),
    sa.column("param_name"),
    sa.column("param_value", sa.Float),
    sa.column("distribution_json"),
)
_attrs = sa.table(
    "trial_user_attributes", sa.column("trial_id"), sa.column("key"), sa.column("value_json")
)
_steps = sa.table(
    "trial_intermediate_values",
    sa.column("trial_id"),
    sa.column("step"),
    sa.column("intermediate_value", sa.Float),
    sa.column("intermediate_value_type"),
)


@dataclass(frozen=True)
class TrialRow:
    """One trial as a page shows it (`user_attrs` holds only BRIEF_ATTRS on pages)."""

    trial_id: int
    number: int
    state: str
    value: float | None
    datetime_start: dt.datetime | None
    datetime_complete: dt.datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: list[tuple[int, float | None]] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return (self.datetime_complete - self.datetime_start).total_seconds()


@dataclass(frozen=True)
class StudyTrialStats:
    """Progress of one Optuna study: trial counts by state, direction and trial timings."""

    counts: dict[str, int]
    direction: str
    first_trial_start: dt.datetime | None
    last_trial_complete: dt.datetime | None


def _text(enum_column: sa.ColumnClause[Any]) -> sa.ColumnElement[str]:
    # Optuna's enum columns are native enum types on PostgreSQL: compare them as text.
    return sa.cast(enum_column, sa.String)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


@lru_cache(maxsize=4096)
def _distribution(text: str) -> BaseDistribution:
    return json_to_distribution(text)


def _stored_value(value: float | None, value_type: Any) -> float | None:
    kind = getattr(value_type, "name", value_type)
    if kind == "INF_POS":
        return float("inf")
    if kind == "INF_NEG":
        return float("-inf")
    return value


def _state_name(state: Any) -> str:
    return str(getattr(state, "name", state)).lower()


def _optuna_study_id(conn: Connection, optuna_name: str) -> int | None:
    query = sa.select(_studies.c.study_id).where(_studies.c.study_name == optuna_name)
    return conn.execute(query).scalar_one_or_none()


def _direction(conn: Connection, study_id: int) -> str:
    query = sa.select(_directions.c.direction).where(
        _directions.c.study_id == study_id, _directions.c.objective == 0
    )
    found = conn.execute(query).scalar_one_or_none()
    return "minimize" if _state_name(found) == "minimize" else "maximize"


def _value_order(direction: str, order: SortOrder | None) -> list[sa.ColumnElement[Any]]:
    """Best first unless told otherwise; complete trials before pruned ones, no value last."""
    best_first = order is None or (order == "desc") == (direction == "maximize")
    descending = (direction == "maximize") == best_first
    # -inf < finite < +inf, whatever the column holds for the infinite rows (NULL).
    rank = sa.case(
        (_text(_values.c.value_type) == "INF_NEG", 0),
        (_text(_values.c.value_type) == "INF_POS", 2),
        else_=1,
    )
    missing = sa.case(
        (_values.c.trial_id.is_(None), 2), (_text(_trials.c.state) != "COMPLETE", 1), else_=0
    )
    keys = [rank.desc(), _values.c.value.desc()] if descending else [rank, _values.c.value]
    return [missing, *keys, _trials.c.number]


def _side_tables(
    conn: Connection, trial_ids: Sequence[int], attr_keys: Iterable[str] | None
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    params: dict[int, dict[str, Any]] = {tid: {} for tid in trial_ids}
    attrs: dict[int, dict[str, Any]] = {tid: {} for tid in trial_ids}
    if not trial_ids:
        return params, attrs
    query = sa.select(_params).where(_params.c.trial_id.in_(trial_ids))
    for row in conn.execute(query):
        dist = _distribution(row.distribution_json)
        params[row.trial_id][row.param_name] = dist.to_external_repr(row.param_value)
    query = sa.select(_attrs).where(_attrs.c.trial_id.in_(trial_ids))
    if attr_keys is not None:
        query = query.where(_attrs.c.key.in_(list(attr_keys)))
    for row in conn.execute(query):
        attrs[row.trial_id][row.key] = json.loads(row.value_json)
    return params, attrs


def _trial_query(study_id: int) -> sa.Select[Any]:
    return (
        sa.select(
            _trials.c.trial_id,
            _trials.c.number,
            _trials.c.state,
            _trials.c.datetime_start,
            _trials.c.datetime_complete,
            _values.c.value,
            _values.c.value_type,
        )
        .select_from(_trials)
        .outerjoin(
            _values, sa.and_(_values.c.trial_id == _trials.c.trial_id, _values.c.objective == 0)
        )
        .where(_trials.c.study_id == study_id)
    )


def _rows(
    conn: Connection, result: Iterable[Any], attr_keys: Iterable[str] | None
) -> list[TrialRow]:
    found = list(result)
    params, attrs = _side_tables(conn, [r.trial_id for r in found], attr_keys)
    return [
        TrialRow(
            trial_id=r.trial_id,
            number=r.number,
            state=_state_name(r.state),
            value=_stored_value(r.value, r.value_type),
            datetime_start=_utc(r.datetime_start),
            datetime_complete=_utc(r.datetime_complete),
            params=params[r.trial_id],
            user_attrs=attrs[r.trial_id],
        )
        for r in found
    ]


def study_progress(engine: Engine, optuna_name: str) -> tuple[StudyTrialStats, TrialRow | None]:
    """Counts by state, direction, trial timings and the best trial, in one transaction."""
    with read_only(engine).connect() as conn:
        study_id = _optuna_study_id(conn, optuna_name)
        if study_id is None:
            return StudyTrialStats(dict.fromkeys(TRIAL_STATES, 0), "maximize", None, None), None
        stats = _stats(conn, study_id)
        return stats, _best(conn, study_id, stats.direction)


def study_trial_stats(engine: Engine, optuna_name: str) -> StudyTrialStats:
    """Trial counts by state (GROUP BY), the study's direction and first/last trial times."""
    return study_progress(engine, optuna_name)[0]


def best_trial(engine: Engine, optuna_name: str) -> TrialRow | None:
    """The best complete trial so far (ORDER BY value LIMIT 1), or None."""
    return study_progress(engine, optuna_name)[1]


def _stats(conn: Connection, study_id: int) -> StudyTrialStats:
    counts = dict.fromkeys(TRIAL_STATES, 0)
    query = (
        sa.select(
            _trials.c.state,
            sa.func.count(),
            sa.func.min(_trials.c.datetime_start),
            sa.func.max(_trials.c.datetime_complete),
        )
        .where(_trials.c.study_id == study_id)
        .group_by(_trials.c.state)
    )
    starts, completes = [], []
    for state, n, first, last in conn.execute(query):
        counts[_state_name(state)] = n
        starts += [first] if first is not None else []
        completes += [last] if last is not None else []
    return StudyTrialStats(
        counts,
        _direction(conn, study_id),
        _utc(min(starts, default=None)),
        _utc(max(completes, default=None)),
    )


def _best(conn: Connection, study_id: int, direction: str) -> TrialRow | None:
    query = (
        _trial_query(study_id)
        .where(_text(_trials.c.state) == "COMPLETE", _values.c.trial_id.is_not(None))
        .order_by(*_value_order(direction, None))
        .limit(1)
    )
    rows = _rows(conn, conn.execute(query), None)
    return rows[0] if rows else None


def list_trials(
    engine: Engine,
    optuna_name: str,
    *,
    state: str | None = None,
    variant: str | None = None,
    sort: TrialSort = "number",
    order: SortOrder | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[TrialRow], int]:
    """One page of trials and the total matching the filters."""
    with read_only(engine).connect() as conn:
        study_id = _optuna_study_id(conn, optuna_name)
        if study_id is None:
            return [], 0
        query = _trial_query(study_id)
        if state is not None:
            query = query.where(_text(_trials.c.state) == state.upper())
        if variant is not None:
            # The worker stores user attributes JSON-encoded, so the string carries its quotes.
            # EXISTS per trial rides the (trial_id, key) unique index; an IN over every
            # study's variant attributes would scan them all.
            tagged = sa.exists().where(
                _attrs.c.trial_id == _trials.c.trial_id,
                _attrs.c.key == "variant",
                _attrs.c.value_json == json.dumps(variant),
            )
            query = query.where(tagged)
        total_query = sa.select(sa.func.count()).select_from(query.subquery())
        total = conn.execute(total_query).scalar_one()
        if sort == "value":
            keys = _value_order(_direction(conn, study_id), order)
        else:
            keys = [_trials.c.number.desc() if order == "desc" else _trials.c.number]
        page = conn.execute(query.order_by(*keys).limit(limit).offset(offset))
        return _rows(conn, page, BRIEF_ATTRS), total


def get_trial(engine: Engine, optuna_name: str, number: int) -> TrialRow | None:
    """One trial with all its params, user attributes and intermediate values."""
    with read_only(engine).connect() as conn:
        study_id = _optuna_study_id(conn, optuna_name)
        if study_id is None:
            return None
        query = _trial_query(study_id).where(_trials.c.number == number).limit(1)
        rows = _rows(conn, conn.execute(query), None)
        if not rows:
            return None
        steps_query = (
            sa.select(_steps).where(_steps.c.trial_id == rows[0].trial_id).order_by(_steps.c.step)
        )
        steps = [
            (s.step, _stored_value(s.intermediate_value, s.intermediate_value_type))
            for s in conn.execute(steps_query)
        ]
        row = rows[0]
        return TrialRow(**{**row.__dict__, "intermediate_values": steps})


@dataclass(frozen=True)
class CompleteValue:
    """The narrow projection a summary needs from one complete trial."""

    value: float
    variant: str | None
    placement: str | None


def complete_values(engine: Engine, optuna_name: str) -> list[CompleteValue]:
    """(value, variant, placement) of every complete trial: three scalars a row, not trials."""
    variant = _attrs.alias("variant_attr")
    placement = _attrs.alias("placement_attr")
    with read_only(engine).connect() as conn:
        study_id = _optuna_study_id(conn, optuna_name)
        if study_id is None:
            return []
        query = (
            sa.select(
                _values.c.value, _values.c.value_type, variant.c.value_json, placement.c.value_json
            )
            .select_from(_trials)
            .join(
                _values, sa.and_(_values.c.trial_id == _trials.c.trial_id, _values.c.objective == 0)
            )
            .outerjoin(
                variant,
                sa.and_(variant.c.trial_id == _trials.c.trial_id, variant.c.key == "variant"),
            )
            .outerjoin(
                placement,
                sa.and_(placement.c.trial_id == _trials.c.trial_id, placement.c.key == "placement"),
            )
            .where(_trials.c.study_id == study_id, _text(_trials.c.state) == "COMPLETE")
        )
        return [
            CompleteValue(
                value=_stored_value(value, value_type),  # type: ignore[arg-type]
                variant=None if v is None else str(json.loads(v)),
                placement=None if p is None else str(json.loads(p)),
            )
            for value, value_type, v, p in conn.execute(query)
        ]


def recent_complete_trials(engine: Engine, optuna_name: str, limit: int) -> list[FrozenTrial]:
    """The `limit` most recent complete trials as FrozenTrials with params and value only.

    Enough for parameter importances without loading user attributes or curves.
    """
    with read_only(engine).connect() as conn:
        study_id = _optuna_study_id(conn, optuna_name)
        if study_id is None:
            return []
        query = (
            _trial_query(study_id)
            .where(_text(_trials.c.state) == "COMPLETE", _text(_values.c.value_type) == "FINITE")
            .order_by(_trials.c.number.desc())
            .limit(limit)
        )
        found = list(conn.execute(query))
        ids = [r.trial_id for r in found]
        params: dict[int, dict[str, Any]] = {tid: {} for tid in ids}
        dists: dict[int, dict[str, BaseDistribution]] = {tid: {} for tid in ids}
        if ids:
            for row in conn.execute(sa.select(_params).where(_params.c.trial_id.in_(ids))):
                dist = _distribution(row.distribution_json)
                params[row.trial_id][row.param_name] = dist.to_external_repr(row.param_value)
                dists[row.trial_id][row.param_name] = dist
    return [
        create_trial(
            state=TrialState.COMPLETE,
            value=r.value,
            params=params[r.trial_id],
            distributions=dists[r.trial_id],
        )
        for r in reversed(found)
    ]
