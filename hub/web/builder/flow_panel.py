"""The builder's flow panel (``?panel=flow``): the flow-level fields.

``name``, ``description``, ``output`` (an expression field), ``priority`` and
``concurrency`` (their shapes and bounds: ``schemas/flow.schema.json``), each with a short
explanation and the server's issues under it. The form posts as one types (debounced) to
``POST {build}/flow``: the fields it sent become one edit of those keys only (an empty
field removes its key), and the answer is out of band only (the issues at the fields, the
canvas, the toolbar), so the field being typed in keeps its focus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.response import Redirect

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.services.workspace import WorkspaceHub
from hub.web.builder.state import (
    BUILD_PATH,
    BuilderState,
    pointer,
    posted_revision,
    refreshed,
    state_for,
)
from hub.web.connections import form_pairs
from hub.web.navigation import is_htmx
from hub.web.pages import WorkspacePage

PANEL = "flow"
PANEL_TEMPLATE = "builder/_panel_flow.html"
LIVE_TEMPLATE = "builder/_flow_live.html"
#: The flow-level fields this panel edits, in the order it shows them.
FIELDS = ("name", "description", "output", "priority", "concurrency")
PRIORITIES = ("high", "default", "low")
LIMITS = {"name": 200, "description": 10_000, "output": 100_000, "priority": 20, "concurrency": 20}
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")


def output_text(value: Any) -> str:
    """The ``output`` as the text field shows it: a string as is, another value as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def read_output(text: str) -> Any:
    """The ``output`` typed: a JSON object or array when the text is one, else the text (an
    expression such as ``{{ steps.fetch.output.body }}``, or any text)."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except ValueError:
            return text
        if isinstance(value, dict | list):
            return value
    return text


def read_field(key: str, text: str) -> Any:
    """A field's value as the document holds it (None: remove the key). A ``concurrency``
    that is not a whole number is kept as typed, for the validation to say what is wrong."""
    if not text.strip():
        return None
    if key == "output":
        return read_output(text)
    if key == "concurrency":
        return int(text.strip()) if _INTEGER.match(text.strip()) else text.strip()
    return text


def flow_ops(document: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The edit that gives the flow-level ``values`` (None: remove the key), those keys only."""
    ops: list[dict[str, Any]] = []
    for key, value in values.items():
        path = pointer(key)
        if value is None:
            if key in document:
                ops.append({"op": "remove", "path": path})
        elif key not in document:
            ops.append({"op": "add", "path": path, "value": value})
        elif document[key] != value or type(document[key]) is not type(value):
            ops.append({"op": "replace", "path": path, "value": value})
    return ops


def flow_errors(state: BuilderState) -> dict[str, list[str]]:
    """The server's issues of each flow-level field (deeper ones name where they are)."""
    out: dict[str, list[str]] = {key: [] for key in FIELDS}
    for key in FIELDS:
        for rest, messages in state.field_errors(None, key).items():
            out[key].extend(messages if not rest else [f"{rest}: {m}" for m in messages])
    return out


def flow_context(state: BuilderState) -> dict[str, Any]:
    """What ``builder/_panel_flow.html`` draws."""
    document = state.document
    concurrency = document.get("concurrency")
    return {
        "flow_values": {
            "name": str(document.get("name") or ""),
            "description": str(document.get("description") or ""),
            "output": output_text(document.get("output")),
            "priority": str(document.get("priority") or ""),
            "concurrency": "" if concurrency is None else str(concurrency),
        },
        "flow_errors": flow_errors(state),
        "priorities": PRIORITIES,
    }


async def flow_panel(state: BuilderState) -> tuple[str, dict[str, Any]]:
    """The flow panel (``?panel=flow``)."""
    return PANEL_TEMPLATE, flow_context(state)


class FlowPanelPages(WorkspacePage):
    """``POST {build}/flow``: the flow-level fields."""

    path = BUILD_PATH

    @post("/flow", name="web_builder_flow", opt=EDITOR, status_code=200)
    async def flow(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
    ) -> Response[Any]:
        """Write the fields the form sent (``name``, ``description``, ``output``,
        ``priority``, ``concurrency``) as one edit; the answer is out of band only."""
        fields = dict(await form_pairs(request))
        values = {
            key: read_field(key, fields[key][: LIMITS[key]]) for key in FIELDS if key in fields
        }
        draft = await ws.draft(flow_id)
        ops = flow_ops(draft.document, values)
        if ops:
            changed = ", ".join(op["path"].lstrip("/") for op in ops)
            draft = await ws.edit_draft(
                flow_id, ops, label=f"flow: {changed}", revision=posted_revision(fields)
            )
        state = await state_for(ws, draft)
        if not is_htmx(request):
            return Redirect(state.href + "?panel=flow", status_code=303)
        return await refreshed(request, state, panel=LIVE_TEMPLATE, **flow_context(state))
