"""flow tombstones: a deleted flow's id and last version number

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:40:00.000000

Flows can be deleted (with their versions and runs). A flow created again with the same id
numbers its versions on from the deleted one's last, so that a (workspace, flow, version)
never names two documents: the engine and the webhook route cache compiled versions by it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "flow_tombstones",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("flow_id", sa.String(length=100), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "flow_id", name=op.f("pk_flow_tombstones")),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("flow_tombstones")
