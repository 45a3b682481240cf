"""A study deleted (or cancelled) under its trials: told apart from a database error or a reaped
worker, then dropped in one line, its slots given back where the study still counts them."""

from __future__ import annotations

import logging
from contextlib import suppress

from storage.worker_store import IllegalStateChange, StudyNotFound, StudyRecord, WorkerGone
from studyd.daemon.worker.results import Claim
from studyd.daemon.worker.state import DB_ERRORS, StudyIdentity, WorkerState

logger = logging.getLogger(__name__)


def vanished(state: WorkerState, record: StudyRecord, exc: Exception) -> bool:
    """True when `exc` came from `record`'s study being deleted under its trials: the errors
    Optuna then raises (`KeyError: no trial with trial_id`, `Record does not exist.`) are about
    our trial being gone, not about the spec or the worker. Our row goes last, so a cancelled
    study whose Optuna study is already gone counts too."""
    if isinstance(exc, (*DB_ERRORS, WorkerGone)):
        return False  # the database or the reaper: handled as such
    try:
        now = state.store.get_study(record.id)
    except StudyNotFound:
        return True
    except DB_ERRORS:
        return False
    if StudyIdentity.of(now) != StudyIdentity.of(record):
        return True
    return now.state == "cancelled" and isinstance(exc, (KeyError, ValueError))


def deleted(state: WorkerState, record: StudyRecord) -> bool:
    """Our lease is gone because the study was deleted (its id maybe taken by a new study), not
    because the reaper took our row: one line, and the worker goes on."""
    if not vanished(state, record, LookupError("lease gone")):
        return False
    logger.warning("study %s was deleted: its slot went with it", record.id)
    state.forget(record.id)
    return True


def drop_vanished(state: WorkerState, claims: list[Claim], exc: Exception) -> None:
    """One line, and each slot given back where the study still counts it."""
    record = claims[0].record
    logger.warning(
        "study %s was cancelled or deleted under its trial(s): dropped (%s: %s)",
        record.id,
        type(exc).__name__,
        exc,
    )
    state.forget(record.id)
    for claim in claims:
        with suppress(IllegalStateChange, StudyNotFound, WorkerGone, *DB_ERRORS):
            row = state.lease_row(claim.lease)
            state.store.release_trial_slot(claim.record.id, worker_id=row)
