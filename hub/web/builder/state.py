"""What every part of the builder shares: its address, the draft with its issues, and the
answer to an edit.

The builder edits the person's server-side draft (:mod:`hub.services.drafts`); every edit is
a JSON Patch, and after each the page gets back, in one htmx response, the parts that show
the document (:func:`refreshed`): the canvas and the list view, the toolbar (undo, redo,
unsaved changes), the issues, and the side panel when the edit asks for it. The issues are
the server's own validation (the same as ``hub flows validate`` and the API's), never a
second implementation in the browser.

The parts of the builder are separate controllers on :data:`BUILD_PATH` (the page, the step
panel, the trigger and flow panels, the catalog, the graph commands, the expression
services, try-it, the YAML view): each imports what it needs from here (the route
annotations, :func:`posted_revision`, the step lookups, :func:`pointer` and
:func:`ops_for_step`, :func:`state_for`, :func:`refreshed`). The answer with the side panel
drawn anew is :func:`hub.web.builder.panels.refreshed_with_panel`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import jsonpatch
import jsonpointer
from litestar import Request
from litestar.params import PathParameter, QueryParameter
from litestar.response import Template

from hub.api.deps import hub_of
from hub.flows import FlowError
from hub.services.drafts import Draft
from hub.services.errors import NotFound
from hub.services.workspace import WorkspaceHub
from hub.web.builder.canvas import CanvasView
from hub.web.builder.graph import Graph, build_graph
from hub.web.form_checks import form_text
from hub.web.pages import page, ws_path

#: The builder's address; its parts' controllers use it as their ``path``.
BUILD_PATH = "/w/{workspace:str}/flows/{flow_id:str}/build"
#: The layouts the canvas offers: left to right, top to bottom.
DIRECTIONS = ("LR", "TB")
#: The views of the document: the graph, the list of steps, the YAML text.
VIEWS = ("canvas", "list", "yaml")
#: The header in which the page says which drawing it shows (:func:`graph_signature`).
SHOWN_HEADER = "x-builder-shown"
_STEP_LOCATION = re.compile(r"^steps\[(\d+)\]")
#: A step's id in a route's path (``{build}/steps/{step_id}/...``).
StepPath = Annotated[str, PathParameter(max_length=100)]
#: A step's id in a query (``?step=``, ``?after=``).
StepQuery = Annotated[str, QueryParameter(max_length=100)]


def build_href(workspace: str, flow_id: str, tail: str = "") -> str:
    """The address of a flow's builder (or of one of its parts: ``tail``)."""
    return ws_path(workspace, f"/flows/{quote(flow_id, safe='')}/build{tail}")


@dataclasses.dataclass
class Issue:
    """One validation issue, with the step it belongs to (None: the flow or the trigger)."""

    location: str
    message: str
    step: str | None = None

    @property
    def field(self) -> str:
        """The location inside its step (``input.email``), or the whole location."""
        if self.step is None:
            return self.location
        return _STEP_LOCATION.sub("", self.location).lstrip(".") or "step"


def step_ids(document: Mapping[str, Any]) -> list[str]:
    """The ids of the document's steps, in order ("" for a step without a string id)."""
    steps = document.get("steps")
    if not isinstance(steps, list):
        return []
    return [
        str(s.get("id")) if isinstance(s, dict) and isinstance(s.get("id"), str) else ""
        for s in steps
    ]


def step_index(document: Mapping[str, Any], step_id: str) -> int | None:
    """The index of the step ``step_id`` in ``steps``, or None."""
    ids = step_ids(document)
    return ids.index(step_id) if step_id in ids else None


def step_of(document: Mapping[str, Any], step_id: str) -> dict[str, Any] | None:
    """The step ``step_id`` of the document, or None."""
    index = step_index(document, step_id)
    if index is None:
        return None
    step = document["steps"][index]
    return step if isinstance(step, dict) else None


def issues_of(document: Mapping[str, Any], error: FlowError | None) -> list[Issue]:
    """The issues of a validation, each with the id of the step it is about."""
    if error is None:
        return []
    ids = step_ids(document)
    out = []
    for issue in error.issues:
        match = _STEP_LOCATION.match(issue.location)
        step = None
        if match and int(match.group(1)) < len(ids) and ids[int(match.group(1))]:
            step = ids[int(match.group(1))]
        out.append(Issue(issue.location, issue.message, step))
    return out


async def validate_draft(ws: WorkspaceHub, document: dict[str, Any]) -> list[Issue]:
    """The server's validation of the draft's document (what a save would say)."""
    try:
        await ws.validate(document)
    except FlowError as exc:
        return issues_of(document, exc)
    return []


@dataclasses.dataclass
class BuilderState:
    """The draft as the builder shows it: the document, its issues, what is selected."""

    workspace: str
    draft: Draft
    issues: list[Issue]
    selected: str | None = None
    direction: str = "LR"
    #: The saved flow's row (``enabled``, ``published_version``...); None before its
    #: first save.
    flow: dict[str, Any] | None = None

    @property
    def flow_id(self) -> str:
        return self.draft.flow_id

    @property
    def document(self) -> dict[str, Any]:
        return self.draft.document

    @property
    def href(self) -> str:
        """The builder's address."""
        return build_href(self.workspace, self.flow_id)

    def href_to(self, tail: str) -> str:
        """The address of one of the builder's parts (``/edit``, ``/steps/x``...)."""
        return build_href(self.workspace, self.flow_id, tail)

    def issues_for(self, step: str | None) -> list[Issue]:
        """The issues of one step (None: those of no step)."""
        return [i for i in self.issues if i.step == step]

    def field_errors(self, step: str | None, prefix: str) -> dict[str, list[str]]:
        """The messages of a step's issues under ``prefix`` (``input``), by the location
        after it (``email``, ``items[0].name``; ``""`` for the prefix itself)."""
        out: dict[str, list[str]] = {}
        for issue in self.issues_for(step):
            where = issue.field
            if where == prefix or where.startswith((prefix + ".", prefix + "[")):
                rest = where[len(prefix) :].lstrip(".")
                out.setdefault(rest, []).append(issue.message)
        return out


async def state_of(
    ws: WorkspaceHub, flow_id: str, *, selected: str | None = None, direction: str = "LR"
) -> BuilderState:
    """The caller's draft of ``flow_id`` (opened from the latest version when new) with its
    issues."""
    draft = await ws.draft(flow_id)
    return await state_for(ws, draft, selected=selected, direction=direction)


async def state_for(
    ws: WorkspaceHub, draft: Draft, *, selected: str | None = None, direction: str = "LR"
) -> BuilderState:
    """The builder's state of a draft just read or changed."""
    issues = await validate_draft(ws, draft.document)
    if selected is not None and step_index(draft.document, selected) is None:
        selected = None
    try:
        flow = None if draft.is_new else await ws.get_flow(draft.flow_id)
    except NotFound:
        flow = None
    return BuilderState(
        ws.workspace,
        draft,
        issues,
        selected=selected,
        direction=direction if direction in DIRECTIONS else "LR",
        flow=flow,
    )


def read_ops(text: str) -> list[dict[str, Any]]:
    """A JSON Patch posted as text (a list of operations), or ValueError saying why not."""
    try:
        ops = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"ops is not JSON: {exc}") from None
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise ValueError("ops must be a JSON Patch: a list of operations")
    return ops


def posted_revision(data: Mapping[str, Any]) -> int | None:
    """The draft's revision a form says it was drawn from (``revision``), or None: an edit
    from a stale page is then refused (:meth:`~hub.services.drafts.DraftsService.edit_draft`)."""
    text = form_text(data, "revision", 12)
    return int(text) if text.isdigit() else None


def pointer(*parts: str | int) -> str:
    """A JSON Pointer of ``parts`` (``pointer("steps", 2, "input")`` is ``/steps/2/input``)."""
    return "".join("/" + jsonpointer.escape(str(p)) for p in parts)


def ops_for_step(
    document: Mapping[str, Any], step_id: str, new_step: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The JSON Patch that turns the step ``step_id`` of ``document`` into ``new_step``
    (the smallest changes, at paths inside the document); ValueError for no such step."""
    index = step_index(document, step_id)
    if index is None:
        raise ValueError(f"no step {step_id!r} in the draft")
    return patch_at(pointer("steps", index), document["steps"][index], dict(new_step))


def patch_at(prefix: str, old: Any, new: Any) -> list[dict[str, Any]]:
    """The JSON Patch turning ``old`` (the value at the pointer ``prefix``) into ``new``, at
    paths of the whole document."""
    ops = []
    for op in jsonpatch.make_patch(old, new).patch:
        op = dict(op)
        op["path"] = prefix + op["path"]
        if "from" in op:
            op["from"] = prefix + op["from"]
        ops.append(op)
    return ops


def graph_of(request: Request[Any, Any, Any], state: BuilderState) -> Graph:
    """The graph of the draft (with each node's issue count)."""
    return build_graph(
        state.document,
        hub_of(request).expressions,
        [issue.location for issue in state.issues],
        pinned=state.draft.pins.keys(),
    )


def graph_signature(graph: Graph, direction: str) -> str:
    """A short digest of what the canvas and the list view draw (nodes, edges, issue
    counts, direction; not the selection, which the page marks itself)."""
    drawn = repr((graph.nodes, graph.edges, direction)).encode()
    return hashlib.blake2b(drawn, digest_size=8).hexdigest()


def page_direction(request: Request[Any, Any, Any]) -> str:
    """The layout of the page an htmx request comes from (its ``?direction=``), else LR."""
    query = parse_qs(urlsplit(request.headers.get("hx-current-url", "")).query)
    return "TB" if query.get("direction") == ["TB"] else "LR"


def canvas_view(
    request: Request[Any, Any, Any], state: BuilderState, graph: Graph | None = None
) -> CanvasView:
    """The laid-out graph of the draft (the canvas and the list view render from it)."""
    return CanvasView(
        graph if graph is not None else graph_of(request, state),
        state.href,
        selected=state.selected,
        direction="TB" if state.direction == "TB" else "LR",
    )


async def refreshed(
    request: Request[Any, Any, Any],
    state: BuilderState,
    *,
    panel: str | None = None,
    notice: str = "",
    status_code: int = 200,
    **context: Any,
) -> Template:
    """The answer to an edit: the builder's regions that show the document, swapped out of
    band (canvas, list, toolbar, issues), and ``panel`` (a template name, rendered with
    ``context``) as the side panel when given (else the request should say
    ``hx-swap="none"``).

    The canvas or the list is sent only when what it draws changed, and only the one the
    page shows: the page says which view it shows and the signature of its drawing
    (header ``X-Builder-Shown: <view>:<signature>``, set by builder.js), so typing in a
    field costs no layout and no SVG. Without the header both are sent."""
    if state.direction != "TB" and page_direction(request) == "TB":
        state.direction = "TB"  # an edit from a page laid out top to bottom keeps its layout
    graph = graph_of(request, state)
    signature = graph_signature(graph, state.direction)
    view, _, shown = request.headers.get(SHOWN_HEADER, "").partition(":")
    drawn = view if view in VIEWS else "both"
    if shown == signature or view == "yaml":
        drawn = "none"
    return await page(
        request,
        "builder/_refresh.html",
        state=state,
        panel=panel,
        notice=notice,
        status_code=status_code,
        canvas=None if drawn == "none" else canvas_view(request, state, graph),
        drawn=drawn,
        signature=signature,
        # No panel: the element that asked keeps its target as it is.
        headers=None if panel else {"HX-Reswap": "none"},
        **context,
    )
