"""Connections: create, update, test, delete; secret fields are write-only; OAuth2."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect

from hub.api.deps import (
    EDITOR,
    PRINCIPAL_DEPENDENCIES,
    SECURITY,
    WORKSPACE_DEPENDENCIES,
    Principal,
    hub_of,
    workspace_guard,
)
from hub.api.errors import ApiError, error_responses
from hub.api.models import (
    ConnectionCreate,
    ConnectionInfo,
    ConnectionTested,
    ConnectionUpdate,
    OAuthStatus,
    ts,
)
from hub.services import links, oauth2
from hub.services.connections import secret_names
from hub.services.workspace import WorkspaceHub

NamePath = Annotated[str, PathParameter(max_length=100)]


def connection_info(ws: NamedDependency[WorkspaceHub], row: dict[str, Any]) -> ConnectionInfo:
    """A connection as the API shows it: settings without any secret field, the names of
    the secret fields that are set, and the OAuth2 state (never a value)."""
    connector = ws.hub.registry.connectors.get(row["connector"])
    names = secret_names(connector) if connector else set()
    settings = {k: v for k, v in (row["settings"] or {}).items() if k not in names}
    stored = ws.decrypt(row["secrets"])
    oauth: OAuthStatus | None = None
    if connector is not None and connector.oauth2:
        tokens = ws.decrypt(row["oauth_tokens"]) if row["oauth_tokens"] else {}
        expires = tokens.get("expires_at")
        oauth = OAuthStatus(
            connected=bool(tokens.get("access_token")),
            expires_at=dt.datetime.fromtimestamp(float(expires), dt.UTC) if expires else None,
            scope=tokens.get("scope"),
            has_refresh_token=bool(tokens.get("refresh_token")),
        )
    return ConnectionInfo(
        name=row["name"],
        connector=row["connector"],
        settings=settings,
        secret_fields=sorted(names),
        secrets_set=sorted(k for k in stored if k in names),
        oauth2=oauth,
        created_at=ts(row["created_at"]),  # type: ignore[arg-type]
        updated_at=ts(row["updated_at"]),  # type: ignore[arg-type]
    )


class ConnectionsController(Controller):
    """Stored connections of a workspace (secrets encrypted at rest, never returned)."""

    path = "/api/w/{workspace:str}/connections"
    tags = ["connections"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get(
        "/",
        name="connections_list",
        operation_id="connections_list",
        responses=error_responses(401, 404),
    )
    async def list_connections(self, ws: NamedDependency[WorkspaceHub]) -> list[ConnectionInfo]:
        """Every connection, by name."""
        return [connection_info(ws, row) for row in await ws.list_connections()]

    @post(
        "/",
        name="connections_create",
        operation_id="connections_create",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404, 409, 422),
    )
    async def create_connection(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[ConnectionCreate]
    ) -> ConnectionInfo:
        """Create a connection; ``values`` are checked against the connector's schema."""
        await ws.create_connection(data.name, data.connector, data.values)
        return connection_info(ws, await ws.get_connection(data.name))

    @get(
        "/{name:str}",
        name="connections_get",
        operation_id="connections_get",
        responses=error_responses(400, 401, 404),
    )
    async def get_connection(
        self, ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> ConnectionInfo:
        """One connection (which secret fields are set, never their values)."""
        return connection_info(ws, await ws.get_connection(name))

    @patch(
        "/{name:str}",
        name="connections_update",
        operation_id="connections_update",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def update_connection(
        self, ws: NamedDependency[WorkspaceHub], name: NamePath, data: JSONBody[ConnectionUpdate]
    ) -> ConnectionInfo:
        """Change some values; the others (secrets included) are kept; ``unset`` removes."""
        await ws.update_connection(name, data.values, data.unset)
        return connection_info(ws, await ws.get_connection(name))

    @delete(
        "/{name:str}",
        name="connections_delete",
        operation_id="connections_delete",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404),
    )
    async def delete_connection(self, ws: NamedDependency[WorkspaceHub], name: NamePath) -> None:
        """Delete a connection (flows that use it fail until it is created again)."""
        await ws.delete_connection(name)

    @post(
        "/{name:str}/test",
        name="connections_test",
        operation_id="connections_test",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def test_connection(
        self, ws: NamedDependency[WorkspaceHub], name: NamePath
    ) -> ConnectionTested:
        """Run the connector's connection test (refreshing an expiring OAuth2 token first)."""
        ok, message = await ws.test_connection(name)
        return ConnectionTested(ok=ok, message=message)

    @get(
        "/{name:str}/oauth2/authorize",
        name="connections_oauth2_authorize",
        operation_id="connections_oauth2_authorize",
        opt=EDITOR,
        status_code=302,
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def authorize(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        name: NamePath,
        return_to: Annotated[str | None, QueryParameter(max_length=2000)] = None,
    ) -> Redirect:
        """Redirect the browser to the service to authorize the connection (OAuth2 with
        PKCE); the service sends it back to ``/api/oauth2/callback`` on ``HUB_PUBLIC_URL``
        (when set; else on this request's own base URL)."""
        callback = links.oauth2_redirect_uri(ws.hub.settings, str(request.base_url))
        url = await ws.authorize_url(name, callback, return_to)
        return Redirect(url, status_code=302)

    @post(
        "/{name:str}/oauth2/refresh",
        name="connections_oauth2_refresh",
        operation_id="connections_oauth2_refresh",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409, 422, 502),
    )
    async def refresh(self, ws: NamedDependency[WorkspaceHub], name: NamePath) -> ConnectionInfo:
        """Refresh the connection's OAuth2 access token now."""
        await ws.refresh_oauth2(name)
        return connection_info(ws, await ws.get_connection(name))


class OAuth2Controller(Controller):
    """Where the service sends the browser back after an OAuth2 authorization."""

    path = "/api/oauth2"
    tags = ["connections"]
    security = SECURITY
    dependencies = PRINCIPAL_DEPENDENCIES

    @get(
        "/callback",
        name="oauth2_callback",
        operation_id="oauth2_callback",
        responses={
            **error_responses(400, 401, 403, 404, 502),
            303: ResponseSpec(None, description="Back to the page given as return_to"),
        },
    )
    async def callback(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        oauth_state: Annotated[str, QueryParameter(name="state", max_length=4000)],
        code: Annotated[str | None, QueryParameter(max_length=4000)] = None,
        error: Annotated[str | None, QueryParameter(max_length=200)] = None,
        error_description: Annotated[str | None, QueryParameter(max_length=2000)] = None,
    ) -> Response[ConnectionInfo]:
        """Exchange the authorization code (with the PKCE verifier) for tokens and store
        them encrypted; only the user who started the authorization can complete it."""
        hub = hub_of(request)
        if error or not code:
            message = f"the service did not authorize: {error or 'no code'}"
            if error_description:
                message += f" ({error_description})"
            raise ApiError(400, "bad_request", message)
        workspace, name, return_to = await oauth2.complete_authorization(
            hub, user_id=principal.user_id, actor=principal.email, code=code, state=oauth_state
        )
        if return_to:
            return Redirect(return_to, status_code=303)
        ws = WorkspaceHub(hub, workspace, actor=principal.email, user_id=principal.user_id)
        return Response(connection_info(ws, await ws.get_connection(name)))
