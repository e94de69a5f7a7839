"""The Profile pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.web.pages import WorkspacePage, page


class ProfilePages(WorkspacePage):
    """Profile."""

    path = "/w/{workspace:str}/profile"

    @get("/", name="web_profile")
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Profile page."""
        return await page(request, "pages/placeholder.html", section="profile", title="Profile")
