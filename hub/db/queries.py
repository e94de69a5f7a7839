"""Storage functions the API needs beyond :mod:`hub.db.store`, each filtered by workspace.

Like the store, each is a synchronous function of a SQLAlchemy ``Connection`` run in one
transaction by :class:`hub.db.database.Database`. Handlers never call these directly: they
go through :class:`hub.services.workspace.WorkspaceHub`, the one layer that passes the workspace.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select, update

from hub.db.accounts import Conflict
from hub.db.models import connections, flow_versions, flows, now_us, runs
from hub.db.store import RUN_COLUMNS, get_connection, insert_connection

# -- flows ----------------------------------------------------------------------------------


def search_flows(
    conn: Connection,
    workspace_id: str,
    *,
    q: str | None = None,
    enabled: bool | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Flows of a workspace by id; ``q`` matches the id or name (case-insensitive)."""
    stmt = select(flows).where(flows.c.workspace_id == workspace_id)
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        stmt = stmt.where(
            or_(
                flows.c.id.like(pattern, escape="\\"),
                flows.c.name.ilike(pattern, escape="\\"),
            )
        )
    if enabled is not None:
        stmt = stmt.where(flows.c.enabled.is_(enabled))
    if after:
        stmt = stmt.where(flows.c.id > after)
    stmt = stmt.order_by(flows.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def set_flow_enabled(conn: Connection, workspace_id: str, flow_id: str, enabled: bool) -> bool:
    """Enable or disable a flow's triggers; False when there is no such flow."""
    changed = conn.execute(
        update(flows)
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(enabled=enabled, updated_at=now_us())
    ).rowcount
    return bool(changed)


def list_versions(conn: Connection, workspace_id: str, flow_id: str) -> list[dict[str, Any]]:
    """Every version of a flow, newest first, without the documents."""
    rows = conn.execute(
        select(
            flow_versions.c.version,
            flow_versions.c.author,
            flow_versions.c.message,
            flow_versions.c.checksum,
            flow_versions.c.created_at,
        )
        .where(flow_versions.c.workspace_id == workspace_id, flow_versions.c.flow_id == flow_id)
        .order_by(flow_versions.c.version.desc())
    )
    return [dict(r._mapping) for r in rows]


def get_version(
    conn: Connection, workspace_id: str, flow_id: str, version: int
) -> dict[str, Any] | None:
    """One version with its document and source text."""
    row = conn.execute(
        select(flow_versions).where(
            flow_versions.c.workspace_id == workspace_id,
            flow_versions.c.flow_id == flow_id,
            flow_versions.c.version == version,
        )
    ).first()
    return None if row is None else dict(row._mapping)


# -- runs -----------------------------------------------------------------------------------


def runs_page(
    conn: Connection,
    workspace_id: str,
    *,
    flow_id: str | None = None,
    status: str | None = None,
    since: int | None = None,
    until: int | None = None,
    cursor: tuple[int, str] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Runs newest first, keyset-paginated on (created_at, id); times in epoch microseconds.

    ``since`` is inclusive and ``until`` exclusive; ``cursor`` is the (created_at, id) of the
    last run of the previous page.
    """
    stmt = select(*RUN_COLUMNS).where(runs.c.workspace_id == workspace_id)
    if flow_id:
        stmt = stmt.where(runs.c.flow_id == flow_id)
    if status:
        stmt = stmt.where(runs.c.status == status)
    if since is not None:
        stmt = stmt.where(runs.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(runs.c.created_at < until)
    if cursor is not None:
        created, run_id = cursor
        stmt = stmt.where(
            or_(runs.c.created_at < created, (runs.c.created_at == created) & (runs.c.id < run_id))
        )
    stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


# -- connections ----------------------------------------------------------------------------


def list_connections(conn: Connection, workspace_id: str) -> list[dict[str, Any]]:
    """Every connection of a workspace by name (secrets still encrypted)."""
    rows = conn.execute(
        select(connections)
        .where(connections.c.workspace_id == workspace_id)
        .order_by(connections.c.name)
    )
    return [dict(r._mapping) for r in rows]


def create_connection(
    conn: Connection,
    workspace_id: str,
    name: str,
    connector: str,
    secrets_token: str,
    settings: dict[str, Any],
) -> None:
    """Create a connection; :class:`Conflict` when the name is taken in the workspace."""
    if get_connection(conn, workspace_id, name) is not None:
        raise Conflict(f"a connection named {name!r} exists already")
    insert_connection(conn, workspace_id, name, connector, secrets_token, settings)


def update_connection(
    conn: Connection,
    workspace_id: str,
    name: str,
    *,
    secrets_token: str,
    settings: dict[str, Any],
    oauth_tokens: str | None = None,
    expect_oauth: str | None = None,
) -> bool:
    """Replace a connection's secrets and settings (and OAuth tokens when given).

    With ``expect_oauth``, only if the stored OAuth tokens are still those (a compare-and-set,
    so two processes refreshing at once cannot overwrite a newer token). False when nothing
    was updated.
    """
    values: dict[str, Any] = {
        "secrets": secrets_token,
        "settings": settings,
        "updated_at": now_us(),
    }
    if oauth_tokens is not None:
        values["oauth_tokens"] = oauth_tokens
    stmt = update(connections).where(
        connections.c.workspace_id == workspace_id, connections.c.name == name
    )
    if expect_oauth is not None:
        stmt = stmt.where(connections.c.oauth_tokens == expect_oauth)
    return bool(conn.execute(stmt.values(**values)).rowcount)


def delete_connection(conn: Connection, workspace_id: str, name: str) -> bool:
    """Delete a connection; False when there is none."""
    return bool(
        conn.execute(
            connections.delete().where(
                connections.c.workspace_id == workspace_id, connections.c.name == name
            )
        ).rowcount
    )


def store_rotated(
    conn: Connection, workspace_id: str, name: str, secrets_token: str, oauth_tokens: str
) -> None:
    """Store a connection's values re-encrypted with the newest key (same plaintext)."""
    conn.execute(
        update(connections)
        .where(connections.c.workspace_id == workspace_id, connections.c.name == name)
        .values(secrets=secrets_token, oauth_tokens=oauth_tokens)
    )
