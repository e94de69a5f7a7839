"""Accounts as the faces need them before any workspace is chosen: who a token or a session
stands for, logging in, browser sessions, changing a password, one's workspaces, creating a
workspace.

These functions take the hub's parts and the caller's identity; they hold no HTTP (the
session cookie, the login throttle and the 401 answers are the API's).

A browser session is a row of the ``sessions`` table found by the digest of the secret its
cookie carries: it ends when revoked (logout, a password change ends the user's other
sessions), after ``HUB_SESSION_IDLE_MINUTES`` unused and ``HUB_SESSION_MAX_HOURS`` after
the login. Its last use is written at most once a minute (a tenth of the idle time when
that is shorter), so a busy session costs one read per request, not a write.
"""

from __future__ import annotations

from typing import Any

from hub.db import accounts, audit
from hub.db import errors as db_errors
from hub.db.models import now_us
from hub.security.accounts import (
    HashGate,
    hash_password,
    new_session_secret,
    token_digest,
    verify_password,
)
from hub.services.base import HubParts
from hub.services.errors import Conflict, Invalid

TOUCH_EVERY_US = 60 * 1_000_000  # last_used_at is written at most once a minute per token


async def token_principal(hub: HubParts, token: str) -> dict[str, Any] | None:
    """Who an API token stands for (token id, workspace, user, role there, and its limits:
    ``expires_at``, ``scope``, ``flow_id``), or None for an unknown or revoked one; its
    last use is recorded (at most once a minute). An expired token is returned as it is
    (with ``expired`` true) so that the face can say why it is refused."""
    digest = token_digest(token)
    found = await hub.db.read(lambda c: accounts.token_principal(c, digest))
    if found is None:
        return None
    now = now_us()
    found["expired"] = found["expires_at"] is not None and found["expires_at"] <= now
    if not found["expired"] and (found["last_used_at"] or 0) < now - TOUCH_EVERY_US:
        token_id = found["token_id"]
        await hub.db.write(lambda c: accounts.touch_token(c, token_id, now))
    return found


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


async def start_session(hub: HubParts, user_id: str) -> str:
    """A new browser session for a user: return its secret (for the cookie; the table
    keeps only its digest)."""
    secret = new_session_secret()
    digest, now = token_digest(secret), now_us()
    expires = now + _us(hub.settings.session_max_hours * 3600)
    await hub.db.write(lambda c: accounts.create_session(c, digest, user_id, now, expires))
    return secret


async def session_user(hub: HubParts, secret: str) -> dict[str, Any] | None:
    """The user (``id``, ``email``, ``name``, and ``session_id``: the digest) of a live
    session, or None when it is unknown, revoked, idle too long or past its lifetime."""
    digest = token_digest(secret)
    row = await hub.db.read(lambda c: accounts.session_user(c, digest))
    if row is None or row["revoked_at"] is not None:
        return None
    settings, now = hub.settings, now_us()
    idle = _us(settings.session_idle_minutes * 60)
    end = min(row["expires_at"], row["created_at"] + _us(settings.session_max_hours * 3600))
    if now >= end or now >= row["last_seen_at"] + idle:
        return None
    if row["last_seen_at"] < now - min(TOUCH_EVERY_US, idle // 10):
        await hub.db.write(lambda c: accounts.touch_session(c, digest, now))
    return row


async def end_session(hub: HubParts, secret: str) -> None:
    """Revoke a session (logout): its cookie no longer works anywhere, even copied."""
    digest, now = token_digest(secret), now_us()
    await hub.db.write(lambda c: accounts.revoke_session(c, digest, now))


async def login(hub: HubParts, email: str, password: str, gate: HashGate) -> dict[str, Any] | None:
    """The user whose email and password these are, or None (in about the same time
    whether or not the email is registered: a missing user's password is checked against
    a fixed dummy hash). The check runs in ``gate`` (:class:`HashesBusy` when it is full)."""
    user = await hub.db.read(lambda c: accounts.user_by_email(c, email))
    stored = user["password_hash"] if user else ""
    ok = await gate.run(verify_password, stored, password)
    return user if user is not None and ok else None


async def change_password(
    hub: HubParts,
    user_id: str,
    current: str,
    new: str,
    gate: HashGate,
    *,
    keep_session: str | None = None,
) -> None:
    """Replace a user's password after checking the current one (:class:`Invalid` when it
    is wrong) and end every session of the user but ``keep_session`` (the caller's
    session id, a digest), in one transaction. Both argon2 steps run in ``gate``."""
    user = await hub.db.read(lambda c: accounts.get_user(c, user_id))
    stored = user["password_hash"] if user else ""
    if not await gate.run(verify_password, stored, current):
        raise Invalid(
            "the current password is wrong",
            [{"location": "current", "message": "does not match"}],
        )
    new_hash = await gate.run(hash_password, new)

    def write(conn: Any) -> None:
        accounts.set_password_hash(conn, user_id, new_hash)
        accounts.revoke_user_sessions(conn, user_id, now_us(), keep=keep_session)

    await hub.db.write(write)


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
