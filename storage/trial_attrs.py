"""Trial writes and look-ups in Optuna's own schema, one transaction each (the worker's hot path).

Optuna's storage API writes one user attribute per transaction (≈ 3 ms each on SQLite, a worker
records ~30 per trial) and finds a finished run only by loading every trial of the study. These
functions do the same work in one round trip, with Optuna's encoding (`json.dumps(value)` in
`trial_user_attributes.value_json`; the tables are declared in `storage.optuna_schema`). Any
other storage (the gRPC proxy) falls back to the public API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from storage.optuna_schema import enum_name, trial_user_attributes, trials


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage behind `storage`, None for any other storage (the gRPC proxy)."""
    # A Study wraps its RDBStorage in Optuna's _CachedStorage; writes go to the backend either way.
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def set_trial_user_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Every attribute of `attrs` on the trial in one transaction (upsert, as `set_user_attr`).

    Raises `optuna.exceptions.UpdateFinishedTrialError` when the trial is already finished, and
    `KeyError` when it does not exist, like Optuna's per-attribute call.
    """
    set_user_attrs(storage, {trial_id: attrs})


def set_user_attrs(storage: BaseStorage, attrs_by_trial: Mapping[int, Mapping[str, Any]]) -> None:
    """`set_trial_user_attrs` for several trials in one transaction, all or nothing: a finished
    or missing trial among them raises (as there) and nothing is written."""
    attrs_by_trial = {trial_id: attrs for trial_id, attrs in attrs_by_trial.items() if attrs}
    backend = rdb_backend(storage)
    if backend is None:
        for trial_id, attrs in attrs_by_trial.items():
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
        return
    if not attrs_by_trial:
        return
    table = trial_user_attributes
    rows = [
        {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
        for trial_id, attrs in attrs_by_trial.items()
        for k, v in attrs.items()
    ]
    with backend.engine.begin() as conn:
        check_updatable(conn, backend, list(attrs_by_trial))
        # Delete + insert is the upsert every dialect runs (the unique key is (trial_id, key)).
        for trial_id, attrs in attrs_by_trial.items():
            conn.execute(
                table.delete().where(table.c.trial_id == trial_id, table.c.key.in_(list(attrs)))
            )
        conn.execute(table.insert(), rows)


# Built once: the worker checks before every epoch's report, and building an IN clause per
# call cost more than running it (≈ 0.3 ms of SQLAlchemy per report).
_TRIAL_STATES = sa.select(trials.c.trial_id, trials.c.state).where(
    trials.c.trial_id.in_(sa.bindparam("ids", expanding=True))
)


def check_updatable(conn: sa.Connection, backend: RDBStorage, trial_ids: Sequence[int]) -> None:
    """Inside a write: `KeyError` for a missing trial, `UpdateFinishedTrialError` for a finished
    one (Optuna's own check), for each of `trial_ids`."""
    states = dict(conn.execute(_TRIAL_STATES, {"ids": list(trial_ids)}).all())
    for trial_id in trial_ids:
        if trial_id not in states:
            raise KeyError(f"no trial with trial_id {trial_id}")
        backend.check_trial_is_updatable(trial_id, TrialState[enum_name(states[trial_id])])


def first_trial_with_attr(
    storage: BaseStorage,
    study_id: int,
    key: str,
    value: Any,
    *,
    before: int,
    states: tuple[TrialState, ...] = (TrialState.COMPLETE,),
) -> FrozenTrial | None:
    """The lowest-numbered trial below `before`, in one of `states` (COMPLETE unless told),
    whose user attribute `key` is `value`.

    None when there is none, or when the storage is not an RDBStorage (callers then scan).
    """
    backend = rdb_backend(storage)
    if backend is None:
        return None
    attrs = trial_user_attributes
    query = (
        sa.select(trials.c.trial_id)
        .join(attrs, attrs.c.trial_id == trials.c.trial_id)
        .where(
            trials.c.study_id == study_id,
            trials.c.state.in_([state.name for state in states]),
            trials.c.number < before,
            attrs.c.key == key,
            attrs.c.value_json == json.dumps(value),
        )
        .order_by(trials.c.number)
        .limit(1)
    )
    with backend.engine.connect() as conn:
        trial_id = conn.execute(query).scalar_one_or_none()
    return None if trial_id is None else backend.get_trial(trial_id)


def is_rdb(storage: BaseStorage) -> bool:
    """True when the fast paths above apply (an RDBStorage, wrapped or not)."""
    return rdb_backend(storage) is not None
