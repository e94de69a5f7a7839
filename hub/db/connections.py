"""Connections: their rows, with secrets and OAuth2 tokens stored encrypted.

Encryption happens above (the services hold the key); these functions store and read the
tokens as they are. Each is a synchronous function of a SQLAlchemy ``Connection``, run in a
transaction by :class:`hub.db.database.Database`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select, update

from hub.db.errors import Conflict
from hub.db.models import connections, now_us


def get_connection(conn: Connection, workspace_id: str, name: str) -> dict[str, Any] | None:
    """A stored connection (secrets still encrypted)."""
    row = conn.execute(
        select(connections).where(
            connections.c.workspace_id == workspace_id, connections.c.name == name
        )
    ).first()
    return None if row is None else dict(row._mapping)


def connection_names(conn: Connection, workspace_id: str) -> dict[str, str]:
    """Connection name -> connector name, for flow validation."""
    rows = conn.execute(
        select(connections.c.name, connections.c.connector).where(
            connections.c.workspace_id == workspace_id
        )
    )
    return {r.name: r.connector for r in rows}


def insert_connection(
    conn: Connection,
    workspace_id: str,
    name: str,
    connector: str,
    secrets_token: str,
    settings: dict[str, Any],
) -> None:
    """Insert a new connection row (the caller knows the name is free)."""
    now = now_us()
    conn.execute(
        connections.insert().values(
            workspace_id=workspace_id,
            name=name,
            connector=connector,
            secrets=secrets_token,
            settings=settings,
            oauth_tokens="",
            created_at=now,
            updated_at=now,
        )
    )


def put_connection(
    conn: Connection,
    workspace_id: str,
    name: str,
    connector: str,
    secrets_token: str,
    settings: dict[str, Any],
) -> bool:
    """Create or replace a connection; True when it was created."""
    now = now_us()
    existing = get_connection(conn, workspace_id, name)
    if existing is None:
        insert_connection(conn, workspace_id, name, connector, secrets_token, settings)
        return True
    conn.execute(
        update(connections)
        .where(connections.c.workspace_id == workspace_id, connections.c.name == name)
        .values(connector=connector, secrets=secrets_token, settings=settings, updated_at=now)
    )
    return False


def encrypted_connections(conn: Connection, limit: int | None = None) -> list[dict[str, Any]]:
    """Connections holding encrypted values, in every workspace, newest change first.

    For the start-up key check, key rotation and the OAuth2 refresher (not for a face).
    """
    stmt = (
        select(
            connections.c.workspace_id,
            connections.c.name,
            connections.c.connector,
            connections.c.secrets,
            connections.c.settings,
            connections.c.oauth_tokens,
        )
        .where(or_(connections.c.secrets != "", connections.c.oauth_tokens != ""))
        .order_by(connections.c.updated_at.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


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
