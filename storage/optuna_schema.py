"""Optuna's own tables, declared once: the only module that names them or their columns.

`storage/` reads and writes Optuna's schema directly where its storage API costs one
transaction per value or loads a whole study (see `trials`, `trial_scan`, `trial_attrs`,
`trial_batch`). Optuna declares the same tables in its private `optuna.storages._rdb.models`;
these are our mirrors of the columns we rely on, on a MetaData of their own that nothing ever
creates or migrates (Optuna's RDBStorage does). `tests/storage/test_optuna_schema.py` checks them
against a real RDBStorage on every backend, so an Optuna upgrade that changes one fails there.

Also here: Optuna's encodings of what those columns hold (enum names, infinite values, JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from sqlalchemy.engine import Connection

# Optuna's enums, by the names PostgreSQL knows them (native types there, VARCHAR on SQLite).
# Typed, so that `state == 'COMPLETE'` binds as the enum and rides our (study_id, state, ...)
# index, where a cast of the column to text would not; never created by us.
TRIAL_STATE_NAMES: tuple[str, ...] = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")
VALUE_TYPE_NAMES: tuple[str, ...] = ("FINITE", "INF_POS", "INF_NEG")
INTERMEDIATE_VALUE_TYPE_NAMES: tuple[str, ...] = ("FINITE", "INF_POS", "INF_NEG", "NAN")
DIRECTION_NAMES: tuple[str, ...] = ("NOT_SET", "MINIMIZE", "MAXIMIZE")


def _enum(name: str, members: Sequence[str]) -> sa.Enum:
    return sa.Enum(*members, name=name, create_constraint=False)


OPTUNA_METADATA = sa.MetaData()


def _table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(name, OPTUNA_METADATA, *columns)


def _id(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, primary_key=True)


studies = _table("studies", _id("study_id"), sa.Column("study_name", sa.String))
study_user_attributes = _table(
    "study_user_attributes",
    _id("study_user_attribute_id"),
    sa.Column("study_id", sa.Integer),
    sa.Column("key", sa.String),
    sa.Column("value_json", sa.Text),
)
study_directions = _table(
    "study_directions",
    _id("study_direction_id"),
    sa.Column("study_id", sa.Integer),
    sa.Column("objective", sa.Integer),
    sa.Column("direction", _enum("studydirection", DIRECTION_NAMES)),
)
trials = _table(
    "trials",
    _id("trial_id"),
    sa.Column("number", sa.Integer),
    sa.Column("study_id", sa.Integer),
    sa.Column("state", _enum("trialstate", TRIAL_STATE_NAMES)),
    sa.Column("datetime_start", sa.DateTime),
    sa.Column("datetime_complete", sa.DateTime),
)
trial_values = _table(
    "trial_values",
    _id("trial_value_id"),
    sa.Column("trial_id", sa.Integer),
    sa.Column("objective", sa.Integer),
    sa.Column("value", sa.Float),
    sa.Column("value_type", _enum("trialvaluetype", VALUE_TYPE_NAMES)),
)
trial_params = _table(
    "trial_params",
    _id("param_id"),
    sa.Column("trial_id", sa.Integer),
    sa.Column("param_name", sa.String),
    sa.Column("param_value", sa.Float),
    sa.Column("distribution_json", sa.Text),
)
trial_user_attributes = _table(
    "trial_user_attributes",
    _id("trial_user_attribute_id"),
    sa.Column("trial_id", sa.Integer),
    sa.Column("key", sa.String),
    sa.Column("value_json", sa.Text),
)
trial_system_attributes = _table(
    "trial_system_attributes",
    _id("trial_system_attribute_id"),
    sa.Column("trial_id", sa.Integer),
    sa.Column("key", sa.String),
    sa.Column("value_json", sa.Text),
)
trial_intermediate_values = _table(
    "trial_intermediate_values",
    _id("trial_intermediate_value_id"),
    sa.Column("trial_id", sa.Integer),
    sa.Column("step", sa.Integer),
    sa.Column("intermediate_value", sa.Float),
    sa.Column(
        "intermediate_value_type",
        _enum("trialintermediatevaluetype", INTERMEDIATE_VALUE_TYPE_NAMES),
    ),
)


# A trial's constraint values are system attributes `constraints:<name>` (Trial.set_constraint).
CONSTRAINT_PREFIX = "constraints:"


# --- Optuna's encodings ----------------------------------------------------------------------


def enum_name(stored: Any) -> str:
    """The member name of a stored enum value, whether the driver returns it as text or not."""
    return str(getattr(stored, "name", stored))


def stored_value(value: float | None, value_type: Any) -> float | None:
    """A value as Optuna reads it back: its infinities are NULL with the sign in the type."""
    kind = enum_name(value_type)
    if kind == "INF_POS":
        return float("inf")
    if kind == "INF_NEG":
        return float("-inf")
    return value


def intermediate_to_stored(value: float) -> tuple[float | None, str]:
    """(intermediate_value, intermediate_value_type) as Optuna writes a reported value."""
    if math.isnan(value):
        return None, "NAN"
    if value == math.inf:
        return None, "INF_POS"
    if value == -math.inf:
        return None, "INF_NEG"
    return value, "FINITE"


@lru_cache(maxsize=4096)
def distribution(text: str) -> BaseDistribution:
    """A parameter's distribution from its `distribution_json` (few distinct texts: cached)."""
    return json_to_distribution(text)


# --- look-ups every reader shares ------------------------------------------------------------


def optuna_study_id(conn: Connection, optuna_name: str) -> int | None:
    """Optuna's `study_id` of the study named `optuna_name`, None when there is none."""
    query = sa.select(studies.c.study_id).where(studies.c.study_name == optuna_name)
    return conn.execute(query).scalar_one_or_none()


def params_and_attrs(
    conn: Connection, trial_ids: Sequence[int], attr_keys: Iterable[str] | None
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """Params (external values) and user attributes (`attr_keys` only, None: all) per trial id:
    one query per side table, restricted to `trial_ids`."""
    params: dict[int, dict[str, Any]] = {tid: {} for tid in trial_ids}
    attrs: dict[int, dict[str, Any]] = {tid: {} for tid in trial_ids}
    if not trial_ids:
        return params, attrs
    p = trial_params.c
    query = sa.select(p.trial_id, p.param_name, p.param_value, p.distribution_json).where(
        p.trial_id.in_(trial_ids)
    )
    # fetchall + tuple unpacking: a page is ~1000 side rows, and per-row fetches dominated it.
    for tid, name, value, dist_json in conn.execute(query).all():
        params[tid][name] = distribution(dist_json).to_external_repr(value)
    a = trial_user_attributes.c
    query = sa.select(a.trial_id, a.key, a.value_json).where(a.trial_id.in_(trial_ids))
    if attr_keys is not None:
        query = query.where(a.key.in_(list(attr_keys)))
    found = conn.execute(query).all()
    # Each value is a JSON document: one array of them decodes in one call, not one per value.
    values = json.loads("[" + ",".join(row[2] for row in found) + "]")
    for (tid, key, _), value in zip(found, values, strict=True):
        attrs[tid][key] = value
    return params, attrs
