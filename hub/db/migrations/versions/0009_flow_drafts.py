"""flow drafts: the flow builder's document being edited, per person and flow

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:30:00.000000

The builder keeps the document a person is editing on the server (it survives a reload and
a second device), with its YAML text, its undo and redo stacks of JSON Patches, the version
it started from, and the try-it data (pinned outputs, the trigger's sample) that never go
into the flow document.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "flow_drafts",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("flow_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_document", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("undo", sa.JSON(), nullable=False),
        sa.Column("redo", sa.JSON(), nullable=False),
        sa.Column("pins", sa.JSON(), nullable=False),
        sa.Column("sample", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("saved_checksum", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "flow_id", "user_id", name=op.f("pk_flow_drafts")),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("flow_drafts")
