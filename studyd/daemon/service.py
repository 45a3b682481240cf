"""Submitting a study: the queue row, its Optuna study and its baseline trials, in that order."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import optuna
from optuna.storages import BaseStorage
from sqlalchemy import Engine

from storage.queue import StudyRecord
from storage.sql_store import SqlWorkerStore
from studyd.daemon.dashboard_note import name_objectives
from studyd.daemon.search import build_pruner, build_sampler
from studyd.daemon.warm_start import warm_start_trials
from studyd.spec import StudySpec, validate_spec
from studyd.spec.parameters import baseline_params

logger = logging.getLogger(__name__)


class SubmitStore(Protocol):
    """Where a study is submitted: `storage.sql_store.SqlWorkerStore`, or the in-memory store."""

    optuna_storage: BaseStorage

    def submit_study(self, **fields: Any) -> StudyRecord: ...

    def wake_workers(self) -> None: ...

    def get_study(self, study_id: int) -> StudyRecord: ...


def submit_spec(
    engine: Engine,
    optuna_storage: BaseStorage,
    spec: StudySpec | dict[str, Any],
    *,
    priority: int = 0,
    idempotency_key: str | None = None,
) -> StudyRecord:
    """Queue `spec` on our database: `submit_to` with its `SqlWorkerStore`."""
    store = SqlWorkerStore(engine, optuna_storage)
    return submit_to(store, spec, priority=priority, idempotency_key=idempotency_key)


def submit_to(
    store: SubmitStore,
    spec: StudySpec | dict[str, Any],
    *,
    priority: int = 0,
    idempotency_key: str | None = None,
) -> StudyRecord:
    """Queue `spec`: a study row plus the Optuna study (`record.optuna_name`) holding its trials.
    Directions come from the spec; baselines are enqueued before any worker can ask, and only
    once, so a repeated submit with the same idempotency key changes nothing.
    """
    if not isinstance(spec, StudySpec):
        spec = validate_spec(spec)
    # Checked before the row exists: a refused warm start queues nothing.
    warm = warm_start_trials(store, spec) if spec.search.warm_start else None
    record = store.submit_study(
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        target_trials=spec.search.n_trials,
        priority=priority,
        idempotency_key=idempotency_key,
        final_step="replicates" if spec.repeats else "score",
    )
    study = optuna.create_study(
        storage=store.optuna_storage,
        study_name=record.optuna_name,
        directions=spec.search.directions(),
        sampler=build_sampler(spec),
        pruner=build_pruner(spec),
        load_if_exists=True,
    )
    if study.user_attrs.get("studyd_id") is None:
        # A worker can only claim a slot after the row exists, but asks only after this point
        # matters: baselines enqueued here are the first trials any worker draws.
        for params in baseline_params(spec):
            study.enqueue_trial(params, user_attrs={"baseline": True}, skip_if_exists=True)
        if warm is not None:
            study.add_trials(warm.trials)
            study.set_user_attr("warm_start", {"trials": len(warm.trials), "skipped": warm.skipped})
        study.set_user_attr("spec", spec.model_dump(mode="json"))
        study.set_user_attr("objectives", spec.search.objective_names())
        study.set_user_attr("studyd_id", record.id)
        name_objectives(study, spec)
    # Only now: a worker woken at the row's commit could find no Optuna study (or no baselines).
    store.wake_workers()
    logger.info("submitted study %s (%s)", record.id, record.optuna_name)
    return record


def study_spec(record: StudyRecord) -> StudySpec:
    """The validated spec of a queued study (raises `SpecError` if it no longer validates)."""
    return validate_spec(record.spec)
