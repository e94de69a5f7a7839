"""The Home pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.web.pages import WorkspacePage, page


class HomePages(WorkspacePage):
    """Home."""

    path = "/w/{workspace:str}"

    @get("/", name="web_home")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Home page."""
        return await page(request, "pages/placeholder.html", section="home", title="Home")
