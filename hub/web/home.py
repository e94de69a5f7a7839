"""The Home page: what needs attention in a workspace.

Failed runs of the last 24 hours, runs now running, the flows that fail most over the
last 7 days, and in queue mode the queues and their workers. Every block says what to do
when it is empty. Read-only: a viewer sees all of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from hub.services import overview
from hub.services.workspace import WorkspaceHub
from hub.web.pages import WorkspacePage, page


def iso_utc(micros: int) -> str:
    """Epoch microseconds as the runs list's ``since`` takes it: an ISO 8601 date and time
    without a zone, read as UTC (what its ``datetime-local`` field shows)."""
    when = dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def runs_link(base: str, **filters: str) -> str:
    """The runs list with filters (a filtered list is a link)."""
    return f"{base}/runs?{urlencode(filters)}"


class HomePages(WorkspacePage):
    """Home."""

    path = "/w/{workspace:str}"

    @get("/", name="web_home")
    async def index(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub]
    ) -> Template:
        """The Home page."""
        found = await overview.attention(ws)
        queue = await overview.queue_overview(ws.hub)
        base = f"/w/{quote(ws.workspace)}"
        since_recent = iso_utc(found["since_recent"])
        since_window = iso_utc(found["since_window"])
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
