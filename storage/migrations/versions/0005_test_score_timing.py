"""When a study's test score was recorded and how long its retraining took.

The score is owed after `done` (the finaliser retrains the best trial's config on the training
split and evaluates it on the test split), so `finished_at` excludes it; these two columns report
it on its own. NULL for studies scored before this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studyd_studies") as batch:
        batch.add_column(sa.Column("test_scored_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("test_score_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studyd_studies") as batch:
        batch.drop_column("test_score_seconds")
        batch.drop_column("test_scored_at")
