"""The Home page: what needs attention in a workspace.

Failed runs of the last 24 hours, runs now running, the flows that fail most over the
last 7 days, and in queue mode the queues and their workers. Every block says what to do
when it is empty. Read-only: a viewer sees all of it.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from hub.services import overview
from hub.services.workspace import WorkspaceHub
from hub.web.form_checks import utc_text
from hub.web.pages import WorkspacePage, page, query_link, ws_path


def runs_link(base: str, **filters: str) -> str:
    """The runs list with filters (a filtered list is a link)."""
    return f"{base}/runs" + query_link(filters)


class HomePages(WorkspacePage):
    """Home: what needs attention in the workspace."""

    path = "/w/{workspace:str}"

    @get("/", name="web_home")
    async def index(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub]
    ) -> Template:
        """Failed runs of the last 24 hours, running runs, the flows failing most over 7
        days, and the queues in queue mode (each a link to the runs list filtered)."""
        found = await overview.attention(ws)
        queue = await overview.queue_overview(ws.hub)
        base = ws_path(ws.workspace)
        # as the runs list's ``since`` takes it (what its ``datetime-local`` field shows)
        since_recent = utc_text(found["since_recent"], seconds=True)
        since_window = utc_text(found["since_window"], seconds=True)
        return await page(
            request,
            "pages/home/index.html",
            section="home",
            title="Home",
            found=found,
            queue=queue,
            failed_href=runs_link(base, status="failed", since=since_recent),
            running_href=runs_link(base, status="running"),
            flow_failed_href={
                f["flow_id"]: runs_link(
                    base, flow=f["flow_id"], status="failed", since=since_window
                )
                for f in found["failing_flows"]
            },
        )
