"""Workspaces, members and API tokens."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from hub.api.deps import (
    OWNER,
    PRINCIPAL_DEPENDENCIES,
    SECURITY,
    WORKSPACE_DEPENDENCIES,
    Principal,
    hub_of,
    workspace_guard,
)
from hub.api.errors import ApiError, error_responses
from hub.api.models import (
    Member,
    MemberPut,
    MemberSaved,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    WorkspaceCreate,
    WorkspaceInfo,
    ts,
)
from hub.services import accounts
from hub.services.workspace import WorkspaceHub


class WorkspacesController(Controller):
    """The caller's workspaces; creating one makes the caller its owner."""

    path = "/api/workspaces"
    tags = ["workspaces"]
    security = SECURITY
    dependencies = PRINCIPAL_DEPENDENCIES

    @get(
        "/", name="workspaces_list", operation_id="workspaces_list", responses=error_responses(401)
    )
    async def list_workspaces(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> list[WorkspaceInfo]:
        """Workspaces the caller belongs to (a token: only its own)."""
        rows = await accounts.workspaces_of(hub_of(request), principal.user_id)
        if principal.via == "token":
            rows = [r for r in rows if r["id"] == principal.token_workspace]
        return [WorkspaceInfo(id=r["id"], name=r["name"], role=r["role"]) for r in rows]

    @post(
        "/",
        name="workspaces_create",
        operation_id="workspaces_create",
        responses=error_responses(400, 401, 403, 409),
    )
    async def create_workspace(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        data: JSONBody[WorkspaceCreate],
    ) -> WorkspaceInfo:
        """Create a workspace (people with a session only: a token is bound to its own)."""
        if principal.via == "token":
            raise ApiError(403, "forbidden", "an API token cannot create workspaces")
        name = data.name or data.id
        await accounts.create_workspace(
            hub_of(request), data.id, name, user_id=principal.user_id, actor=principal.email
        )
        return WorkspaceInfo(id=data.id, name=name, role="owner")


class MembersController(Controller):
    """Members of a workspace and their roles (owners change them)."""

    path = "/api/w/{workspace:str}/members"
    tags = ["members"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get("/", name="members_list", operation_id="members_list", responses=error_responses(401, 404))
    async def list_members(self, ws: NamedDependency[WorkspaceHub]) -> list[Member]:
        """Every member with their role."""
        return [
            Member(user_id=r["id"], email=r["email"], name=r["name"], role=r["role"])
            for r in await ws.members()
        ]

    @put(
        "/",
        name="members_put",
        operation_id="members_put",
        opt=OWNER,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def put_member(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[MemberPut]
    ) -> MemberSaved:
        """Add a member by email, or change a member's role.

        A person without an account gets one with a random password, shown once here.
        The last owner cannot be demoted.
        """
        user, password = await ws.put_member(data.email, data.role, data.name)
        member = Member(user_id=user["id"], email=user["email"], name=user["name"], role=data.role)
        return MemberSaved(member=member, created_account=password is not None, password=password)

    @delete(
        "/{user_id:str}",
        name="members_delete",
        operation_id="members_delete",
        opt=OWNER,
        responses=error_responses(401, 403, 404, 409),
    )
    async def remove_member(
        self, ws: NamedDependency[WorkspaceHub], user_id: FromPath[str]
    ) -> None:
        """Remove a member (their tokens in this workspace are revoked)."""
        await ws.remove_member(user_id)


class TokensController(Controller):
    """API tokens of the caller in a workspace (owners see and revoke everyone's)."""

    path = "/api/w/{workspace:str}/tokens"
    tags = ["tokens"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get("/", name="tokens_list", operation_id="tokens_list", responses=error_responses(401, 404))
    async def list_tokens(self, ws: NamedDependency[WorkspaceHub]) -> list[TokenInfo]:
        """The caller's tokens (an owner: every member's); never the tokens themselves."""
        rows = await ws.tokens()
        return [
            TokenInfo(
                id=r["id"],
                name=r["name"],
                user_id=r["user_id"],
                email=r["email"],
                created_at=ts(r["created_at"]),  # type: ignore[arg-type]
                last_used_at=ts(r["last_used_at"]),
                expires_at=ts(r["expires_at"]),
                scope=r["scope"],
                flow_id=r["flow_id"],
            )
            for r in rows
        ]

    @post(
        "/",
        name="tokens_create",
        operation_id="tokens_create",
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def create_token(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[TokenCreate]
    ) -> TokenCreated:
        """Create a token for the caller in this workspace: shown once, stored hashed.

        It acts here with the caller's role (a viewer's token can only read), narrowed by
        its limits: an expiry (401 after it), a scope, one flow (403 outside them). A
        token with limits cannot create tokens.
        """
        expires = None
        if data.expires_at is not None:
            expires = int(data.expires_at.timestamp() * 1_000_000)
        token, row = await ws.create_token(
            data.name, expires_at=expires, scope=data.scope, flow_id=data.flow_id
        )
        return TokenCreated(
            id=row["id"],
            name=row["name"],
            token=token,
            expires_at=ts(row["expires_at"]),
            scope=row["scope"],
            flow_id=row["flow_id"],
        )

    @delete(
        "/{token_id:str}",
        name="tokens_delete",
        operation_id="tokens_delete",
        responses=error_responses(401, 403, 404),
    )
    async def delete_token(
        self, ws: NamedDependency[WorkspaceHub], token_id: FromPath[str]
    ) -> None:
        """Revoke a token (one's own; an owner: anyone's)."""
        await ws.delete_token(token_id)
