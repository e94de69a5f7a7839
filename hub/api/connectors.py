"""The connectors catalog (every installed connector) and dynamic options of fields."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import ApiError, error_responses
from hub.api.models import ActionInfo, ConnectorInfo, Options, OptionsQuery, TriggerInfo
from hub.connectors import Connector
from hub.services import actions
from hub.services.connections import secret_names
from hub.services.workspace import WorkspaceHub

NamePath = Annotated[str, PathParameter(max_length=100)]


def connector_info(connector: Connector, plugin: str) -> ConnectorInfo:
    """A connector as the catalog shows it."""
    return ConnectorInfo(
        name=connector.name,
        title=connector.title or connector.name.capitalize(),
        version=connector.version,
        icon=connector.icon,
        description=connector.description,
        connection_schema=connector.connection_schema,
        secret_fields=sorted(secret_names(connector)),
        oauth2=connector.oauth2,
        notes=connector.notes,
        plugin=plugin,
        actions=[
            ActionInfo(full_name=f"{connector.name}.{a.name}", **a.describe())
            for a in connector.actions
        ],
        triggers=[TriggerInfo(**t.describe()) for t in connector.triggers],
    )


class ConnectorsController(Controller):
    """Installed connectors with their actions, triggers, schemas and icons."""

    path = "/api/w/{workspace:str}/connectors"
    tags = ["connectors"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get(
        "/",
        name="connectors_list",
        operation_id="connectors_list",
        responses=error_responses(401, 404),
    )
    async def list_connectors(self, ws: NamedDependency[WorkspaceHub]) -> list[ConnectorInfo]:
        """Every installed connector, by name."""
        registry = ws.hub.registry
        return [
            connector_info(registry.connectors[name], registry.owners[name])
            for name in sorted(registry.connectors)
        ]

    @get(
        "/{connector:str}",
        name="connectors_get",
        operation_id="connectors_get",
        responses=error_responses(400, 401, 404),
    )
    async def get_connector(
        self, ws: NamedDependency[WorkspaceHub], connector: NamePath
    ) -> ConnectorInfo:
        """One connector."""
        registry = ws.hub.registry
        found = registry.connectors.get(connector)
        if found is None:
            raise ApiError(404, "not_found", f"no connector {connector!r} is installed")
        return connector_info(found, registry.owners[connector])

    @post(
        "/{connector:str}/actions/{action:str}/options/{field:str}",
        name="connectors_options",
        operation_id="connectors_options",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 422, 502),
    )
    async def options(
        self,
        ws: NamedDependency[WorkspaceHub],
        connector: NamePath,
        action: NamePath,
        field: NamePath,
        data: JSONBody[OptionsQuery],
    ) -> Options:
        """The options of a field (``list the CRM pipelines``), cached by the action's cache
        policy per workspace, connection and input.

        The action's ``options[field]`` is called with a step context whose ``connection``
        is the decrypted connection and ``input`` the input filled in so far.
        """
        options = await actions.field_options(
            ws, f"{connector}.{action}", field, data.input, data.connection
        )
        return Options(options=options)
