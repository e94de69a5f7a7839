"""The flow builder's drafts: one row per workspace, flow and person (:class:`FlowDraft`).

Plain reads and writes; what an edit does (JSON Patches, undo and redo) is the service's
(:mod:`hub.services.drafts`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hub.db.models import flow_drafts, now_us

_KEY = ("workspace_id", "flow_id", "user_id")


def _where(workspace_id: str, flow_id: str, user_id: str) -> Any:
    return (
        (flow_drafts.c.workspace_id == workspace_id)
        & (flow_drafts.c.flow_id == flow_id)
        & (flow_drafts.c.user_id == user_id)
    )


def get_draft(
    conn: Connection, workspace_id: str, flow_id: str, user_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    """A person's draft of a flow as a dict of its columns, or None (``for_update`` locks
    the row on PostgreSQL, so that two edits of one draft take turns)."""
    query = select(flow_drafts).where(_where(workspace_id, flow_id, user_id))
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None


def put_draft(conn: Connection, values: dict[str, Any]) -> None:
    """Write a draft (insert, or update the row of its key); ``updated_at`` is set here."""
    now = now_us()
    key = {k: values[k] for k in _KEY}
    rest = {k: v for k, v in values.items() if k not in _KEY and k != "created_at"}
    rest["updated_at"] = now
    done = conn.execute(update(flow_drafts).where(_where(**key)).values(**rest))
    if not done.rowcount:
        conn.execute(insert(flow_drafts).values(**key, **rest, created_at=now))


def delete_draft(conn: Connection, workspace_id: str, flow_id: str, user_id: str) -> bool:
    """Remove a draft; False when there was none."""
    done = conn.execute(delete(flow_drafts).where(_where(workspace_id, flow_id, user_id)))
    return bool(done.rowcount)
