"""Indexes on Optuna's `trials` for the API's reads (storage.trial_indexes).

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

from alembic import op

from storage.trial_indexes import create_trial_indexes, drop_trial_indexes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On a fresh database Optuna's tables do not exist yet: ensure_schema creates these after it.
    create_trial_indexes(op.get_bind())


def downgrade() -> None:
    drop_trial_indexes(op.get_bind())
