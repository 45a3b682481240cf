"""Final steps a study still owes once its search target is reached, and who is doing them.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studyd_studies") as batch:
        batch.add_column(sa.Column("final_step", sa.String(16), nullable=True))
        batch.add_column(sa.Column("final_step_worker", sa.Integer(), nullable=True))
    # Studies from before this revision: active ones owe what their spec asks for; a done study
    # without a test score was stranded (the reaper settled its last slot) and is scored now.
    studies = sa.table(
        "studyd_studies",
        sa.column("id", sa.Integer()),
        sa.column("state", sa.String()),
        sa.column("spec", sa.JSON()),
        sa.column("test_score", sa.Float()),
        sa.column("final_step", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(studies.c.id, studies.c.state, studies.c.spec).where(
            studies.c.state.in_(("queued", "running"))
            | ((studies.c.state == "done") & studies.c.test_score.is_(None))
        )
    )
    for study_id, state, spec in list(rows):
        spec = json.loads(spec) if isinstance(spec, str) else (spec or {})
        step = "replicates" if state != "done" and spec.get("repeats") else "score"
        bind.execute(sa.update(studies).where(studies.c.id == study_id).values(final_step=step))


def downgrade() -> None:
    with op.batch_alter_table("studyd_studies") as batch:
        batch.drop_column("final_step_worker")
        batch.drop_column("final_step")
