"""Read-only, paginated SQL over Optuna's own tables: what the API serves, never a whole study.

Every function takes an engine and the Optuna study name (`StudyRecord.optuna_name`). Pages are
one query for the trial rows plus one per side table restricted to the page's trial ids, so the
cost of a page does not grow with the study. Datetimes come back as aware UTC (Optuna stores
naive UTC).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from storage.engine import read_connection, read_only
from storage.optuna_schema import (
    enum_name,
    optuna_study_id,
    params_and_attrs,
    stored_value,
    studies,
    study_directions,
    study_user_attributes,
    trial_intermediate_values,
    trial_user_attributes,
    trial_values,
    trials,
)
from storage.timestamps import as_utc
from storage.trial_record import REPLICATE_ATTR, TrialRecord, meets_constraints, trial_record
from storage.trial_scan import constraint_values

TRIAL_STATES: tuple[str, ...] = ("running", "waiting", "complete", "pruned", "fail")
# Finished states, COMPLETE first (its latest completion keys the caches).
_FINISHED: tuple[str, ...] = ("COMPLETE", "PRUNED", "FAIL")
TrialSort = Literal["number", "value"]
SortOrder = Literal["asc", "desc"]
# The Optuna study attribute a worker writes when the search ends before its n_trials
# (studyd.daemon.worker.outcomes: the space is exhausted, or proposals kept repeating).
SEARCH_ENDED_ATTR = "search_ended"
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
    # Where a trial's result came from when it is not a run of its own search (a summary and a
    # report count a reused trial once, a replicate with its search trial's feasibility).
    "reused_from",
    "replicate_of",
    # Why a FAIL trial failed ("cancelled: …" when its study's cancel stopped it).
    "error",
    # The ModelConfig it trained: a page shows its hidden widths (`hidden`), not the whole of it.
    "config",
)


@dataclass(frozen=True)
class StudyTrialStats:
    """Progress of one Optuna study: trial counts by state, direction and trial timings."""

    counts: dict[str, int]
    direction: str
    first_trial_start: dt.datetime | None
    last_trial_complete: dt.datetime | None
    # Optuna's study id and the latest completion of a COMPLETE trial: with the complete count
    # they name the set of complete trials (see `complete_key`).
    optuna_study_id: int | None = None
    last_complete: dt.datetime | None = None
    # Why the search ended before its n_trials (the study attribute SEARCH_ENDED_ATTR), if it did.
    search_ended: str | None = None

    @property
    def complete_key(self) -> tuple[Any, ...]:
        """Changes whenever a trial completes: Optuna never changes a finished trial, so the
        complete set only grows, and the same count (with the same latest completion, against
        ids SQLite reuses after a delete) is the same set of trials, values and attributes."""
        return (self.optuna_study_id, self.counts["complete"], self.last_complete)


def _text(enum_column: sa.ColumnClause[Any]) -> sa.ColumnElement[str]:
    # Optuna's enum columns are native enum types on PostgreSQL: compare them as text.
    return sa.cast(enum_column, sa.String)


def _state_name(state: Any) -> str:
    return enum_name(state).lower()


def _direction_name(stored: Any) -> str:
    return "minimize" if _state_name(stored) == "minimize" else "maximize"


def _direction(conn: Connection, study_id: int) -> str:
    query = sa.select(study_directions.c.direction).where(
        study_directions.c.study_id == study_id, study_directions.c.objective == 0
    )
    return _direction_name(conn.execute(query).scalar_one_or_none())


def _value_order(direction: str, order: SortOrder | None) -> list[sa.ColumnElement[Any]]:
    """Best first unless told otherwise; complete trials before pruned ones, no value last."""
    best_first = order is None or (order == "desc") == (direction == "maximize")
    descending = (direction == "maximize") == best_first
    # -inf < finite < +inf, whatever the column holds for the infinite rows (NULL).
    rank = sa.case(
        (_text(trial_values.c.value_type) == "INF_NEG", 0),
        (_text(trial_values.c.value_type) == "INF_POS", 2),
        else_=1,
    )
    missing = sa.case(
        (trial_values.c.trial_id.is_(None), 2), (trials.c.state != "COMPLETE", 1), else_=0
    )
    keys = (
        [rank.desc(), trial_values.c.value.desc()] if descending else [rank, trial_values.c.value]
    )
    return [missing, *keys, trials.c.number]


def _trial_query(study_id: int) -> sa.Select[Any]:
    return (
        sa.select(
            trials.c.trial_id,
            trials.c.number,
            trials.c.state,
            trials.c.datetime_start,
            trials.c.datetime_complete,
            trial_values.c.value,
            trial_values.c.value_type,
        )
        .select_from(trials)
        .outerjoin(
            trial_values,
            sa.and_(trial_values.c.trial_id == trials.c.trial_id, trial_values.c.objective == 0),
        )
        .where(trials.c.study_id == study_id)
    )


def _rows(
    conn: Connection, result: Iterable[Any], attr_keys: Iterable[str] | None
) -> list[TrialRecord]:
    found = result.all() if isinstance(result, sa.CursorResult) else list(result)
    return _with_side_tables(conn, found, attr_keys)


def _finished_rows(
    conn: Connection, result: Iterable[Any], attr_keys: tuple[str, ...], cache: ReadCache | None
) -> tuple[list[TrialRecord], Hashable | None]:
    """`_rows`, from `cache` when every trial of the page is finished, and that page's key
    (None when a trial of the page may still change).

    Optuna never changes a finished trial (nor do we: `trial_attrs.check_updatable`), so a
    page of finished trials is keyed by its trial rows as read (ids, numbers, states, times,
    values: the times also tell apart a study whose ids SQLite reused after a delete) and its
    side-table queries (two thirds of a page's cost) are skipped while the page stays cached.
    """
    found = result.all() if isinstance(result, sa.CursorResult) else list(result)
    if not all(enum_name(r.state) in _FINISHED for r in found):
        return _with_side_tables(conn, found, attr_keys), None
    key = ("page", attr_keys, tuple(tuple(r) for r in found))
    rows = None if cache is None else cache.get(key)
    if rows is None:
        rows = _with_side_tables(conn, found, attr_keys)
        if cache is not None:
            cache[key] = rows
    return rows, key


def _with_side_tables(
    conn: Connection, found: list[Any], attr_keys: Iterable[str] | None
) -> list[TrialRecord]:
    ids = [r.trial_id for r in found]
    params, attrs = params_and_attrs(conn, ids, attr_keys)
    constraints = constraint_values(conn, ids) if ids else {}
    return [
        trial_record(
            r,
            value=stored_value(r.value, r.value_type),
            params=params[r.trial_id],
            user_attrs=attrs[r.trial_id],
            constraints=constraints.get(r.trial_id, {}),
        )
        for r in found
    ]


class ReadCache(Protocol):
    """Where reads keep what cannot change between calls (a bounded, thread-safe map): a study's
    best trial per set of complete trials, pages of finished trials."""

    def get(self, key: Hashable, default: Any = None) -> Any: ...

    def __setitem__(self, key: Hashable, value: Any) -> None: ...


_MISSING = object()


def study_progress(
    engine: Engine | Connection, optuna_name: str, best_cache: ReadCache | None = None
) -> tuple[StudyTrialStats, TrialRecord | None]:
    """Counts by state, direction, trial timings, why the search ended and the best trial, in
    one transaction.

    The counts read our (study_id, state) index only and the timings are index seeks; the best
    trial is an ORDER BY over the complete trials, so with `best_cache` it is looked up under
    `StudyTrialStats.complete_key` and recomputed only after a trial completes.
    """
    with read_connection(engine) as conn:
        found = conn.execute(_STUDY_QUERY, {"optuna_name": optuna_name}).first()
        if found is None:
            return StudyTrialStats(dict.fromkeys(TRIAL_STATES, 0), "maximize", None, None), None
        stats = _stats(conn, found.study_id, _direction_name(found.direction))
        if found.search_ended is not None:
            ended = json.loads(found.search_ended)  # Optuna stores attributes JSON-encoded
            stats = replace(stats, search_ended=None if ended is None else str(ended))
        if stats.counts["complete"] == 0:
            return stats, None
        key = ("best", *stats.complete_key)
        best = _MISSING if best_cache is None else best_cache.get(key, _MISSING)
        if best is _MISSING:
            best = _best(conn, found.study_id, stats.direction)
            if best_cache is not None:
                best_cache[key] = best
        return stats, best  # type: ignore[return-value]


def study_trial_stats(engine: Engine, optuna_name: str) -> StudyTrialStats:
    """Trial counts by state (GROUP BY), the study's direction and first/last trial times."""
    return study_progress(engine, optuna_name)[0]


def best_trial(engine: Engine, optuna_name: str) -> TrialRecord | None:
    """The best complete trial so far (ORDER BY value LIMIT 1), or None."""
    return study_progress(engine, optuna_name)[1]


def _stats_query() -> sa.Select[Any]:
    """One row: the count per state (an index range each, of our (study_id, state) index, read
    without the table), the first start and the last completion per finished state (one index
    seek each: a max over an IN list would scan instead)."""
    study = trials.c.study_id == sa.bindparam("study_id", type_=sa.Integer)

    def scalar(column: Any, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
        return sa.select(column).where(study, *where).scalar_subquery()

    return sa.select(
        *(scalar(sa.func.count(), trials.c.state == s.upper()) for s in TRIAL_STATES),
        scalar(sa.func.min(trials.c.datetime_start)),
        *(scalar(sa.func.max(trials.c.datetime_complete), trials.c.state == s) for s in _FINISHED),
    )


# Built once: a statement object caches its own cache key, so each request only binds its values.
_STATS_QUERY = _stats_query()
# The study's attribute rides its (study_id, key) unique index: read here, it saves the two
# ORM sessions Optuna's `get_study_id_from_name` + `get_study_user_attrs` took (a third of a
# `GET /studies/{id}` or `/summary`).
_SEARCH_ENDED = (
    sa.select(study_user_attributes.c.value_json)
    .where(
        study_user_attributes.c.study_id == studies.c.study_id,
        study_user_attributes.c.key == SEARCH_ENDED_ATTR,
    )
    .scalar_subquery()
)
_STUDY_QUERY = (
    sa.select(studies.c.study_id, study_directions.c.direction, _SEARCH_ENDED.label("search_ended"))
    .select_from(studies)
    .outerjoin(
        study_directions,
        sa.and_(
            study_directions.c.study_id == studies.c.study_id, study_directions.c.objective == 0
        ),
    )
    .where(studies.c.study_name == sa.bindparam("optuna_name", type_=sa.String))
)


def _stats(conn: Connection, study_id: int, direction: str) -> StudyTrialStats:
    row = conn.execute(_STATS_QUERY, {"study_id": study_id}).one()
    n = len(TRIAL_STATES)
    counts = dict(zip(TRIAL_STATES, row[:n], strict=True))
    first_start, completes = row[n], row[n + 1 :]
    return StudyTrialStats(
        counts,
        direction,
        as_utc(first_start),
        as_utc(max((t for t in completes if t is not None), default=None)),
        optuna_study_id=study_id,
        last_complete=as_utc(completes[0]),
    )


def _best(conn: Connection, study_id: int, direction: str) -> TrialRecord | None:
    """The best complete search trial as `studyd.daemon.records.best_trial` ranks it (the one
    the test score retrains): the best feasible one, or the best of all when none is feasible;
    the lowest number among equals. Seed replicates are not candidates: one is a search trial's
    config again on a fresh seed, so the best of them is the luckiest seed. Read best first, a
    page at a time, until a feasible one turns up: one page and one constraint lookup when the
    study has no constraints."""
    replicate = sa.exists().where(
        trial_user_attributes.c.trial_id == trials.c.trial_id,
        trial_user_attributes.c.key == REPLICATE_ATTR,
    )
    query = (
        _trial_query(study_id)
        .where(trials.c.state == "COMPLETE", trial_values.c.trial_id.is_not(None), ~replicate)
        .order_by(*_value_order(direction, None))
    )
    first = None
    for offset in itertools.count(0, _BEST_PAGE):
        page = conn.execute(query.limit(_BEST_PAGE).offset(offset)).all()
        if not page:
            break
        if first is None:
            first = page[0]
        infeasible = _infeasible(conn, [r.trial_id for r in page])
        feasible = next((r for r in page if r.trial_id not in infeasible), None)
        if feasible is not None:
            return _rows(conn, [feasible], None)[0]
    return None if first is None else _rows(conn, [first], None)[0]


_BEST_PAGE = 64


def _infeasible(conn: Connection, trial_ids: list[int]) -> set[int]:
    """The trials of `trial_ids` with a constraint value above 0 (≤ 0 is feasible)."""
    found = constraint_values(conn, trial_ids)
    return {tid for tid, values in found.items() if not meets_constraints(values)}


@dataclass(frozen=True)
class TrialPage:
    """One page of trials, the total matching its filters, and `finished_key`: the page's trial
    rows as read when every one of them is finished, else None. The rows never change while
    that key stands, so whatever is built from them alone may be kept under it."""

    rows: list[TrialRecord]
    total: int
    finished_key: Hashable | None


def trial_page(
    engine: Engine | Connection,
    optuna_name: str,
    *,
    state: str | None = None,
    variant: str | None = None,
    sort: TrialSort = "number",
    order: SortOrder | None = None,
    limit: int = 50,
    offset: int = 0,
    page_cache: ReadCache | None = None,
) -> TrialPage:
    """One page of trials and the total matching the filters (pages of finished trials kept
    in `page_cache`, see `_finished_rows`)."""
    with read_connection(engine) as conn:
        study_id = optuna_study_id(conn, optuna_name)
        if study_id is None:
            return TrialPage([], 0, None)
        filters: list[sa.ColumnElement[bool]] = [trials.c.study_id == study_id]
        if state is not None:
            filters.append(trials.c.state == state.upper())
        if variant is not None:
            # The worker stores user attributes JSON-encoded, so the string carries its quotes.
            # EXISTS per trial rides the (trial_id, key) unique index; an IN over every
            # study's variant attributes would scan them all.
            tagged = sa.exists().where(
                trial_user_attributes.c.trial_id == trials.c.trial_id,
                trial_user_attributes.c.key == "variant",
                trial_user_attributes.c.value_json == json.dumps(variant),
            )
            filters.append(tagged)
        # Counted on `trials` alone: our (study_id, state) index answers it without the rows.
        total = conn.execute(sa.select(sa.func.count()).where(*filters)).scalar_one()
        if sort == "value":
            keys = _value_order(_direction(conn, study_id), order)
            query = _trial_query(study_id).where(*filters).order_by(*keys)
            page = conn.execute(query.limit(limit).offset(offset))
        else:
            page = conn.execute(_number_page(filters, order, limit, offset))
        rows, key = _finished_rows(conn, page, BRIEF_ATTRS, page_cache)
        return TrialPage(rows, total, key)


def _number_page(
    filters: list[sa.ColumnElement[bool]], order: SortOrder | None, limit: int, offset: int
) -> sa.Select[Any]:
    """A page by number: the trials first (a range of our (study_id, number) index), their
    values joined to those rows only. Joined before the LIMIT, PostgreSQL hashed the whole
    study's values and sorted every trial (10 ms a page at 10 000 trials)."""
    columns = [c for c in _trial_query(0).selected_columns if c.table is trials]
    number = trials.c.number.desc() if order == "desc" else trials.c.number
    trials_page = (
        sa.select(*columns).where(*filters).order_by(number).limit(limit).offset(offset)
    ).subquery("page")
    return (
        sa.select(trials_page, trial_values.c.value, trial_values.c.value_type)
        .outerjoin(
            trial_values,
            sa.and_(
                trial_values.c.trial_id == trials_page.c.trial_id, trial_values.c.objective == 0
            ),
        )
        .order_by(trials_page.c.number.desc() if order == "desc" else trials_page.c.number)
    )


def get_trial(engine: Engine, optuna_name: str, number: int) -> TrialRecord | None:
    """One trial with all its params, user attributes and intermediate values."""
    with read_only(engine).connect() as conn:
        study_id = optuna_study_id(conn, optuna_name)
        if study_id is None:
            return None
        query = _trial_query(study_id).where(trials.c.number == number).limit(1)
        rows = _rows(conn, conn.execute(query), None)
        if not rows:
            return None
        steps_query = (
            sa.select(trial_intermediate_values)
            .where(trial_intermediate_values.c.trial_id == rows[0].trial_id)
            .order_by(trial_intermediate_values.c.step)
        )
        steps = [
            (s.step, stored_value(s.intermediate_value, s.intermediate_value_type))
            for s in conn.execute(steps_query)
        ]
        return replace(rows[0], intermediate_values=steps)


def missing_note_target(engine: Engine, study_id: int, trial_id: int | None) -> str | None:
    """Why an optuna-dashboard note for Optuna's study `study_id` (and its trial `trial_id`, a
    global trial id as the dashboard names it) has nothing to annotate, or None."""
    with read_connection(read_only(engine)) as conn:
        if conn.scalar(sa.select(studies.c.study_id).where(studies.c.study_id == study_id)) is None:
            return f"no study has id {study_id} in this database"
        if trial_id is None:
            return None
        owner = conn.scalar(sa.select(trials.c.study_id).where(trials.c.trial_id == trial_id))
    if owner != study_id:
        return f"study {study_id} has no trial with id {trial_id}"
    return None
