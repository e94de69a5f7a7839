"""Accounts: users, workspaces and memberships, API tokens, and the first owner.

Hashing passwords and making tokens need no database: :mod:`hub.security.accounts`. Each
function here is a synchronous function of a SQLAlchemy ``Connection``, run in one
transaction by :class:`hub.db.database.Database`; the faces reach them through the
services (:mod:`hub.services`).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.db.audit import record
from hub.db.errors import Conflict
from hub.db.models import ApiToken, LoginSession, Membership, User, now_us, workspaces
from hub.security.accounts import ROLE_RANK, ROLES, new_token, normalize_email, token_digest

users = cast(Table, User.__table__)
memberships = cast(Table, Membership.__table__)
api_tokens = cast(Table, ApiToken.__table__)
sessions = cast(Table, LoginSession.__table__)


def new_id() -> str:
    """A random 32-hex-digit id."""
    return uuid.uuid4().hex


# -- users ----------------------------------------------------------------------------------


def count_users(conn: Connection) -> int:
    """How many users exist (0 on a fresh hub)."""
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def create_user(
    conn: Connection, email: str, *, name: str = "", password_hash: str = ""
) -> dict[str, Any]:
    """Create a user; :class:`Conflict` when the email is taken."""
    email = normalize_email(email)
    if user_by_email(conn, email) is not None:
        raise Conflict(f"a user with the email {email!r} exists already")
    row = {
        "id": new_id(),
        "email": email,
        "name": name,
        "password_hash": password_hash,
        "created_at": now_us(),
    }
    conn.execute(users.insert().values(**row))
    return row


def get_user(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """A user's row (with the password hash: never hand it to a face as is)."""
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return None if row is None else dict(row._mapping)


def user_by_email(conn: Connection, email: str) -> dict[str, Any] | None:
    """A user by email (case-insensitive)."""
    row = conn.execute(select(users).where(users.c.email == normalize_email(email))).first()
    return None if row is None else dict(row._mapping)


def set_password_hash(conn: Connection, user_id: str, password_hash: str) -> None:
    """Replace a user's password hash (the service also ends their other sessions)."""
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


# -- workspaces and memberships -------------------------------------------------------------


def ensure_workspace(conn: Connection, workspace_id: str, name: str = "") -> None:
    """Create the workspace if it does not exist.

    Several processes may start at once on a new database: the insert ignores a conflict
    instead of checking first (a check-then-insert would race).
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(workspaces)
        .values(id=workspace_id, name=name or workspace_id, created_at=now_us())
        .on_conflict_do_nothing()
    )


def get_workspace(conn: Connection, workspace_id: str) -> dict[str, Any] | None:
    """A workspace's row."""
    row = conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
    return None if row is None else dict(row._mapping)


def create_workspace(conn: Connection, workspace_id: str, name: str, owner_id: str) -> None:
    """Create a workspace with its first owner; :class:`Conflict` when the id is taken."""
    if get_workspace(conn, workspace_id) is not None:
        raise Conflict(f"a workspace {workspace_id!r} exists already")
    conn.execute(
        workspaces.insert().values(id=workspace_id, name=name or workspace_id, created_at=now_us())
    )
    set_membership(conn, workspace_id, owner_id, "owner")


def role_of(conn: Connection, workspace_id: str, user_id: str) -> str | None:
    """The user's role in the workspace, or None when not a member."""
    return conn.execute(
        select(memberships.c.role).where(
            memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id
        )
    ).scalar()


def set_membership(conn: Connection, workspace_id: str, user_id: str, role: str) -> str | None:
    """Give a user a role in a workspace; return the role they had (None: new member)."""
    if role not in ROLE_RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    previous = role_of(conn, workspace_id, user_id)
    if previous is None:
        conn.execute(
            memberships.insert().values(workspace_id=workspace_id, user_id=user_id, role=role)
        )
    elif previous != role:
        conn.execute(
            update(memberships)
            .where(memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id)
            .values(role=role)
        )
    return previous


def remove_membership(conn: Connection, workspace_id: str, user_id: str) -> bool:
    """Remove a member and revoke their tokens in that workspace; False if not a member."""
    conn.execute(
        delete(api_tokens).where(
            api_tokens.c.workspace_id == workspace_id, api_tokens.c.user_id == user_id
        )
    )
    removed = conn.execute(
        delete(memberships).where(
            memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id
        )
    ).rowcount
    return bool(removed)


def count_owners(conn: Connection, workspace_id: str) -> int:
    """How many owners a workspace has (the last one cannot leave or be demoted)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(memberships)
            .where(memberships.c.workspace_id == workspace_id, memberships.c.role == "owner")
        ).scalar_one()
    )


def members(conn: Connection, workspace_id: str) -> list[dict[str, Any]]:
    """The members of a workspace: user id, email, name and role, by email."""
    rows = conn.execute(
        select(users.c.id, users.c.email, users.c.name, memberships.c.role)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.workspace_id == workspace_id)
        .order_by(users.c.email)
    )
    return [dict(r._mapping) for r in rows]


def workspaces_of(conn: Connection, user_id: str) -> list[dict[str, Any]]:
    """The workspaces a user belongs to, with their role, by id."""
    rows = conn.execute(
        select(workspaces.c.id, workspaces.c.name, memberships.c.role)
        .join(memberships, memberships.c.workspace_id == workspaces.c.id)
        .where(memberships.c.user_id == user_id)
        .order_by(workspaces.c.id)
    )
    return [dict(r._mapping) for r in rows]


# -- API tokens -----------------------------------------------------------------------------


def create_token(
    conn: Connection,
    workspace_id: str,
    user_id: str,
    name: str,
    *,
    expires_at: int | None = None,
    scope: str | None = None,
    flow_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create a token for a member; return the token (its only appearance) and its row.

    ``expires_at`` (epoch microseconds), ``scope`` and ``flow_id`` limit it (None: no limit).
    """
    token = new_token()
    row = {
        "id": new_id(),
        "workspace_id": workspace_id,
        "user_id": user_id,
        "name": name,
        "token_hash": token_digest(token),
        "created_at": now_us(),
        "last_used_at": None,
        "expires_at": expires_at,
        "scope": scope,
        "flow_id": flow_id,
    }
    conn.execute(api_tokens.insert().values(**row))
    return token, row


def token_principal(conn: Connection, digest: str) -> dict[str, Any] | None:
    """Who a token digest stands for: its id, workspace, user and the user's role there.

    A token whose user is no longer a member of its workspace stands for no one.
    """
    row = conn.execute(
        select(
            api_tokens.c.id.label("token_id"),
            api_tokens.c.workspace_id,
            api_tokens.c.last_used_at,
            api_tokens.c.expires_at,
            api_tokens.c.scope,
            api_tokens.c.flow_id,
            users.c.id.label("user_id"),
            users.c.email,
            users.c.name,
            memberships.c.role,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .join(
            memberships,
            and_(
                memberships.c.user_id == api_tokens.c.user_id,
                memberships.c.workspace_id == api_tokens.c.workspace_id,
            ),
        )
        .where(api_tokens.c.token_hash == digest)
    ).first()
    return None if row is None else dict(row._mapping)


def touch_token(conn: Connection, token_id: str, when: int) -> None:
    """Record when a token was last used."""
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=when))


def list_tokens(
    conn: Connection, workspace_id: str, user_id: str | None = None
) -> list[dict[str, Any]]:
    """Tokens of a workspace (of one user when given), newest first; never their digests."""
    stmt = (
        select(
            api_tokens.c.id,
            api_tokens.c.name,
            api_tokens.c.user_id,
            users.c.email,
            api_tokens.c.created_at,
            api_tokens.c.last_used_at,
            api_tokens.c.expires_at,
            api_tokens.c.scope,
            api_tokens.c.flow_id,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.workspace_id == workspace_id)
        .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
    )
    if user_id is not None:
        stmt = stmt.where(api_tokens.c.user_id == user_id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def delete_token(
    conn: Connection, workspace_id: str, token_id: str, user_id: str | None = None
) -> bool:
    """Revoke a token (only one of ``user_id`` when given); False when there is none."""
    stmt = delete(api_tokens).where(
        api_tokens.c.workspace_id == workspace_id, api_tokens.c.id == token_id
    )
    if user_id is not None:
        stmt = stmt.where(api_tokens.c.user_id == user_id)
    return bool(conn.execute(stmt).rowcount)


# -- browser sessions -----------------------------------------------------------------------


def create_session(conn: Connection, digest: str, user_id: str, now: int, expires_at: int) -> None:
    """Record a new session by the digest of its secret; prune sessions past their end."""
    conn.execute(delete(sessions).where(sessions.c.expires_at < now))
    conn.execute(
        sessions.insert().values(
            id=digest,
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            revoked_at=None,
        )
    )


def session_user(conn: Connection, digest: str) -> dict[str, Any] | None:
    """A session's times (``session_id``, ``created_at``, ``last_seen_at``, ``expires_at``,
    ``revoked_at``) with its user (``id``, ``email``, ``name``), or None."""
    row = conn.execute(
        select(
            sessions.c.id.label("session_id"),
            sessions.c.created_at,
            sessions.c.last_seen_at,
            sessions.c.expires_at,
            sessions.c.revoked_at,
            users.c.id,
            users.c.email,
            users.c.name,
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id == digest)
    ).first()
    return None if row is None else dict(row._mapping)


def touch_session(conn: Connection, digest: str, when: int) -> None:
    """Record when a session was last used."""
    conn.execute(update(sessions).where(sessions.c.id == digest).values(last_seen_at=when))


def revoke_session(conn: Connection, digest: str, when: int) -> bool:
    """End one session (logout); False when it was unknown or ended already."""
    return bool(
        conn.execute(
            update(sessions)
            .where(sessions.c.id == digest, sessions.c.revoked_at.is_(None))
            .values(revoked_at=when)
        ).rowcount
    )


def revoke_user_sessions(
    conn: Connection, user_id: str, when: int, *, keep: str | None = None
) -> int:
    """End every session of a user but ``keep`` (a digest); return how many ended."""
    stmt = (
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=when)
    )
    if keep is not None:
        stmt = stmt.where(sessions.c.id != keep)
    return int(conn.execute(stmt).rowcount)


# -- the first start ------------------------------------------------------------------------


def bootstrap_owner(
    conn: Connection, workspace_id: str, email: str, password_hash: str
) -> dict[str, Any] | None:
    """On a hub without users, create the first one as owner of ``workspace_id``.

    Returns the new user's row, or None when users exist already (nothing is done).
    """
    if count_users(conn):
        return None
    user = create_user(conn, email, name="Owner", password_hash=password_hash)
    set_membership(conn, workspace_id, user["id"], "owner")
    record(conn, workspace_id, "hub", "member.add", email, {"role": "owner", "bootstrap": True})
    return user
