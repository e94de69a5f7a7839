"""runs: trial runs (the flow builder's "try it"), kept apart; their documents and pins

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 11:20:00.000000

``runs.trial`` marks a run of a draft that need not be saved (flow version 0: no version
has that number). The flow a trial runs, its pins and the step it stops after are in
``trial_documents``, one row per trial run: the engine compiles a trial's flow from there,
never from ``flow_versions``. The runs lists, the flows list's counts, the home page and
the metrics leave trials out: ``trial`` goes last into the three indexes those read, so
that they still read the index alone (no row is read to be skipped).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_runs_list": ["workspace_id", "flow_id", "created_at", "id", "status"],
    "ix_runs_workspace_created": ["workspace_id", "created_at", "id"],
    "ix_runs_status": ["status", "workspace_id", "created_at", "flow_id"],
}


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trial", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name, columns in _INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [*columns, "trial"], unique=False)
    op.create_table(
        "trial_documents",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("pins", sa.JSON(), nullable=False),
        sa.Column("stop_after", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_trial_documents")),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("trial_documents")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        for name, columns in _INDEXES.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("trial")
