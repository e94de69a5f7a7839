"""The Connections pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.web.pages import WorkspacePage, page


class ConnectionPages(WorkspacePage):
    """Connections."""

    path = "/w/{workspace:str}/connections"

    @get("/", name="web_connections")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Connections page."""
        return await page(
            request, "pages/placeholder.html", section="connections", title="Connections"
        )
