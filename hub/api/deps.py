"""Who is calling, in which workspace, with which role: the guards and dependencies.

Every workspace route lives under ``/api/w/{workspace}/...``. :func:`workspace_guard` (set
at the class level of each workspace Controller) resolves the workspace from the path (``-``
means the token's own workspace), checks the caller's membership and the role the route
asks for in its ``opt`` (``viewer`` unless it says ``editor`` or ``owner``). A workspace the
caller does not belong to answers 404, exactly like one that does not exist, and a token
only ever reaches its own workspace. The handlers then get a
:class:`~hub.services.workspace.WorkspaceHub` bound to that workspace and acting as the
caller: the one layer through which every query passes the workspace explicitly, and which
checks the role and writes the audit log again on every change. An API token's limits
(scope, flow) are checked here too (:mod:`hub.api.scopes`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from hub.api.errors import ApiError
from hub.api.scopes import capped_role, check_workspace_route
from hub.runtime import Hub
from hub.services import accounts
from hub.services.base import require_role
from hub.services.workspace import WorkspaceHub

VIEWER: dict[str, Any] = {"role": "viewer"}
EDITOR: dict[str, Any] = {"role": "editor"}
OWNER: dict[str, Any] = {"role": "owner"}
# OpenAPI security requirements of authenticated routes: a bearer token or the session.
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, through a session or an API token.

    A token belongs to one workspace and acts there with its user's role, narrowed by its
    limits (:mod:`hub.api.scopes`): a scope (``read``, ``runs``), one flow, an expiry.
    A session's caller carries the session's id (the digest of its secret).
    """

    user_id: str
    email: str
    name: str
    via: str  # "session" or "token"
    token_id: str | None = None
    token_workspace: str | None = None
    token_role: str | None = None
    token_scope: str | None = None
    token_flow: str | None = None
    token_expires: int | None = None
    session_id: str | None = None


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated caller (set by the authentication middleware)."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise ApiError(401, "unauthorized", "authentication required")
    return user


def hub_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Hub:
    """The hub the app serves."""
    hub: Hub = connection.app.state.hub
    return hub


def not_found_workspace(workspace: str) -> ApiError:
    """The one answer for a workspace that does not exist or is not the caller's."""
    return ApiError(404, "not_found", f"no workspace {workspace!r}")


async def workspace_guard(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Resolve the path's workspace, check membership (404) and the route's role (403)."""
    principal = principal_of(connection)
    hub = hub_of(connection)
    workspace = str(connection.path_params.get("workspace", ""))
    if workspace == "-":
        workspace = principal.token_workspace or hub.workspace
    if principal.via == "token":
        if workspace != principal.token_workspace:
            raise not_found_workspace(workspace)
        role = capped_role(principal, principal.token_role)
    else:
        role = await accounts.role_in(hub, workspace, principal.user_id)
    if role is None:
        raise not_found_workspace(workspace)
    require_role(role, str(route_handler.opt.get("role", "viewer")), workspace)  # else 403

    async def run_flow(run_id: str) -> Any:
        scoped = WorkspaceHub(hub, workspace, actor=principal.email, user_id=principal.user_id)
        return (await scoped.get_run(run_id, with_steps=False))["flow_id"]

    await check_workspace_route(connection, principal, route_handler.name, run_flow)  # 403
    connection.state["workspace"] = workspace
    connection.state["role"] = role


async def provide_ws(request: Request[Any, Any, Any]) -> WorkspaceHub:
    """The hub bound to the workspace the guard resolved, acting as the caller."""
    principal = principal_of(request)
    workspace = request.state.get("workspace")
    if workspace is None:  # a route without the guard: a programming error, never served
        raise ApiError(500, "internal", "workspace route without workspace_guard")
    return WorkspaceHub(
        hub_of(request),
        workspace,
        actor=principal.email,
        user_id=principal.user_id,
        role=request.state["role"],
    )


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The authenticated caller."""
    return principal_of(request)


WORKSPACE_DEPENDENCIES = {"ws": Provide(provide_ws)}
PRINCIPAL_DEPENDENCIES = {"principal": Provide(provide_principal)}
