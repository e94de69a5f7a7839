"""runs: the status index goes on by workspace, time and flow

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:15:00.000000

``ix_runs_status`` (status) becomes (status, workspace, created time, flow): the home page
finds a workspace's failed and running runs, and counts failures per flow, from the index
alone (hub/db/overview.py), without reading the row of every failed run the hub ever kept;
PostgreSQL also seeks to a workspace's window with it. Lookups by status only (the metrics'
counts, the sweeper) use its first column as before.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status")
        batch_op.create_index(
            "ix_runs_status", ["status", "workspace_id", "created_at", "flow_id"], unique=False
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status")
        batch_op.create_index("ix_runs_status", ["status"], unique=False)
