"""The builder's YAML view (``?view=yaml``): the draft as text, edited as text.

``POST {build}/yaml`` (form field ``text``) makes the text the draft
(:meth:`~hub.services.drafts.DraftsService.replace_draft_text`: read with the hub's bounded
reader, kept as typed, one undo entry). Text that does not read as a flow document of this
flow is refused with its line and changes nothing: the answer is the status under the
editor with the error (htmx), or the YAML view again with the text as typed and the error
(a plain form post). Valid text answers with the refreshed regions (toolbar, issues) and
the status (the document's validation issues at their lines). ``GET {build}/yaml`` gives
the region anew (the page asks for it when an edit from elsewhere, such as Undo, changed
the document the editor shows).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath
from hub.services.errors import Conflict, Invalid
from hub.services.workspace import WorkspaceHub
from hub.web.builder.page import builder_page
from hub.web.builder.state import BUILD_PATH, posted_revision, refreshed, state_for, state_of
from hub.web.builder.yaml_region import STATUS_TEMPLATE, yaml_context, yaml_status
from hub.web.navigation import is_htmx
from hub.web.pages import FORM, WorkspacePage, page

#: The longest text the YAML view takes (the document's own bounds apply when it is read).
TEXT_LIMIT = 2_000_000
REGION_TEMPLATE = "builder/_yaml.html"


def posted_text(data: dict[str, Any]) -> str:
    """The form's ``text``; :class:`Invalid` when it is longer than :data:`TEXT_LIMIT`
    (never cut: a cut text could read as another document)."""
    value = data.get("text", "")
    text = value if isinstance(value, str) else ""
    if len(text) > TEXT_LIMIT:
        message = f"the text is longer than {TEXT_LIMIT:,} characters"
        raise Invalid(message, [{"location": "", "message": message}])
    return text


class YamlPages(WorkspacePage):
    """``{build}/yaml``: the YAML view's text, read and written."""

    path = BUILD_PATH

    @get("/yaml", name="web_builder_yaml", opt=EDITOR)
    async def region(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
    ) -> Response[Any]:
        """The YAML view's region (htmx), with the draft's text; a browser is sent to the
        builder's YAML view."""
        state = await state_of(ws, flow_id)
        if not is_htmx(request):
            return Redirect(state.href + "?view=yaml", status_code=303)
        context = await yaml_context(ws, state)
        return await page(request, REGION_TEMPLATE, section="flows", state=state, **context)

    @post("/yaml", name="web_builder_yaml_text", opt=EDITOR, status_code=200)
    async def write(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Response[Any]:
        """Make the posted ``text`` the draft (``revision``: the draft's revision the page
        shows; a stale one is refused). Refused text: 422 (409 for a stale page) with the
        error at its line, the draft unchanged."""
        text = ""
        try:
            text = posted_text(data)
            revision = posted_revision(data)
            draft = await ws.replace_draft_text(flow_id, text, revision=revision)
        except (Invalid, Conflict) as exc:
            refusal = exc if isinstance(exc, Invalid) else Invalid(exc.message)
            status = 409 if isinstance(exc, Conflict) else 422
            state = await state_of(ws, flow_id)
            if not is_htmx(request):
                context = await yaml_context(ws, state, text=text, error=refusal)
                return await builder_page(
                    request, ws, state, view="yaml", status_code=status, view_context=context
                )
            return await refreshed(
                request,
                state,
                panel=STATUS_TEMPLATE,
                status_code=status,
                **yaml_status(state, text, refusal),
            )
        state = await state_for(ws, draft)
        if not is_htmx(request):
            return Redirect(state.href + "?view=yaml", status_code=303)
        return await refreshed(request, state, panel=STATUS_TEMPLATE, **yaml_status(state, text))
