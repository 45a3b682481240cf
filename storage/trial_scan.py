"""Whole-study scans in keyset pages: the summary's records and the CSV export.

A scan yields one page of trials at a time (ordered by number, `number > last` per page), each page
read on its own connection with one query per side table restricted to the page's trial ids, so
memory is one page and a streaming response never holds a connection between pages.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import read_only
from storage.trials import (
    _attrs,
    _directions,
    _optuna_study_id,
    _params,
    _side_tables,
    _state_name,
    _stored_value,
    _trials,
    _utc,
    _values,
)

SCAN_PAGE_SIZE = 500
_system_attrs = sa.table(
    "trial_system_attributes", sa.column("trial_id"), sa.column("key"), sa.column("value_json")
)
_CONSTRAINT_PREFIX = "constraints:"


@dataclass(frozen=True)
class ScannedTrial:
    """A trial with every objective value, its params, the asked-for user attributes and its
    constraint values (Optuna's `constraints:<name>` system attributes; ≤ 0 is feasible)."""

    number: int
    state: str
    values: list[float | None]
    datetime_start: dt.datetime | None
    datetime_complete: dt.datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())


def scan_trials(
    engine: Engine,
    optuna_name: str,
    *,
    states: Iterable[str] | None = None,
    attr_keys: Iterable[str] | None = None,
    page_size: int = SCAN_PAGE_SIZE,
) -> Iterator[list[ScannedTrial]]:
    """Pages of trials by number; `states` like "complete"; `attr_keys` None means all."""
    keys = None if attr_keys is None else list(attr_keys)
    wanted = None if states is None else [s.upper() for s in states]
    last = -1
    while True:
        with read_only(engine).connect() as conn:
            study_id = _optuna_study_id(conn, optuna_name)
            if study_id is None:
                return
            query = sa.select(
                _trials.c.trial_id,
                _trials.c.number,
                _trials.c.state,
                _trials.c.datetime_start,
                _trials.c.datetime_complete,
            ).where(_trials.c.study_id == study_id, _trials.c.number > last)
            if wanted is not None:
                query = query.where(_trials.c.state.in_(wanted))
            rows = list(conn.execute(query.order_by(_trials.c.number).limit(page_size)))
            if not rows:
                return
            ids = [r.trial_id for r in rows]
            params, attrs = _side_tables(conn, ids, keys)
            values = _page_values(conn, ids)
            constraints = _page_constraints(conn, ids)
        yield [
            ScannedTrial(
                number=r.number,
                state=_state_name(r.state),
                values=values.get(r.trial_id, []),
                datetime_start=_utc(r.datetime_start),
                datetime_complete=_utc(r.datetime_complete),
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
        sa.select(_values.c.trial_id, _values.c.value, _values.c.value_type)
        .where(_values.c.trial_id.in_(ids))
        .order_by(_values.c.trial_id, _values.c.objective)
    )
    out: dict[int, list[float | None]] = {}
    for row in conn.execute(query):
        out.setdefault(row.trial_id, []).append(_stored_value(row.value, row.value_type))
    return out


def _page_constraints(conn: sa.Connection, ids: list[int]) -> dict[int, dict[str, float]]:
    query = sa.select(_system_attrs).where(
        _system_attrs.c.trial_id.in_(ids),
        _system_attrs.c.key.like(_CONSTRAINT_PREFIX + "%"),
    )
    out: dict[int, dict[str, float]] = {}
    for row in conn.execute(query):
        name = row.key[len(_CONSTRAINT_PREFIX) :]
        out.setdefault(row.trial_id, {})[name] = float(json.loads(row.value_json))
    return out


def trial_columns(engine: Engine, optuna_name: str) -> tuple[int, list[str], list[str]]:
    """(number of objectives, param names, user attribute keys) used anywhere in the study."""
    with read_only(engine).connect() as conn:
        study_id = _optuna_study_id(conn, optuna_name)
        if study_id is None:
            return 0, [], []
        in_study = sa.select(_trials.c.trial_id).where(_trials.c.study_id == study_id)
        n_objectives = conn.execute(
            sa.select(sa.func.count()).where(_directions.c.study_id == study_id)
        ).scalar_one()
        param_names = conn.execute(
            sa.select(_params.c.param_name)
            .where(_params.c.trial_id.in_(in_study))
            .distinct()
            .order_by(_params.c.param_name)
        ).scalars()
        attr_keys = conn.execute(
            sa.select(_attrs.c.key)
            .where(_attrs.c.trial_id.in_(in_study))
            .distinct()
            .order_by(_attrs.c.key)
        ).scalars()
        return int(n_objectives), list(param_names), list(attr_keys)
