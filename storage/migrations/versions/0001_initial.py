"""Study queue and worker registry.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studyd_studies",
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
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_studyd_studies_state",
        ),
        sa.CheckConstraint("claimed >= 0 AND finished >= 0", name="ck_studyd_studies_counts"),
        sa.UniqueConstraint("optuna_name", name="uq_studyd_studies_optuna_name"),
        sa.UniqueConstraint("idempotency_key", name="uq_studyd_studies_idempotency_key"),
    )
    op.create_index(
        "ix_studyd_studies_claim", "studyd_studies", ["state", "priority", "created_at"]
    )
    op.create_table(
        "studyd_workers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("trial_number", sa.Integer(), nullable=True),
    )
    op.create_index("ix_studyd_workers_last_heartbeat", "studyd_workers", ["last_heartbeat"])
    op.create_index("ix_studyd_workers_study_id", "studyd_workers", ["study_id"])


def downgrade() -> None:
    op.drop_index("ix_studyd_workers_study_id", table_name="studyd_workers")
    op.drop_index("ix_studyd_workers_last_heartbeat", table_name="studyd_workers")
    op.drop_table("studyd_workers")
    op.drop_index("ix_studyd_studies_claim", table_name="studyd_studies")
    op.drop_table("studyd_studies")
