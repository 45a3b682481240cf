"""A stack's extra trial slots are leases of its worker's row, not workers of their own.

A worker training K trials at once holds K slots; each extra slot keeps its own row (the queue's
claim, heartbeat and reaper work per row), now marked `lease_of` its worker's row so that
`GET /workers` shows one entry per process with every trial it holds. NULL: a worker's own row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studyd_workers") as batch:
        batch.add_column(sa.Column("lease_of", sa.Integer(), nullable=True))
        batch.create_index("ix_studyd_workers_lease_of", ["lease_of"])


def downgrade() -> None:
    with op.batch_alter_table("studyd_workers") as batch:
        batch.drop_index("ix_studyd_workers_lease_of")
        batch.drop_column("lease_of")
