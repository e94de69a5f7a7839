"""The builder's graph commands as routes: what the step panel's "Step commands" section
and the canvas's keys post (:mod:`hub.web.builder.commands` computes each JSON Patch).

- ``GET  {build}/steps/{id}/commands``: the commands section of a step's panel;
- ``POST {build}/steps/{id}/delete``, ``/duplicate``, ``/rename`` (``new_id``);
- ``POST {build}/steps/{id}/needs``: ``connect=<upstream>`` or ``disconnect=<upstream>``;
- ``POST {build}/steps/{id}/on-error``: ``handler=<step>`` (empty: no handler);
- ``POST {build}/steps/{id}/move``: ``offset`` -1 (up) or 1 (down), ``mode``: empty asks
  first when the move changes a step's needs (the confirmation lists the changes), ``move``
  moves, ``keep`` moves and writes explicit needs so that nothing changes meaning.

Each command is one edit of the draft (one undo entry) and answers, like every edit, the
refreshed regions with the side panel of the step to select after it. A refused command
answers 422 with the commands section and the reason, swapped in place of the section
(``HX-Retarget``), and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Template

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.services.workspace import WorkspaceHub
from hub.web.builder import commands
from hub.web.builder.commands import CommandError, Ops
from hub.web.builder.panels import refreshed_with_panel
from hub.web.builder.state import (
    BUILD_PATH,
    DIRECTIONS,
    BuilderState,
    StepPath,
    posted_revision,
    state_for,
    state_of,
    step_ids,
    step_of,
)
from hub.web.form_checks import form_text
from hub.web.pages import FORM, WorkspacePage, page

#: The fragment of the commands section (also the answer to a refused command).
COMMANDS_TEMPLATE = "builder/_step_commands.html"
MOVE_TEMPLATE = "builder/_move_confirm.html"
#: A command computed on the document: its JSON Patch, the label undo names, the step to
#: select after it (None: the overview).
Command = tuple[Ops, str, str | None]


def commands_context(state: BuilderState, step_id: str) -> dict[str, Any]:
    """What ``_step_commands.html`` reads for ``step_id``: its resolved needs (and whether
    they are implicit), the steps it may connect from, its handler and the candidates."""
    wiring = commands.wiring(state.document)
    step = step_of(state.document, step_id)
    needs = wiring.needs.get(step_id, ())
    ids = [s for s in step_ids(state.document) if s and s in wiring.needs]
    on_error = step.get("on_error") if step else None
    handler = on_error if isinstance(on_error, str) and on_error in wiring.needs else ""
    return {
        "step_id": step_id,
        "step_exists": step is not None,
        "step_needs": needs,
        "needs_implicit": step is not None and "needs" not in step,
        "is_handler": wiring.is_handler(step_id),
        "handles": wiring.handles.get(step_id, []),
        "connect_choices": [
            s for s in ids if s != step_id and s not in needs and not wiring.is_handler(s)
        ],
        "handler": handler,
        "handler_choices": [
            s for s in commands.handler_choices(state.document, step_id) if s in wiring.needs
        ],
    }


def _direction(request: Request[Any, Any, Any], data: dict[str, Any] | None = None) -> str:
    wanted = form_text(data or {}, "direction", 2) or request.query_params.get("direction", "")
    return wanted if wanted in DIRECTIONS else "LR"


class CommandPages(WorkspacePage):
    """The graph commands on a flow's builder (editors)."""

    path = BUILD_PATH

    @get("/steps/{step_id:str}/commands", name="web_builder_step_commands", opt=EDITOR)
    async def commands_section(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
    ) -> Template:
        """The "Step commands" section of the step's panel."""
        state = await state_of(ws, flow_id, selected=step_id)
        return await page(
            request, COMMANDS_TEMPLATE, state=state, **commands_context(state, step_id)
        )

    async def _edit(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        flow_id: str,
        data: dict[str, Any],
        ops: Ops,
        *,
        label: str,
        select: str | None,
    ) -> Template:
        """Apply one command's ops (one undo entry) and answer the refreshed regions with
        the side panel of ``select`` (the overview when None), rendered after the edit."""
        draft = await ws.edit_draft(flow_id, ops, label=label, revision=posted_revision(data))
        state = await state_for(ws, draft, selected=select, direction=_direction(request, data))
        return await refreshed_with_panel(request, ws, state)

    async def _command(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        flow_id: str,
        step_id: str,
        data: dict[str, Any],
        command: Callable[[dict[str, Any]], Command],
    ) -> Template:
        """Compute a command on the draft's document (``command``: its ops, the label undo
        names and the step to select after it) and apply it (:meth:`_edit`); a command
        refused (:class:`CommandError`) answers :meth:`_refused`."""
        document = (await ws.draft(flow_id)).document
        try:
            ops, label, select = command(document)
        except CommandError as exc:
            return await self._refused(request, ws, flow_id, step_id, exc, data)
        return await self._edit(request, ws, flow_id, data, ops, label=label, select=select)

    async def _refused(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        flow_id: str,
        step_id: str,
        error: CommandError,
        data: dict[str, Any] | None = None,
    ) -> Template:
        """The commands section with the reason, swapped in place of the section (with
        what was asked for still in its field)."""
        state = await state_of(ws, flow_id, selected=step_id)
        return await page(
            request,
            COMMANDS_TEMPLATE,
            state=state,
            command_error=str(error),
            attempt={k: form_text(data or {}, k, 100) for k in ("new_id", "connect", "handler")},
            status_code=422,
            headers={"HX-Retarget": "#step-commands", "HX-Reswap": "outerHTML"},
            **commands_context(state, step_id),
        )

    @post(
        "/steps/{step_id:str}/delete", name="web_builder_step_delete", opt=EDITOR, status_code=200
    )
    async def delete(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Delete the step (its dependents keep a connected chain); the step that took its
        place is selected (the one before it when it was the last)."""

        def delete(document: dict[str, Any]) -> Command:
            ops = commands.delete_step(document, step_id)
            ids = [s for s in step_ids(document) if s]
            at = ids.index(step_id)
            rest = ids[:at] + ids[at + 1 :]
            select = rest[min(at, len(rest) - 1)] if rest else None
            return ops, f"delete step {step_id}", select

        return await self._command(request, ws, flow_id, step_id, data, delete)

    @post(
        "/steps/{step_id:str}/duplicate",
        name="web_builder_step_duplicate",
        opt=EDITOR,
        status_code=200,
    )
    async def duplicate(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Copy the step (a new id, right after it, on a branch of its own); the copy is
        selected."""

        def duplicate(document: dict[str, Any]) -> Command:
            ops, new_id = commands.duplicate_step(document, step_id)
            return ops, f"duplicate step {step_id}", new_id

        return await self._command(request, ws, flow_id, step_id, data, duplicate)

    @post(
        "/steps/{step_id:str}/rename", name="web_builder_step_rename", opt=EDITOR, status_code=200
    )
    async def rename(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Give the step a new id (``new_id``), updating every reference to it."""
        new_id = form_text(data, "new_id", 100).strip()

        def rename(document: dict[str, Any]) -> Command:
            ops = commands.rename_step(document, step_id, new_id)
            return ops, f"rename step {step_id} to {new_id}", new_id

        return await self._command(request, ws, flow_id, step_id, data, rename)

    @post("/steps/{step_id:str}/needs", name="web_builder_step_needs", opt=EDITOR, status_code=200)
    async def needs(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Connect the step from ``connect`` (it will need it), or disconnect it from
        ``disconnect``."""
        source = form_text(data, "connect", 100)
        gone = form_text(data, "disconnect", 100)

        def needs(document: dict[str, Any]) -> Command:
            if source:
                ops = commands.connect(document, source, step_id)
                return ops, f"connect {step_id} from {source}", step_id
            if gone:
                ops = commands.disconnect(document, gone, step_id)
                return ops, f"disconnect {step_id} from {gone}", step_id
            raise CommandError("choose a step to connect from")

        return await self._command(request, ws, flow_id, step_id, data, needs)

    @post(
        "/steps/{step_id:str}/on-error",
        name="web_builder_step_on_error",
        opt=EDITOR,
        status_code=200,
    )
    async def on_error(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Make ``handler`` the step's error handler (empty: take its handler away)."""
        handler = form_text(data, "handler", 100)

        def on_error(document: dict[str, Any]) -> Command:
            if handler:
                ops = commands.set_handler(document, step_id, handler)
                return ops, f"handle errors of {step_id} with {handler}", step_id
            ops = commands.remove_handler(document, step_id)
            return ops, f"remove the error handler of {step_id}", step_id

        return await self._command(request, ws, flow_id, step_id, data, on_error)

    @post("/steps/{step_id:str}/move", name="web_builder_step_move", opt=EDITOR, status_code=200)
    async def move(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        step_id: StepPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Move the step one place up (``offset=-1``) or down (``1``) in the list: asks
        first (``mode`` empty) when that changes which step a step needs."""
        offset = -1 if form_text(data, "offset", 3) == "-1" else 1
        mode = form_text(data, "mode", 10)
        draft = await ws.draft(flow_id)
        try:
            changes = commands.move_changes(draft.document, step_id, offset)
            if changes and mode not in ("move", "keep"):
                state = await state_for(ws, draft, selected=step_id)
                ids = [s for s in step_ids(draft.document) if s]
                neighbour = ids[ids.index(step_id) + offset]
                return await page(
                    request,
                    MOVE_TEMPLATE,
                    state=state,
                    step_id=step_id,
                    neighbour=neighbour,
                    offset=offset,
                    changes=changes,
                )
            ops = commands.move_step(draft.document, step_id, offset, keep=mode == "keep")
        except CommandError as exc:  # a list older than the draft: the step's panel again
            state = await state_of(ws, flow_id, selected=step_id)
            return await refreshed_with_panel(request, ws, state, notice=str(exc), status_code=422)
        where = "up" if offset < 0 else "down"
        return await self._edit(
            request, ws, flow_id, data, ops, label=f"move step {step_id} {where}", select=step_id
        )
