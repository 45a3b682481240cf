"""Our indexes on Optuna's `trials` table: what keeps the API's reads flat in study size.

Optuna indexes `trials` on `study_id` alone, so a page ordered by number sorted the whole study
and the counts by state read every row. These indexes are ours (prefix `ix_studyd_`), created
with IF NOT EXISTS by migration 0003 when Optuna's tables are already there, and by
`storage.migrate.ensure_schema` after it creates them (on a fresh database our migrations run
before Optuna's tables exist, and an Optuna upgrade that rebuilds `trials` drops them).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.optuna_schema import trials

# name -> columns of `trials`
TRIAL_INDEXES: dict[str, tuple[str, ...]] = {
    # Pages and keyset scans by number: an index range, no sort.
    "ix_studyd_trials_study_number": ("study_id", "number"),
    # Counts by state read this index only; the last completion per state is one seek.
    "ix_studyd_trials_study_state": ("study_id", "state", "datetime_complete"),
    # The first trial start is one seek.
    "ix_studyd_trials_study_start": ("study_id", "datetime_start"),
}


def _has_trials(connection: Connection) -> bool:
    return sa.inspect(connection).has_table(trials.name)


def create_trial_indexes(connection: Connection) -> None:
    """Create the indexes that are missing (none when Optuna's `trials` does not exist yet)."""
    if not _has_trials(connection):
        return
    for name, columns in TRIAL_INDEXES.items():
        names = ", ".join(trials.c[column].name for column in columns)
        connection.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {trials.name} ({names})"))


def drop_trial_indexes(connection: Connection) -> None:
    """Drop them again (Optuna's own tables and indexes are never touched)."""
    if not _has_trials(connection):
        return
    for name in TRIAL_INDEXES:
        connection.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
