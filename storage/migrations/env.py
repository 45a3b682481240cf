"""Alembic environment: run on the connection `storage.migrate` hands in, our tables only."""

from __future__ import annotations

from alembic import context

from storage.migrate import VERSION_TABLE
from storage.schema import Base


def _ours(obj, name, type_, reflected, compare_to) -> bool:
    # Optuna's tables live in the same database; autogenerate must never touch them.
    return type_ != "table" or (name or "").startswith("studyd_")


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_object=_ours,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
