"""steps: partial indexes, no foreign key to runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:30:00.000000

A finished step row now sits in two indexes (its primary key and its unique key) instead
of five, and inserting a step no longer runs the foreign-key check query: together about
60% of what PostgreSQL spends on a step (see ``hub.db.models.StepRow``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACTIVE_STEP = "status IN ('queued', 'running', 'waiting', 'pending')"
PARTIAL = {
    "ix_steps_active": (["run_id"], ACTIVE_STEP),
    "ix_steps_items": (["run_id", "step_id", "status", "item_index"], "item_index IS NOT NULL"),
    "ix_steps_queued": (["submitted_at"], "status = 'queued'"),
    "ix_steps_waiting_due": (["due_at"], "status = 'waiting'"),
}


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_constraint("fk_steps_run_id_runs", type_="foreignkey")
        batch_op.drop_index("ix_steps_run_status")
        batch_op.drop_index("ix_steps_run_step")
        batch_op.drop_index("ix_steps_status_due")
        for name, (columns, where) in PARTIAL.items():
            batch_op.create_index(
                name,
                columns,
                unique=False,
                sqlite_where=sa.text(where),
                postgresql_where=sa.text(where),
            )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("steps", schema=None) as batch_op:
        for name in PARTIAL:
            batch_op.drop_index(name)
        batch_op.create_index("ix_steps_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "ix_steps_run_step", ["run_id", "step_id", "status", "item_index"], unique=False
        )
        batch_op.create_index("ix_steps_run_status", ["run_id", "status"], unique=False)
        batch_op.create_foreign_key("fk_steps_run_id_runs", "runs", ["run_id"], ["id"])
