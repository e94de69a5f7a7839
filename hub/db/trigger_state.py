"""Storage of the triggers' own state (``trigger_state``): a poll trigger's cursor, a
schedule's last tick; one JSON value per (workspace, flow, key).

Each function runs inside the caller's transaction: a cursor is saved, and a tick taken, in
the transaction that starts the runs they produced, so that a crash leaves neither an event
lost nor one started twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, select, update

from hub.db.models import now_us, trigger_state


def _where(workspace_id: str, flow_id: str, key: str) -> ColumnElement[bool]:
    return (
        (trigger_state.c.workspace_id == workspace_id)
        & (trigger_state.c.flow_id == flow_id)
        & (trigger_state.c.key == key)
    )


def load(conn: Connection, workspace_id: str, flow_id: str, key: str) -> Any:
    """The stored state ``key`` of a flow's trigger (None when there is none)."""
    return conn.execute(
        select(trigger_state.c.state).where(_where(workspace_id, flow_id, key))
    ).scalar()


def save(conn: Connection, workspace_id: str, flow_id: str, key: str, state: Any) -> None:
    """Store the state ``key`` of a flow's trigger, replacing what was there."""
    changed = conn.execute(
        update(trigger_state)
        .where(_where(workspace_id, flow_id, key))
        .values(state=state, updated_at=now_us())
    ).rowcount
    if not changed:
        _insert(conn, workspace_id, flow_id, key, state)


def swap(
    conn: Connection, workspace_id: str, flow_id: str, key: str, expected: Any, state: Any
) -> bool:
    """Replace the state ``key`` with ``state`` if it is ``expected`` now (None: there is
    none yet); False, changing nothing, if another process changed it first."""
    row = conn.execute(
        select(trigger_state.c.state).where(_where(workspace_id, flow_id, key))
    ).first()
    if row is None:
        _insert(conn, workspace_id, flow_id, key, state)
        return expected is None
    if row.state != expected:
        return False
    conn.execute(
        update(trigger_state)
        .where(_where(workspace_id, flow_id, key))
        .values(state=state, updated_at=now_us())
    )
    return True


def _insert(conn: Connection, workspace_id: str, flow_id: str, key: str, state: Any) -> None:
    conn.execute(
        trigger_state.insert().values(
            workspace_id=workspace_id,
            flow_id=flow_id,
            key=key,
            state=state,
            updated_at=now_us(),
        )
    )
