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
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from hub.api.deps import EDITOR
from hub.api.runs import FINAL, RunPath, decode_cursor, encode_cursor
from hub.services.live import Change
from hub.services.workspace import WorkspaceHub
from hub.web.form_checks import utc_micros
from hub.web.pages import WorkspacePage, can, page, ws_path

PAGE_SIZE = 50
STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
ACTIVE = frozenset({"queued", "running", "waiting"})
POLL_ACTIVE = "every 2s"  # the list's rows while runs in it are not final
POLL_IDLE = "every 10s"  # the first page's rows, for new runs
LIVE_SECONDS = 3600.0  # a live page's stream ends after this (the browser reconnects)
# The timeline's geometry, in SVG user units
LABEL_WIDTH = 180
CHART_WIDTH = 820
ROW_HEIGHT = 20
AXIS_HEIGHT = 24
MIN_BAR = 2.0
LABEL_CHARS = 24  # a lane's label on the timeline
PREVIEW_CHARS = 160  # an item's output or error in its row
MAX_STARTED = 50  # the runs a step started, linked from its section
FlowQuery = Annotated[str, QueryParameter(max_length=100)]
StatusQuery = Annotated[str, QueryParameter(max_length=20)]
TimeQuery = Annotated[str, QueryParameter(max_length=40)]
CursorQuery = Annotated[str, QueryParameter(max_length=200)]


# -- the list ---------------------------------------------------------------------------


@dataclasses.dataclass
class RunFilters:
    """The list's filters as the URL carries them (``flow``, ``status``, ``since``,
    ``until``: ISO dates and times in UTC, ``q``: text in the trigger data, ``cursor``)."""

    flow: str = ""
    status: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    cursor: str = ""

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` (empty values left out)."""
        values = {**dataclasses.asdict(self), **changes}
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def any(self) -> bool:
        """Whether anything narrows the list (beyond the page)."""
        return bool(self.flow or self.status or self.since or self.until or self.q)


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


@dataclasses.dataclass
class StepKey:
    """One step key of a run (the step itself, an item of its ``for_each``, a handler):
    its attempts, oldest first."""

    key: str
    item_index: int | None
    attempts: list[dict[str, Any]]

    @property
    def latest(self) -> dict[str, Any]:
        """The newest attempt."""
        return self.attempts[-1]

    @property
    def preview(self) -> str:
        """The newest attempt's error message, else its output, as a short line of JSON
        (an item's row; the whole values are in its step's output)."""
        latest = self.latest
        error = latest["error"]
        if error:
            text = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        else:
            text = json.dumps(latest["output"], ensure_ascii=False, default=str)
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


@dataclasses.dataclass
class StepGroup:
    """A step of the flow as the run page shows it: its own key, and under it the items
    of its ``for_each`` (and other keys of the step, such as handlers)."""

    step_id: str
    own: StepKey | None
    children: list[StepKey]

    @property
    def status(self) -> str:
        """The status shown for the step (its own key's newest attempt)."""
        if self.own is not None:
            return str(self.own.latest["status"])
        return str(self.children[-1].latest["status"]) if self.children else "queued"

    @property
    def anchor(self) -> str:
        """The id of its section on the page."""
        return "step-" + quote(self.step_id, safe="")

    def step_keys(self) -> list[StepKey]:
        """Its keys: its own first, then the items (by index) and other keys."""
        return ([self.own] if self.own is not None else []) + self.children


def group_steps(steps: list[dict[str, Any]]) -> list[StepGroup]:
    """The run's attempts grouped by step (in the order steps first appear), each key's
    attempts together, a ``for_each``'s items under their step by index."""
    groups: dict[str, StepGroup] = {}
    keys: dict[str, StepKey] = {}
    for attempt in steps:
        group = groups.get(attempt["step_id"])
        if group is None:
            group = groups[attempt["step_id"]] = StepGroup(attempt["step_id"], None, [])
        found = keys.get(attempt["key"])
        if found is None:
            found = keys[attempt["key"]] = StepKey(attempt["key"], attempt["item_index"], [])
            if attempt["key"] == attempt["step_id"]:
                group.own = found
            else:
                group.children.append(found)
        found.attempts.append(attempt)
    for group in groups.values():
        for key in group.step_keys():
            key.attempts.sort(key=lambda a: a["attempt"])
        group.children.sort(key=lambda k: (k.item_index is None, k.item_index or 0, k.key))
    return list(groups.values())


@dataclasses.dataclass
class Bar:
    """One attempt on the timeline."""

    x: float
    width: float
    status: str
    title: str


@dataclasses.dataclass
class Lane:
    """One row of the timeline: a step key and its attempts."""

    label: str
    item: bool
    y: float
    bars: list[Bar]
    anchor: str  # the id of its step's section


@dataclasses.dataclass
class Timeline:
    """The run's timeline: lanes, size and axis ticks (``(x, label)``)."""

    lanes: list[Lane]
    width: int
    height: int
    ticks: list[tuple[float, str]]


def _seconds_label(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def timeline(run: dict[str, Any], groups: list[StepGroup], now: int) -> Timeline:
    """A bar per attempt on one time axis, from the run's start to its end (or now)."""
    attempts = [a for g in groups for k in g.step_keys() for a in k.attempts]
    starts = [a["started_at"] for a in attempts if a["started_at"] is not None]
    start = run["started_at"] or run["created_at"]
    if starts:
        start = min([start, *starts])
    ends = [a["finished_at"] for a in attempts if a["finished_at"] is not None]
    end = run["finished_at"] or now
    end = max([end, *ends, start + 1])
    span = end - start
    scale = CHART_WIDTH / span

    def x_of(moment: int) -> float:
        return float(LABEL_WIDTH + (moment - start) * scale)

    lanes: list[Lane] = []
    y = float(AXIS_HEIGHT)
    for group in groups:
        for key in group.step_keys():
            bars = []
            for a in key.attempts:
                if a["started_at"] is None:
                    continue
                finish = a["finished_at"] or (now if a["status"] == "running" else a["started_at"])
                took = (finish - a["started_at"]) / 1e6
                bars.append(
                    Bar(
                        x=round(x_of(a["started_at"]), 1),
                        width=round(max(MIN_BAR, (finish - a["started_at"]) * scale), 1),
                        status=str(a["status"]),
                        title=f"{key.key} attempt {a['attempt']}: {a['status']}, "
                        f"{_seconds_label(took)}",
                    )
                )
            label = key.key if key.item_index is None else f"[{key.item_index}]"
            if len(label) > LABEL_CHARS:
                label = label[: LABEL_CHARS - 1] + "…"
            lanes.append(Lane(label, key.item_index is not None, y, bars, group.anchor))
            y += ROW_HEIGHT
    ticks = [
        (round(LABEL_WIDTH + CHART_WIDTH * i / 4, 1), _seconds_label(span / 1e6 * i / 4))
        for i in range(5)
    ]
    return Timeline(lanes, LABEL_WIDTH + CHART_WIDTH + 40, int(y) + 4, ticks)


def started_runs(children: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs a run's steps started, by step id (an item's under its step), at most
    :data:`MAX_STARTED` a step."""
    found: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        step_id = str(child["parent_step_key"] or "").split("[", 1)[0]
        shown = found.setdefault(step_id, [])
        if len(shown) < MAX_STARTED:
            shown.append(child)
    return found


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

    @get("/", name="web_runs")
    async def index(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow: FlowQuery = "",
        status: StatusQuery = "",
        since: TimeQuery = "",
        until: TimeQuery = "",
        q: Annotated[str, QueryParameter(max_length=200)] = "",
        cursor: CursorQuery = "",
    ) -> Template:
        """The runs, newest first, with the filters of the URL."""
        filters = RunFilters(flow, status, since, until, q, cursor)
        context = await list_context(ws, filters)
        return await page(request, "pages/runs/list.html", section="runs", title="Runs", **context)

    @get("/rows", name="web_runs_rows")
    async def rows(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow: FlowQuery = "",
        status: StatusQuery = "",
        since: TimeQuery = "",
        until: TimeQuery = "",
        cursor: CursorQuery = "",
    ) -> Template:
        """The list's rows again (what the list polls while runs in it are not final; never
        for a text search)."""
        filters = RunFilters(flow, status, since, until, "", cursor)
        context = await list_context(ws, filters)
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


NOTICES = {
    "retried": "Retrying from the failed step: the steps that succeeded are not run again.",
    "replayed": "This is a new run with the same trigger data and flow version.",
    "cancelled": "The run was cancelled.",
    "final": "The run had already finished: nothing was cancelled.",
}


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
