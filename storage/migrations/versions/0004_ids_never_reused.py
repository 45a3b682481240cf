"""Ids are never reused: SQLite's tables get AUTOINCREMENT (PostgreSQL's sequences never reuse).

Without AUTOINCREMENT SQLite hands out max(id) + 1, so deleting the newest study and submitting
another gave the new study the deleted one's id, and whatever a client or a worker had cached
under that id described the deleted study. The same held for worker ids (a reaped worker's late
heartbeat would have landed on a newcomer's row). SQLAlchemy's `autoincrement=True` does not emit
the keyword; `sqlite_autoincrement=True` does, and SQLite can add it only by rebuilding the table.
Rows are copied with their ids, which sets the table's high-water mark in `sqlite_sequence`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _studies(metadata: sa.MetaData) -> sa.Table:
    # The table as of revisions 0001 + 0002, written out: the model may change after this.
    return sa.Table(
        "studyd_studies",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("optuna_name", sa.String(255), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("target_trials", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("test_score", sa.Float(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("final_step", sa.String(16), nullable=True),
        sa.Column("final_step_worker", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_studyd_studies_state",
        ),
        sa.CheckConstraint("claimed >= 0 AND finished >= 0", name="ck_studyd_studies_counts"),
        sa.UniqueConstraint("optuna_name", name="uq_studyd_studies_optuna_name"),
        sa.UniqueConstraint("idempotency_key", name="uq_studyd_studies_idempotency_key"),
        sa.Index("ix_studyd_studies_claim", "state", "priority", "created_at"),
        sqlite_autoincrement=True,
    )


def _workers(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "studyd_workers",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Index("ix_studyd_workers_last_heartbeat", "last_heartbeat"),
        sa.Index("ix_studyd_workers_study_id", "study_id"),
        sqlite_autoincrement=True,
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's SERIAL sequences never hand out an id twice
    metadata = sa.MetaData()
    for table in (_studies(metadata), _workers(metadata)):
        with op.batch_alter_table(table.name, copy_from=table, recreate="always"):
            pass


def downgrade() -> None:
    # Kept: a table that never reuses ids is still a valid revision-0003 table.
    pass
