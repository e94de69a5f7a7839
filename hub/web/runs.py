"""The Runs pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.web.pages import WorkspacePage, page


class RunPages(WorkspacePage):
    """Runs."""

    path = "/w/{workspace:str}/runs"

    @get("/", name="web_runs")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Runs page."""
        return await page(request, "pages/placeholder.html", section="runs", title="Runs")
