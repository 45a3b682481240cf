"""Whole-study scans in keyset pages: the summary's records and the CSV export.

A scan yields one page of trials at a time (ordered by number, `number > last` per page), each page
read on its own connection with one query per side table restricted to the page's trial ids, so
memory is one page and a streaming response never holds a connection between pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import read_only
from storage.optuna_schema import (
    CONSTRAINT_PREFIX,
    optuna_study_id,
    params_and_attrs,
    stored_value,
    study_directions,
    trial_params,
    trial_system_attributes,
    trial_user_attributes,
    trial_values,
    trials,
)
from storage.trial_record import TrialRecord, trial_record

SCAN_PAGE_SIZE = 500


def scan_trials(
    engine: Engine,
    optuna_name: str,
    *,
    states: Iterable[str] | None = None,
    attr_keys: Iterable[str] | None = None,
    page_size: int = SCAN_PAGE_SIZE,
) -> Iterator[list[TrialRecord]]:
    """Pages of trials by number; `states` like "complete"; `attr_keys` None means all."""
    keys = None if attr_keys is None else list(attr_keys)
    wanted = None if states is None else [s.upper() for s in states]
    last = -1
    while True:
        with read_only(engine).connect() as conn:
            study_id = optuna_study_id(conn, optuna_name)
            if study_id is None:
                return
            query = sa.select(
                trials.c.trial_id,
                trials.c.number,
                trials.c.state,
                trials.c.datetime_start,
                trials.c.datetime_complete,
            ).where(trials.c.study_id == study_id, trials.c.number > last)
            if wanted is not None:
                query = query.where(trials.c.state.in_(wanted))
            rows = list(conn.execute(query.order_by(trials.c.number).limit(page_size)))
            if not rows:
                return
            ids = [r.trial_id for r in rows]
            params, attrs = params_and_attrs(conn, ids, keys)
            values = _page_values(conn, ids)
            constraints = constraint_values(conn, ids)
        yield [
            trial_record(
                r,
                value=(values.get(r.trial_id) or [None])[0],
                values=values.get(r.trial_id, []),
                params=params[r.trial_id],
                user_attrs=attrs[r.trial_id],
                constraints=constraints.get(r.trial_id, {}),
            )
            for r in rows
        ]
        if len(rows) < page_size:
            return
        last = rows[-1].number


def _page_values(conn: sa.Connection, ids: list[int]) -> dict[int, list[float | None]]:
    query = (
        sa.select(trial_values.c.trial_id, trial_values.c.value, trial_values.c.value_type)
        .where(trial_values.c.trial_id.in_(ids))
        .order_by(trial_values.c.trial_id, trial_values.c.objective)
    )
    out: dict[int, list[float | None]] = {}
    for row in conn.execute(query):
        out.setdefault(row.trial_id, []).append(stored_value(row.value, row.value_type))
    return out


def constraint_values(conn: sa.Connection, ids: list[int]) -> dict[int, dict[str, float]]:
    """Each trial's constraint values by name (only trials that have any)."""
    query = sa.select(trial_system_attributes).where(
        trial_system_attributes.c.trial_id.in_(ids),
        trial_system_attributes.c.key.like(CONSTRAINT_PREFIX + "%"),
    )
    out: dict[int, dict[str, float]] = {}
    for row in conn.execute(query):
        name = row.key[len(CONSTRAINT_PREFIX) :]
        out.setdefault(row.trial_id, {})[name] = float(json.loads(row.value_json))
    return out


def trial_columns(engine: Engine, optuna_name: str) -> tuple[int, list[str], list[str]]:
    """(number of objectives, param names, user attribute keys) used anywhere in the study."""
    with read_only(engine).connect() as conn:
        study_id = optuna_study_id(conn, optuna_name)
        if study_id is None:
            return 0, [], []
        in_study = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)
        n_objectives = conn.execute(
            sa.select(sa.func.count()).where(study_directions.c.study_id == study_id)
        ).scalar_one()

        def names(column: sa.Column[str]) -> list[str]:
            """The distinct values of a side table's `column` over the study's trials, sorted."""
            query = sa.select(column).where(column.table.c.trial_id.in_(in_study)).distinct()
            return list(conn.execute(query.order_by(column)).scalars())

        param_names = names(trial_params.c.param_name)
        attr_keys = names(trial_user_attributes.c.key)
        return int(n_objectives), param_names, attr_keys
