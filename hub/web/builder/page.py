"""The builder's page and the edits every part shares: open, edit (a JSON Patch), undo,
redo, save, publish, enable, discard; and the start of a new flow.

``GET .../build`` renders the whole builder (the canvas or the list or the YAML text, the
side panel of the selected step or of the trigger, the toolbar, the issues); an htmx
request aimed at the side panel (``HX-Target: builder-panel``) gets the panel alone, so
selecting a step is one small request. Every edit answers with the regions that show the
document (:func:`hub.web.builder.state.refreshed`).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.flows import FlowError
from hub.services.drafts import Draft, new_flow_document
from hub.services.errors import Conflict, Invalid
from hub.services.workspace import WorkspaceHub
from hub.web.builder.panels import panel_for, refreshed_with_panel
from hub.web.builder.state import (
    BUILD_PATH,
    VIEWS,
    BuilderState,
    StepQuery,
    build_href,
    canvas_view,
    graph_of,
    graph_signature,
    posted_revision,
    read_ops,
    refreshed,
    state_for,
    state_of,
)
from hub.web.builder.yaml_region import yaml_context
from hub.web.flows import FLOW_ID, diff_lines, flow_href
from hub.web.form_checks import form_text
from hub.web.navigation import is_htmx
from hub.web.pages import FORM, WorkspacePage, page, ws_path

PanelQuery = Annotated[str, QueryParameter(max_length=40)]
PANEL_TARGET = "builder-panel"


async def builder_page(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    state: BuilderState,
    *,
    view: str = "canvas",
    panel: str = "",
    notice: str = "",
    status_code: int = 200,
    view_context: dict[str, Any] | None = None,
) -> Template:
    """The whole builder page (or, for an htmx request aimed at the side panel, the
    panel alone). ``view_context``: what the view draws when the caller has it (the YAML
    view's text as typed and its error); else the YAML view's from the draft."""
    panel_template, panel_context = await panel_for(request, ws, state, panel=panel)
    graph = graph_of(request, state)
    if is_htmx(request) and request.headers.get("hx-target") == PANEL_TARGET:
        return await page(request, panel_template, state=state, section="flows", **panel_context)
    if view_context is None and view == "yaml":
        view_context = await yaml_context(ws, state)
    return await page(
        request,
        "builder/page.html",
        section="flows",
        title=f"Build {state.document.get('name') or state.flow_id}",
        state=state,
        canvas=canvas_view(request, state, graph),
        signature=graph_signature(graph, state.direction),
        builder_view=view if view in VIEWS else "canvas",
        panel_template=panel_template,
        notice=notice,
        flow_href=flow_href(state.workspace, state.flow_id),
        status_code=status_code,
        **panel_context,
        **(view_context or {}),
    )


class BuilderPages(WorkspacePage):
    """``/w/{workspace}/flows/{flow_id}/build``: the builder of one flow (editors)."""

    path = BUILD_PATH

    @get("/", name="web_builder", opt=EDITOR)
    async def builder(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step: StepQuery = "",
        panel: PanelQuery = "",
        view: PanelQuery = "canvas",
        direction: PanelQuery = "LR",
    ) -> Template:
        """The builder: the person's draft of the flow (opened from its latest version
        the first time), with ``?step=`` selected or ``?panel=`` open."""
        state = await state_of(ws, flow_id, selected=step or None, direction=direction)
        return await builder_page(request, ws, state, view=view, panel=panel)

    @post("/edit", name="web_builder_edit", opt=EDITOR, status_code=200)
    async def edit(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Apply one edit: ``ops`` (a JSON Patch, as text), ``label`` (what undo will
        name), ``revision`` (the draft's revision the page shows: a stale one from
        another tab is refused), ``select`` (the step to select after it)."""
        try:
            ops = read_ops(form_text(data, "ops", 2_000_000))
        except ValueError as exc:
            raise Invalid(str(exc), [{"location": "ops", "message": str(exc)}]) from None
        label = form_text(data, "label", 200) or "edit"
        draft = await ws.edit_draft(flow_id, ops, label=label, revision=posted_revision(data))
        return await self._answer(request, ws, draft, data)

    async def _answer(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        draft: Draft,
        data: dict[str, Any],
    ) -> Template:
        """The refreshed regions of the draft after an edit, undo or redo, with the step
        ``select`` (in the form) selected and the side panel when the form asks for it
        (``panel``: ``step`` for the selected step's, or a panel's name)."""
        state = await state_for(ws, draft, selected=form_text(data, "select", 100) or None)
        wanted = form_text(data, "panel", 40)
        if not wanted:
            return await refreshed(request, state)
        return await refreshed_with_panel(
            request, ws, state, panel="" if wanted == "step" else wanted
        )

    @post("/undo", name="web_builder_undo", opt=EDITOR, status_code=200)
    async def undo(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Take back the last edit."""
        return await self._answer(request, ws, await ws.undo_draft(flow_id), data)

    @post("/redo", name="web_builder_redo", opt=EDITOR, status_code=200)
    async def redo(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Make again the last edit taken back."""
        return await self._answer(request, ws, await ws.redo_draft(flow_id), data)

    @post("/save", name="web_builder_save", opt=EDITOR, status_code=200)
    async def save(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Save the draft as a version (with the version it started from). Invalid: the
        issues the API gives, each at its field; a version saved since: 409 with the
        diff."""
        message = form_text(data, "message", 2000)
        try:
            saved = await ws.save_draft(flow_id, message=message)
        except FlowError as exc:
            state = await state_of(ws, flow_id)
            return await refreshed(
                request,
                state,
                panel="builder/_save_refused.html",
                refusal=str(exc),
                status_code=422,
            )
        except Conflict as exc:
            if exc.code != "version_conflict":
                raise
            state = await state_of(ws, flow_id)
            details = exc.details or {}
            return await refreshed(
                request,
                state,
                panel="builder/_conflict.html",
                refusal=exc.message,
                changes=details.get("changes", []),
                diff=diff_lines(str(details.get("diff", ""))),
                status_code=409,
            )
        state = await state_of(ws, flow_id)
        notice = (
            f"Saved as version {saved.version}."
            if saved.created
            else f"Nothing changed since version {saved.version}."
        )
        return await refreshed(request, state, notice=notice)

    @post("/publish", name="web_builder_publish", opt=EDITOR, status_code=200)
    async def publish(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
    ) -> Template:
        """Publish the version the draft was last saved as (refused with unsaved
        changes: save first, so that what runs is what was reviewed)."""
        state = await state_of(ws, flow_id)
        if state.draft.dirty or state.draft.base_version is None:
            raise Invalid("save the changes first: publishing publishes a saved version")
        await ws.publish(flow_id, state.draft.base_version)
        notice = f"Version {state.draft.base_version} is published: it runs from now on."
        return await refreshed(request, await state_of(ws, flow_id), notice=notice)

    @post("/enable", name="web_builder_enable", opt=EDITOR, status_code=200)
    async def enable(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Turn the flow's trigger on (``enabled=true``) or off."""
        on = form_text(data, "enabled", 10) == "true"
        await ws.set_enabled(flow_id, on)
        state = await state_of(ws, flow_id)
        notice = "The trigger is on." if on else "The trigger is off."
        return await refreshed(request, state, notice=notice)

    @post("/discard", name="web_builder_discard", opt=EDITOR, status_code=303)
    async def discard(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Response[Any]:
        """Drop the draft: back to the flow's page (or the flows list for a flow never
        saved)."""
        draft = await ws.draft(flow_id)
        await ws.discard_draft(flow_id)
        target = (
            ws_path(ws.workspace, "/flows") if draft.is_new else flow_href(ws.workspace, flow_id)
        )
        if is_htmx(request):
            return Response(b"", status_code=200, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)


class NewFlowPages(WorkspacePage):
    """``/w/{workspace}/flows/_build``: name a new flow, then build it."""

    path = "/w/{workspace:str}/flows/_build"

    @get("/", name="web_builder_new", opt=EDITOR)
    async def new_form(self, request: Request[Any, Any, Any]) -> Template:
        """The form that names a new flow (its id and name)."""
        return await page(
            request, "builder/new.html", section="flows", title="New flow", values={}, errors={}
        )

    @post("/", name="web_builder_start", opt=EDITOR, status_code=303)
    async def start(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, Any], FORM],
    ) -> Response[Any]:
        """Start the draft of a new flow and open it in the builder."""
        flow_id = form_text(data, "id", 100).strip()
        name = form_text(data, "name", 200).strip()
        errors: dict[str, str] = {}
        if not FLOW_ID.fullmatch(flow_id):
            errors["id"] = (
                "use 1 to 100 lowercase letters, digits, - and _, starting with a letter or "
                "digit (it is the flow's address: /hooks/.../<id>)"
            )
        if not errors:
            try:
                await ws.start_draft(new_flow_document(flow_id, name))
            except Conflict as exc:
                errors["id"] = exc.message
        if errors:
            return await page(
                request,
                "builder/new.html",
                section="flows",
                title="New flow",
                values={"id": flow_id, "name": name},
                errors=errors,
                status_code=422,
            )
        return Redirect(build_href(ws.workspace, flow_id), status_code=303)
