"""The Members and Audit log pages (being built: see issue 15)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from hub.api.deps import OWNER
from hub.web.pages import WorkspacePage, page


class MemberPages(WorkspacePage):
    """Members of a workspace (owners only)."""

    path = "/w/{workspace:str}/members"

    @get("/", name="web_members", opt=OWNER)
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Members page."""
        return await page(request, "pages/placeholder.html", section="members", title="Members")


class AuditPages(WorkspacePage):
    """The audit log (owners only)."""

    path = "/w/{workspace:str}/audit"

    @get("/", name="web_audit", opt=OWNER)
    async def index(self, request: Request[Any, Any, Any]) -> Template:
        """The Audit log page."""
        return await page(request, "pages/placeholder.html", section="audit", title="Audit log")
