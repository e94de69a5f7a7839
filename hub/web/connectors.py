"""The Connectors pages: the installed plugins and their connectors, and a reference page
per action and trigger generated from its schemas.

The fields come from the same schema reader as ``hub plugins docs``
(:mod:`hub.plugin_kit.schema_reader`); the examples from the schemas (or the action's
declared examples). Read-only: a viewer sees all of it. Descriptions come from plugins and
are escaped like every other text.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.response import Template

from hub.api.connectors import connector_info
from hub.services import overview
from hub.services.errors import NotFound
from hub.services.workspace import WorkspaceHub
from hub.web.pages import WorkspacePage, page

NamePath = Annotated[str, PathParameter(max_length=100)]


async def reference_page(
    request: Request[Any, Any, Any], template: str, ref: dict[str, Any]
) -> Template:
    """An action's or a trigger's reference page (``ref`` from :mod:`hub.services.overview`)."""
    return await page(request, template, section="connectors", title=ref["full_name"], ref=ref)


class ConnectorPages(WorkspacePage):
    """Connectors: the catalog, a connector, an action's or a trigger's reference."""

    path = "/w/{workspace:str}/connectors"

    @get("/", name="web_connectors")
    async def index(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub]
    ) -> Template:
        """Every installed plugin with its version, and its connectors' actions and
        triggers."""
        registry = ws.hub.registry
        plugins = overview.plugin_infos(set(registry.owners.values()))
        groups = [
            {
                "plugin": info,
                "connectors": [
                    connector_info(registry.connectors[name], info.name)
                    for name in sorted(registry.connectors)
                    if registry.owners[name] == info.name
                ],
            }
            for info in plugins.values()
        ]
        return await page(
            request,
            "pages/connectors/index.html",
            section="connectors",
            title="Connectors",
            groups=groups,
            count=len(registry.connectors),
        )

    @get("/{connector:str}", name="web_connector")
    async def connector(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        connector: NamePath,
    ) -> Template:
        """A connector: its connection's fields, its actions and triggers."""
        registry = ws.hub.registry
        found = registry.connectors.get(connector)
        if found is None:
            raise NotFound(f"no connector {connector!r} is installed")
        owner = registry.owners[connector]
        info = connector_info(found, owner)
        return await page(
            request,
            "pages/connectors/connector.html",
            section="connectors",
            title=info.title,
            info=info,
            plugin=overview.plugin_infos({owner})[owner],
            connection_fields=overview.schema_fields(found.connection_schema),
            connection_summary=overview.schema_summary(found.connection_schema),
            connection_rules=overview.schema_rules(found.connection_schema),
        )

    @get("/{connector:str}/actions/{action:str}", name="web_connector_action")
    async def action(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        connector: NamePath,
        action: NamePath,
    ) -> Template:
        """An action's reference: policies, input and output fields, examples."""
        ref = overview.action_reference(ws.hub.registry, connector, action)
        return await reference_page(request, "pages/connectors/action.html", ref)

    @get("/{connector:str}/triggers/{trigger:str}", name="web_connector_trigger")
    async def trigger(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        connector: NamePath,
        trigger: NamePath,
    ) -> Template:
        """A trigger's reference: config and event fields, a flow's trigger using it."""
        ref = overview.trigger_reference(ws.hub.registry, connector, trigger)
        return await reference_page(request, "pages/connectors/trigger.html", ref)
