"""Accounts as the faces need them before any workspace is chosen: who a token or a session
stands for, logging in, changing a password, one's workspaces, creating a workspace.

These functions take the hub's parts and the caller's identity; they hold no HTTP (the
session cookie, the login throttle and the 401 answers are the API's).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from hub.db import accounts, audit
from hub.db import errors as db_errors
from hub.db.models import now_us
from hub.security.accounts import hash_password, token_digest, verify_password
from hub.services.base import HubParts
from hub.services.errors import Conflict, Invalid

TOUCH_EVERY_US = 60 * 1_000_000  # last_used_at is written at most once a minute per token


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the password hash kept in a session (not the hash itself): a
    session whose fingerprint no longer matches ended with a password change."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


async def token_principal(hub: HubParts, token: str) -> dict[str, Any] | None:
    """Who an API token stands for (token id, workspace, user, role there), or None for an
    unknown or revoked one; its last use is recorded (at most once a minute)."""
    digest = token_digest(token)
    found = await hub.db.read(lambda c: accounts.token_principal(c, digest))
    if found is None:
        return None
    now = now_us()
    if (found["last_used_at"] or 0) < now - TOUCH_EVERY_US:
        token_id = found["token_id"]
        await hub.db.write(lambda c: accounts.touch_token(c, token_id, now))
    return found


async def session_user(hub: HubParts, user_id: str, fingerprint: Any) -> dict[str, Any] | None:
    """The user of a session, or None when the account is gone or its password changed."""
    user = await hub.db.read(lambda c: accounts.get_user(c, user_id))
    if user is None or fingerprint != password_fingerprint(user["password_hash"]):
        return None
    return user


async def login(hub: HubParts, email: str, password: str) -> dict[str, Any] | None:
    """The user whose email and password these are, or None (in about the same time
    whether or not the email is registered)."""
    user = await hub.db.read(lambda c: accounts.user_by_email(c, email))
    stored = user["password_hash"] if user else ""
    ok = await asyncio.to_thread(verify_password, stored, password)
    return user if user is not None and ok else None


async def change_password(hub: HubParts, user_id: str, current: str, new: str) -> str:
    """Replace a user's password after checking the current one (:class:`Invalid` when it
    is wrong); return the new hash (its fingerprint keeps the caller's session)."""
    user = await hub.db.read(lambda c: accounts.get_user(c, user_id))
    stored = user["password_hash"] if user else ""
    if not await asyncio.to_thread(verify_password, stored, current):
        raise Invalid(
            "the current password is wrong",
            [{"location": "current", "message": "does not match"}],
        )
    new_hash = await asyncio.to_thread(hash_password, new)
    await hub.db.write(lambda c: accounts.set_password_hash(c, user_id, new_hash))
    return new_hash


async def workspaces_of(hub: HubParts, user_id: str) -> list[dict[str, Any]]:
    """The workspaces a user belongs to, with their role, by id."""
    return await hub.db.read(lambda c: accounts.workspaces_of(c, user_id))


async def role_in(hub: HubParts, workspace: str, user_id: str) -> str | None:
    """The user's role in a workspace, or None when not a member."""
    return await hub.db.read(lambda c: accounts.role_of(c, workspace, user_id))


async def create_workspace(
    hub: HubParts, workspace_id: str, name: str, *, user_id: str, actor: str
) -> None:
    """Create a workspace whose first owner is the user (:class:`Conflict` when the id is
    taken); audited in its transaction."""

    def write(conn: Any) -> None:
        try:
            accounts.create_workspace(conn, workspace_id, name, user_id)
        except db_errors.Conflict as exc:
            raise Conflict(str(exc)) from exc
        audit.record(conn, workspace_id, actor, "workspace.create", workspace_id)

    await hub.db.write(write)
