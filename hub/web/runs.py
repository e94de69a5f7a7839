"""The Runs pages: the list (filters in the URL, keyset pages, a bounded text search), a
run's page (summary, timeline, steps; retry, replay, cancel) and its live fragments.

- ``/w/{ws}/runs``: 50 runs a page, newest first, through the API's keyset cursor. While the
  page shows runs that are not final, its rows fragment (``/runs/rows``) is fetched again
  every 2 s; the first page's, every 10 s after that, for new runs; no stream stays open on
  a list (a browser's "network idle" would never come).
- ``/w/{ws}/runs/{id}``: the run. While it is not final, the page follows
  ``/runs/{id}/live`` (server-sent events, htmx's SSE extension): each pushed change sends
  the changed step's section and the timeline as out-of-band swaps (event ``step``); the
  final state swaps the whole run section (event ``done``, which also closes the stream).
  What the run section draws (steps grouped, the timeline) is :mod:`hub.web.run_steps`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from hub.api.deps import EDITOR
from hub.api.runs import FINAL, RunPath, decode_cursor, encode_cursor
from hub.services.live import Change
from hub.services.workspace import WorkspaceHub
from hub.web.form_checks import utc_micros
from hub.web.pages import WorkspacePage, can, page, ws_path
from hub.web.run_steps import group_steps, started_runs, timeline

PAGE_SIZE = 50
STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
ACTIVE = frozenset({"queued", "running", "waiting"})
POLL_ACTIVE = "every 2s"  # the list's rows while runs in it are not final
POLL_IDLE = "every 10s"  # the first page's rows, for new runs
LIVE_SECONDS = 3600.0  # a live page's stream ends after this (the browser reconnects)
FlowQuery = Annotated[str, QueryParameter(max_length=100)]
StatusQuery = Annotated[str, QueryParameter(max_length=20)]
TimeQuery = Annotated[str, QueryParameter(max_length=40)]
CursorQuery = Annotated[str, QueryParameter(max_length=200)]
#: What a change from a run's page did, by its ``?done=`` (the run's page shows it).
NOTICES = {
    "retried": "Retrying from the failed step: the steps that succeeded are not run again.",
    "replayed": "This is a new run with the same trigger data and flow version.",
    "cancelled": "The run was cancelled.",
    "final": "The run had already finished: nothing was cancelled.",
}


# -- the list ---------------------------------------------------------------------------


@dataclasses.dataclass
class RunFilters:
    """The list's filters as the URL carries them (``flow``, ``status``, ``since``,
    ``until``: ISO dates and times in UTC, ``q``: text in the trigger data, ``cursor``,
    ``trial``: ``true`` for the builder's test runs only, hidden otherwise)."""

    flow: str = ""
    status: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    cursor: str = ""
    trial: str = ""

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` (empty values left out)."""
        values = {**dataclasses.asdict(self), **changes}
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def any(self) -> bool:
        """Whether anything narrows the list (beyond the page)."""
        return bool(self.flow or self.status or self.since or self.until or self.q or self.trial)


def run_filters(
    flow: FlowQuery = "",
    status: StatusQuery = "",
    since: TimeQuery = "",
    until: TimeQuery = "",
    q: Annotated[str, QueryParameter(max_length=200)] = "",
    cursor: CursorQuery = "",
    trial: Annotated[str, QueryParameter(max_length=10)] = "",
) -> RunFilters:
    """The list's filters from the URL's query (the list's and its rows' dependency)."""
    return RunFilters(flow, status, since, until, q, cursor, "true" if trial == "true" else "")


async def list_context(ws: WorkspaceHub, filters: RunFilters) -> dict[str, Any]:
    """What the list and its rows fragment show for ``filters``."""
    problems: list[str] = []
    bounds: dict[str, int | None] = {}
    for name in ("since", "until"):
        try:
            bounds[name] = utc_micros(getattr(filters, name))
        except ValueError:
            problems.append(f"“{getattr(filters, name)}” is not a date and time (2026-01-31T09:30)")
            bounds[name] = None
    status = filters.status if filters.status in STATUSES else None
    query: dict[str, Any] = {
        "flow_id": filters.flow or None,
        "status": status,
        "since": bounds["since"],
        "until": bounds["until"],
        "cursor": decode_cursor(filters.cursor) if filters.cursor else None,
        "trial": filters.trial == "true",
    }
    stopped_at = None
    scanned = 0
    if filters.q:
        scan = await ws.scan_runs(filters.q, limit=PAGE_SIZE, **query)
        rows, scanned = scan.rows, scan.scanned
        if scan.stopped_at is not None:
            stopped_at = {
                "created_at": scan.stopped_at[0],
                "query": filters.query(cursor=encode_cursor(*scan.stopped_at)),
            }
    else:
        rows = await ws.runs_page(limit=PAGE_SIZE + 1, with_data=False, **query)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_query = None
    if more:
        next_query = filters.query(cursor=encode_cursor(rows[-1]["created_at"], rows[-1]["id"]))
    return {
        "runs": rows,
        "filters": filters,
        "statuses": STATUSES,
        "problems": problems,
        "next_query": next_query,
        "first_query": filters.query(cursor="") if filters.cursor else None,
        "stopped_at": stopped_at,
        "scanned": scanned,
        "poll": poll_every(filters, rows),
        "rows_query": filters.query(),
    }


def poll_every(filters: RunFilters, rows: list[dict[str, Any]]) -> str | None:
    """How often the rows fragment is fetched again: every 2 s while a run shown is not
    final; on the first page, every 10 s for new runs; else never (a text search reads too
    much to repeat, and an older page gets no new runs)."""
    if filters.q:
        return None
    if any(r["status"] in ACTIVE for r in rows):
        return POLL_ACTIVE
    return None if filters.cursor else POLL_IDLE


# -- a run ------------------------------------------------------------------------------


def run_context(
    ws_base: str,
    record: dict[str, Any],
    steps: list[dict[str, Any]],
    role: str,
    children: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the run section shows (the page, the live fragments, the final swap)."""
    groups = group_steps(steps)
    final = record["status"] in FINAL
    return {
        "run": record,
        "groups": groups,
        "started": started_runs(children or []),
        "timeline": timeline(record, groups, int(time.time() * 1_000_000)),
        "live": not final,
        "run_url": f"{ws_base}/runs/{quote(record['id'], safe='')}",
        "can_retry": record["status"] == "failed" and can(role, "editor"),
        "can_cancel": not final and can(role, "editor"),
        "can_replay": can(role, "editor"),
    }


class RunPages(WorkspacePage):
    """The runs of a workspace, and each run."""

    path = "/w/{workspace:str}/runs"

    @get("/", name="web_runs", dependencies={"filters": Provide(run_filters, sync_to_thread=False)})
    async def index(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        filters: NamedDependency[RunFilters],
    ) -> Template:
        """The runs, newest first, with the filters of the URL."""
        context = await list_context(ws, filters)
        return await page(request, "pages/runs/list.html", section="runs", title="Runs", **context)

    @get(
        "/rows",
        name="web_runs_rows",
        dependencies={"filters": Provide(run_filters, sync_to_thread=False)},
    )
    async def rows(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        filters: NamedDependency[RunFilters],
    ) -> Template:
        """The list's rows again (what the list polls while runs in it are not final; never
        for a text search: ``q`` is left out)."""
        context = await list_context(ws, dataclasses.replace(filters, q=""))
        return await page(request, "partials/runs/rows.html", **context)

    @get("/{run_id:str}", name="web_run")
    async def run(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        run_id: RunPath,
        done: Annotated[str, QueryParameter(max_length=20)] = "",
    ) -> Template:
        """A run: summary, timeline, steps, actions (``?done=``: what a change just did)."""
        record = await ws.get_run(run_id)
        steps = record.pop("steps")
        children = await ws.child_runs(record["id"])
        context = run_context(ws_path(ws.workspace), record, steps, ws.role, children)
        notice = NOTICES.get(done)
        return await page(
            request,
            "pages/runs/run.html",
            section="runs",
            title=f"Run {record['id']}",
            notice=notice,
            **context,
        )

    @get("/{run_id:str}/live", name="web_run_live")
    async def live(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], run_id: RunPath
    ) -> ServerSentEvent:
        """The run's changes as HTML fragments (server-sent events ``step`` and ``done``)."""
        await ws.get_run(run_id, with_steps=False)  # 404 before the stream starts
        return ServerSentEvent(live_fragments(request, ws, run_id))

    @post("/{run_id:str}/retry", name="web_run_retry", opt=EDITOR, status_code=303)
    async def retry(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> Redirect:
        """Retry a failed run from its failed step(s)."""
        await ws.retry_run(run_id)
        return Redirect(self._run_url(ws, run_id, "retried"), status_code=303)

    @post("/{run_id:str}/replay", name="web_run_replay", opt=EDITOR, status_code=303)
    async def replay(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> Redirect:
        """Start a new run with the same trigger data and flow version; go to it."""
        new_id = await ws.replay_run(run_id)
        return Redirect(self._run_url(ws, new_id, "replayed"), status_code=303)

    @post("/{run_id:str}/cancel", name="web_run_cancel", opt=EDITOR, status_code=303)
    async def cancel(self, ws: NamedDependency[WorkspaceHub], run_id: RunPath) -> Redirect:
        """Cancel a run and its child runs."""
        cancelled = await ws.cancel_run(run_id)
        return Redirect(
            self._run_url(ws, run_id, "cancelled" if cancelled else "final"), status_code=303
        )

    @staticmethod
    def _run_url(ws: WorkspaceHub, run_id: str, done: str) -> str:
        return ws_path(ws.workspace, f"/runs/{quote(run_id, safe='')}?done={done}")


async def live_fragments(
    request: Request[Any, Any, Any], ws: WorkspaceHub, run_id: str
) -> AsyncIterator[ServerSentEventMessage]:
    """HTML for each batch of a run's changes: ``step`` (out-of-band swaps of the changed
    steps' sections, the timeline and the run's head; the first batch refreshes the whole
    section, in case something changed between the page and the stream), then ``done``
    with the final section. At the time limit (:data:`LIVE_SECONDS`) the stream just ends:
    the browser's event source connects again."""
    env = request.app.template_engine.engine  # type: ignore[union-attr]
    section = env.get_template("partials/runs/run.html")
    oob = env.get_template("partials/runs/changes.html")
    ws_base = ws_path(ws.workspace)
    # the request: the template engine's csrf_token() reads the token from it
    common = {"request": request, "ws_base": ws_base, "role": ws.role}
    state: dict[str, Any] = {}
    shown: set[str] = set()  # the steps the page has a section for
    first = True
    children: list[dict[str, Any]] = []
    async for changes in ws.follow_run(run_id, max_seconds=LIVE_SECONDS):
        steps_changed = _absorb(state, changes)
        record, steps = state["run"], list(state["steps"].values())
        if record["status"] in FINAL:
            continue  # the final read comes last: sent once the feed ends
        if first or any(s["status"] == "waiting" for s in steps_changed):
            children = await ws.child_runs(run_id)  # a step waiting may have started one
        context = {**common, **run_context(ws_base, record, steps, ws.role, children)}
        if first:
            first = False
            html = section.render(**context, oob_run=True)
        else:
            changed = {s["step_id"] for s in steps_changed}
            groups = [g for g in context["groups"] if g.step_id in changed]
            new = {g.step_id for g in groups} - shown
            html = oob.render(**context, changed_groups=groups, new_steps=new)
        shown.update(g.step_id for g in context["groups"])
        yield ServerSentEventMessage(data=html, event="step")
    if state and state["run"]["status"] in FINAL:  # else the time limit: the browser reconnects
        steps = list(state["steps"].values())
        children = await ws.child_runs(run_id)
        context = {**common, **run_context(ws_base, state["run"], steps, ws.role, children)}
        yield ServerSentEventMessage(data=section.render(**context), event="done")


def _absorb(state: dict[str, Any], changes: list[Change]) -> list[dict[str, Any]]:
    """Fold a batch of changes into ``state`` (``run``, ``steps`` by (key, attempt), in
    order); return the steps that changed."""
    steps_changed = []
    known = state.setdefault("steps", {})
    for change in changes:
        if change.kind == "run":
            state["run"] = change.data
        else:
            known[(change.data["key"], change.data["attempt"])] = change.data
            steps_changed.append(change.data)
    return steps_changed
