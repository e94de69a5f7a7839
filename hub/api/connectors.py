"""The connectors catalog (every installed connector) and dynamic options of fields."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import ApiError, error_responses
from hub.api.models import ActionInfo, ConnectorInfo, Options, OptionsQuery, TriggerInfo
from hub.api.steps import NoChildRuns
from hub.connectors import Connector
from hub.context import RedactingLogger, StepContext
from hub.security.secrets import Redactor
from hub.services.workspace import WorkspaceHub, invalid, secret_names

log = logging.getLogger("hub.api")
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


def options_key(ws: WorkspaceHub, action: str, field: str, query: OptionsQuery) -> str:
    """The cache key of a field's options: per workspace, connection and input."""
    digest = hashlib.sha256(msgspec.json.encode(query.input, order="sorted")).hexdigest()[:32]
    return f"options:{ws.workspace}:{action}:{field}:{query.connection or ''}:{digest}"


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
        full_name = f"{connector}.{action}"
        found = ws.hub.registry.action(full_name)
        if found is None:
            raise ApiError(404, "not_found", f"no action {full_name!r} is installed")
        loader = found.options.get(field)
        if loader is None:
            raise ApiError(404, "not_found", f"{full_name} has no options for field {field!r}")
        connection: dict[str, Any] | None = None
        redactor = Redactor()
        if data.connection:
            connection, redactor = await ws.connection_values(data.connection)
        elif found.needs_connection:
            raise invalid(
                f"{full_name} needs a connection to list options",
                [{"location": "connection", "message": "required by the action"}],
            )

        async def load() -> list[dict[str, Any]]:
            ctx = StepContext(
                run_id="options",
                flow_id="",
                workspace_id=ws.workspace,
                step_key=field,
                step_id=field,
                attempt=1,
                connection=connection,
                http=ws.hub.http,
                cache=ws.hub.cache,
                log=RedactingLogger(log, redactor.text, {}),
                state={},
                settings=ws.hub.settings,
                services=NoChildRuns(),
            )
            ctx.input = data.input
            return list(await loader(ctx))

        try:
            if found.cache is not None:
                options = await ws.hub.cache.get_or_load(
                    options_key(ws, full_name, field, data),
                    load,
                    found.cache.ttl,
                    found.cache.stale_while_revalidate,
                )
            else:
                options = await load()
        except ApiError:
            raise
        except Exception as exc:
            message = redactor.text(f"listing the options failed: {type(exc).__name__}: {exc}")
            raise ApiError(502, "bad_gateway", message) from exc
        return Options(options=[o for o in redactor.data(options) if isinstance(o, dict)])
