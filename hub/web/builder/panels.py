"""The builder's side panel: which part draws it, for what is selected.

``?step=<id>`` is the step's panel (its form, settings, data and try-it); ``?panel=`` names
another: ``trigger``, ``flow`` (the flow-level fields), ``catalog`` (add a step), ``try``.
Nothing selected: the overview (the flow's summary and what to do next). Each panel is a
template and its context; the parts that own them provide the functions called here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from hub.services.workspace import WorkspaceHub
from hub.web.builder.catalog import catalog_panel
from hub.web.builder.flow_panel import flow_panel
from hub.web.builder.state import BuilderState
from hub.web.builder.step_panel import step_panel
from hub.web.builder.trigger_panel import trigger_panel
from hub.web.builder.tryit import try_panel

#: A panel: the template that draws it, and its context.
Panel = tuple[str, dict[str, Any]]


async def panel_for(
    request: Request[Any, Any, Any],
    ws: WorkspaceHub,
    state: BuilderState,
    *,
    step: str | None,
    panel: str,
) -> Panel:
    """The side panel for the selected ``step`` or the named ``panel``."""
    if step is not None and state.selected == step:
        return await step_panel(request, ws, state, step)
    if panel == "try":
        return "builder/_panel_try.html", await try_panel(ws, state)
    if panel == "catalog":
        return await catalog_panel(request, state)
    if panel == "trigger":
        return await trigger_panel(request, ws, state)
    if panel == "flow":
        return await flow_panel(state)
    return "builder/_panel_overview.html", {}
