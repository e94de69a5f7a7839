"""The Flows pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.web.pages import WorkspacePage, page


class FlowPages(WorkspacePage):
    """Flows."""

    path = "/w/{workspace:str}/flows"

    @get("/", name="web_flows")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Flows page."""
        return await page(request, "pages/placeholder.html", section="flows", title="Flows")
