"""The Connectors pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.web.pages import WorkspacePage, page


class ConnectorPages(WorkspacePage):
    """Connectors."""

    path = "/w/{workspace:str}/connectors"

    @get("/", name="web_connectors")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Connectors page."""
        return await page(
            request, "pages/placeholder.html", section="connectors", title="Connectors"
        )
