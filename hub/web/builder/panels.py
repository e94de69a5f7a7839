"""The builder's side panel: which part draws it, for what is selected.

``?step=<id>`` is the step's panel (its form, settings, data and try-it); ``?panel=`` names
another: ``trigger``, ``flow`` (the flow-level fields), ``catalog`` (add a step), ``try``.
Nothing selected: the overview (the flow's summary and what to do next). Each panel is a
template and its context; the parts that own them provide the functions called here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from hub.services.workspace import WorkspaceHub
from hub.web.builder import catalog, flow_panel, trigger_panel, tryit
from hub.web.builder.state import BuilderState, refreshed
from hub.web.builder.step_panel import step_panel

#: A panel: the template that draws it, and its context.
Panel = tuple[str, dict[str, Any]]


async def panel_for(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    state: BuilderState,
    *,
    panel: str = "",
) -> Panel:
    """The side panel of the selected step (``state.selected``), else the one named
    ``panel``, else the overview."""
    if state.selected is not None:
        return await step_panel(request, ws, state, state.selected)
    if panel == tryit.PANEL:
        return await tryit.try_panel(ws, state)
    if panel == catalog.PANEL:
        return await catalog.catalog_panel(request, state)
    if panel == trigger_panel.PANEL:
        return await trigger_panel.trigger_panel(request, ws, state)
    if panel == flow_panel.PANEL:
        return await flow_panel.flow_panel(state)
    return "builder/_panel_overview.html", {}


async def refreshed_with_panel(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    state: BuilderState,
    *,
    panel: str = "",
    notice: str = "",
    status_code: int = 200,
) -> Template:
    """The answer to an edit (:func:`hub.web.builder.state.refreshed`) with the side panel
    drawn anew for the draft after it (:func:`panel_for`)."""
    template, context = await panel_for(request, ws, state, panel=panel)
    return await refreshed(
        request, state, panel=template, notice=notice, status_code=status_code, **context
    )
