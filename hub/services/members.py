"""Members of a workspace and their API tokens: roles changed by owners, the last owner
kept, tokens shown once and stored hashed; every change audited in its transaction."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.db import accounts, audit
from hub.db import errors as db_errors
from hub.db.models import now_us
from hub.security.accounts import TOKEN_SCOPES, hash_password, new_password
from hub.services.base import WorkspaceScope
from hub.services.errors import Conflict, Invalid, NotFound

MIN_PASSWORD = 12


class MembersService(WorkspaceScope):
    """Members, roles and API tokens of the workspace."""

    async def members(self) -> list[dict[str, Any]]:
        """Every member with their role."""
        return await self.hub.db.read(lambda c: accounts.members(c, self.workspace))

    async def put_member(
        self,
        email: str,
        role: str,
        name: str = "",
        *,
        password: str = "",
        new_account: bool = False,
    ) -> tuple[dict[str, Any], str | None]:
        """Add a member (creating the account) or change a role; return the user and, for a
        new account, its password (``password``, or a random one). The last owner cannot
        be demoted (:class:`Conflict`); with ``new_account`` an existing account is a
        :class:`Conflict` too."""
        self.require("owner")
        if password and len(password) < MIN_PASSWORD:
            raise Invalid(
                f"the password needs at least {MIN_PASSWORD} characters",
                [{"location": "password", "message": f"at least {MIN_PASSWORD} characters"}],
            )
        ws, actor = self.workspace, self.actor
        existing = await self.hub.db.read(lambda c: accounts.user_by_email(c, email))
        if existing is not None and new_account:
            raise Conflict(f"a user with the email {existing['email']!r} exists already")
        password_hash = ""
        if existing is None:  # hashing is slow: only for a new account
            password = password or new_password()
            password_hash = await asyncio.to_thread(hash_password, password)

        def write(conn: Any) -> tuple[dict[str, Any], bool]:
            accounts.ensure_workspace(conn, ws)
            user = accounts.user_by_email(conn, email)
            created = user is None
            if user is None:
                if not password_hash:
                    raise Conflict("the account changed meanwhile; try again")
                try:
                    user = accounts.create_user(conn, email, name=name, password_hash=password_hash)
                except db_errors.Conflict as exc:
                    raise Conflict(str(exc)) from exc
            previous = accounts.role_of(conn, ws, user["id"])
            if previous == "owner" and role != "owner" and accounts.count_owners(conn, ws) <= 1:
                raise Conflict("the last owner of a workspace cannot be demoted")
            accounts.set_membership(conn, ws, user["id"], role)
            if previous != role:
                action = "member.add" if previous is None else "member.role"
                details = {"role": role, "previous": previous}
                audit.record(conn, ws, actor, action, user["email"], details)
            return user, created

        user, created = await self.hub.db.write(write)
        return user, password if created else None

    async def remove_member(self, user_id: str) -> None:
        """Remove a member and revoke their tokens here (:class:`NotFound`; :class:`Conflict`
        for the last owner)."""
        self.require("owner")
        ws, actor = self.workspace, self.actor

        def write(conn: Any) -> None:
            role = accounts.role_of(conn, ws, user_id)
            if role is None:
                raise NotFound(f"no member {user_id!r}")
            if role == "owner" and accounts.count_owners(conn, ws) <= 1:
                raise Conflict("the last owner of a workspace cannot be removed")
            user = accounts.get_user(conn, user_id)
            accounts.remove_membership(conn, ws, user_id)
            target = user["email"] if user else user_id
            audit.record(conn, ws, actor, "member.remove", target, {"role": role})

        await self.hub.db.write(write)

    async def tokens(self, *, mine: bool = False) -> list[dict[str, Any]]:
        """The caller's API tokens here (an owner: everyone's, unless ``mine``), never the
        tokens."""
        only = None if self.role == "owner" and not mine else self.user_id
        return await self.hub.db.read(lambda c: accounts.list_tokens(c, self.workspace, only))

    async def create_token(
        self,
        name: str,
        *,
        email: str | None = None,
        expires_at: int | None = None,
        scope: str | None = None,
        flow_id: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A new token here: (the token, shown once; its row). It is the caller's, or, for
        an owner naming ``email``, that member's (:class:`NotFound` when not a member).

        Its limits (none by default): ``expires_at`` (epoch microseconds, in the future),
        ``scope`` (``read`` or ``runs``) and ``flow_id`` (the one flow it reaches); see
        :mod:`hub.api.scopes`. :class:`Invalid` for a past expiry or an unknown scope."""
        ws, actor = self.workspace, self.actor
        if email is not None:
            self.require("owner")
        issues = []
        if expires_at is not None and expires_at <= now_us():
            issues.append({"location": "expires_at", "message": "must be in the future"})
        if scope is not None and scope not in TOKEN_SCOPES:
            issues.append({"location": "scope", "message": f"one of {', '.join(TOKEN_SCOPES)}"})
        if issues:
            raise Invalid("the token's limits are invalid", issues)
        limits: dict[str, Any] = {"expires_at": expires_at, "scope": scope, "flow_id": flow_id}

        def write(conn: Any) -> tuple[str, dict[str, Any]]:
            user_id = self.user_id
            details: dict[str, Any] | None = None
            if email is not None:
                user = accounts.user_by_email(conn, email)
                if user is None:
                    raise NotFound(f"no user with the email {email!r}")
                if accounts.role_of(conn, ws, user["id"]) is None:
                    raise NotFound(f"{email} is not a member of workspace {ws!r}")
                user_id, details = user["id"], {"user": user["email"]}
            token, row = accounts.create_token(
                conn, ws, user_id, name, expires_at=expires_at, scope=scope, flow_id=flow_id
            )
            set_limits = {k: v for k, v in limits.items() if v is not None}
            if set_limits:
                details = {**(details or {}), **set_limits}
            audit.record(conn, ws, actor, "token.create", name, details)
            return token, row

        return await self.hub.db.write(write)

    async def delete_token(self, token_id: str, *, mine: bool = False) -> None:
        """Revoke one of the caller's tokens (an owner: anyone's, unless ``mine``), or
        :class:`NotFound`."""
        ws, actor = self.workspace, self.actor
        only = None if self.role == "owner" and not mine else self.user_id

        def write(conn: Any) -> bool:
            deleted = accounts.delete_token(conn, ws, token_id, only)
            if deleted:
                audit.record(conn, ws, actor, "token.delete", token_id)
            return deleted

        if not await self.hub.db.write(write):
            raise NotFound(f"no token {token_id!r}")
