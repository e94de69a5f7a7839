"""The Flows pages: the list, a flow's page, the YAML editor, import, export, enable and
disable, versions (diff, publish, roll back) and delete with confirmation.

Everything goes through the workspace services and the API's own helpers (the validation
that ``POST /flows/_validate`` answers, the export of ``GET /flows/{id}/export``, the diff of
``GET /flows/{id}/diff``), so the pages and the API cannot disagree. Writes are for editors
(the handler's ``opt``): a viewer sees no control that writes, and a forged write answers
403 like the API's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template

from hub.api.deps import EDITOR
from hub.api.flows import FlowPath, check_document, export_text, unified_diff
from hub.api.models import FlowImport, FlowSave
from hub.services import links
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.workspace import WorkspaceHub
from hub.web.flow_lines import locate
from hub.web.form_checks import form_text
from hub.web.navigation import is_htmx
from hub.web.pages import FORM, WorkspacePage, page, query_link, ws_path

FLOW_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
PER_PAGE = 50
RECENT_RUNS = 10
FIRE_TIMES = 5
MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
VersionQuery = Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1)]

STARTER = """\
id: my-flow
name: My flow
trigger:
  type: manual
steps:
  - id: hello
    action: data.set
    input:
      value: "Hello {{ trigger.name }}"
"""


def flow_href(workspace: str, flow_id: str, tail: str = "") -> str:
    """The address of a flow's page (or one of its actions)."""
    return ws_path(workspace, f"/flows/{quote(flow_id, safe='')}{tail}")


def diff_lines(unified: str) -> list[tuple[str, str]]:
    """The lines of a unified diff, each with its class: ``file``, ``hunk``, ``add``,
    ``del`` or ``""`` (context)."""
    lines: list[tuple[str, str]] = []
    for line in unified.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = ""
        lines.append((kind, line))
    return lines


async def checked(
    ws: WorkspaceHub, data: FlowSave | FlowImport, text: str, flow_id: str = ""
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The document of a text and no issues, or None and every issue at its line; when
    ``flow_id`` is given the document must be that flow."""
    document, issues = await check_document(ws, data)
    if document is not None and flow_id and document.get("id") != flow_id:
        issues = [{"location": "id", "message": f"must be {flow_id!r} (this flow's id)"}]
        document = None
    return document, locate(text, issues)


class FlowPages(WorkspacePage):
    """``/w/{workspace}/flows``: the list, a flow's page, and what changes flows."""

    path = "/w/{workspace:str}/flows"

    # -- the list ----------------------------------------------------------------------------

    @get("/", name="web_flows")
    async def index(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        q: Annotated[str, QueryParameter(max_length=200)] = "",
        page_number: Annotated[int, QueryParameter(name="page", ge=1, le=1_000_000)] = 1,
        deleted: Annotated[str, QueryParameter(max_length=100)] = "",
    ) -> Template:
        """Flows by id, 50 a page, searched by id or name (``?q=``, a shareable link), each
        with its state, trigger, last run and the counts of its runs of the last 7 days
        (one grouped query for the page)."""
        search = q.strip()
        rows, total = await ws.flows_page(search or None, page=page_number, per_page=PER_PAGE)
        stats = await ws.run_stats([row["id"] for row in rows])
        pages = max(1, -(-total // PER_PAGE))

        def page_link(number: int) -> str:
            return query_link({"q": search, "page": str(number) if number > 1 else ""})

        return await page(
            request,
            "pages/flows/list.html",
            section="flows",
            title="Flows",
            flows=rows,
            stats=stats,
            q=search,
            total=total,
            page_number=page_number,
            pages=pages,
            first_index=(page_number - 1) * PER_PAGE + 1,
            previous_href=page_link(page_number - 1) if page_number > 1 else None,
            next_href=page_link(page_number + 1) if page_number < pages else None,
            # Only a flow id (the redirect after a delete) is echoed back as the notice.
            deleted=deleted if FLOW_ID.fullmatch(deleted) else "",
        )

    # -- the YAML editor -----------------------------------------------------------------------

    @get("/_new", name="web_flows_new", opt=EDITOR)
    async def new_flow(self, request: Request[Any, Any, Any]) -> Template:
        """The YAML editor for a new flow (until the builder lands)."""
        return await self._editor(request, STARTER, flow=None)

    @get("/{flow_id:str}/edit", name="web_flows_edit", opt=EDITOR)
    async def edit_flow(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Template:
        """The YAML editor with the flow's latest version."""
        flow = await ws.get_flow(flow_id)
        text = await export_text(ws, flow_id, flow["latest_version"])
        return await self._editor(request, text, flow=flow)

    async def _editor(
        self,
        request: Request[Any, Any, Any],
        text: str,
        *,
        flow: dict[str, Any] | None,
        issues: list[dict[str, Any]] | None = None,
        message: str = "",
        publish: bool = True,
        status_code: int = 200,
    ) -> Template:
        title = f"Edit {flow['name']}" if flow else "New flow"
        return await page(
            request,
            "pages/flows/editor.html",
            section="flows",
            title=title,
            flow=flow,
            source=text,
            issues=issues or [],
            checked=issues is not None,
            message=message,
            publish=publish,
            status_code=status_code,
        )

    @post("/_validate", name="web_flows_validate", opt=EDITOR, status_code=200)
    async def validate(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, Any], FORM],
    ) -> Template:
        """Validate the editor's text (htmx): every issue at its line, or that it is valid;
        the same checks as ``hub flows validate`` and ``POST /flows/_validate``."""
        text = form_text(data, "source", 2_000_000)
        flow_id = form_text(data, "flow", 100)
        _document, issues = await checked(ws, FlowSave(source=text), text, flow_id)
        return await page(
            request, "partials/flows/issues.html", issues=issues, checked=True, section="flows"
        )

    @post("/_save", name="web_flows_save", opt=EDITOR, status_code=303)
    async def save(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, Any], FORM],
    ) -> Response[Any]:
        """Save the editor's text as a new flow (or a new version of the flow being edited);
        an invalid text comes back in the editor with every issue at its line."""
        text = form_text(data, "source", 2_000_000)
        flow_id = form_text(data, "flow", 100)
        message = form_text(data, "message", 2000)
        publish = data.get("publish") == "on"
        flow = await ws.get_flow(flow_id) if flow_id else None
        save = FlowSave(source=text, message=message, publish=publish)
        document, issues = await checked(ws, save, text, flow_id)
        if document is None:
            return await self._editor(
                request,
                text,
                flow=flow,
                issues=issues,
                message=message,
                publish=publish,
                status_code=422,
            )
        try:
            saved = await ws.save_flow(
                document, source=text, message=message, publish=publish, must_exist=bool(flow)
            )
        except (Conflict, NotFound) as exc:
            issue = {"location": "id", "message": exc.message}
            return await self._editor(
                request,
                text,
                flow=flow,
                issues=locate(text, [issue]),
                message=message,
                publish=publish,
                status_code=409 if isinstance(exc, Conflict) else 404,
            )
        return Redirect(flow_href(ws.workspace, saved.flow_id), status_code=303)

    # -- import and export ---------------------------------------------------------------------

    @get("/_import", name="web_flows_import_form", opt=EDITOR)
    async def import_form(self, request: Request[Any, Any, Any]) -> Template:
        """The form to import a YAML or JSON file."""
        return await page(
            request, "pages/flows/import.html", section="flows", title="Import a flow", issues=[]
        )

    @post("/_import", name="web_flows_import", opt=EDITOR, status_code=303)
    async def import_file(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        data: Annotated[dict[str, Any], MULTIPART],
    ) -> Response[Any]:
        """Import a YAML or JSON file: a new flow, or a new version of the flow it names,
        within the same document bounds as the API's import."""
        upload = data.get("file")
        publish = data.get("publish") == "on"
        issues: list[dict[str, Any]] = []
        name = ""
        text = ""
        if not isinstance(upload, UploadFile) or not upload.filename:
            issues = [{"location": "file", "message": "choose a YAML or JSON file", "line": None}]
        else:
            name = upload.filename[:200]
            raw = await upload.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                issues = [
                    {
                        "location": f"byte {exc.start + 1}",
                        "message": "the file is not UTF-8 text",
                        "line": None,
                    }
                ]
        if not issues:
            message = f"imported from {name}"
            document, issues = await checked(ws, FlowImport(source=text, message=message), text)
            if document is not None:
                saved = await ws.save_flow(
                    document, source=text, message=message, publish=publish, must_exist=None
                )
                return Redirect(flow_href(ws.workspace, saved.flow_id), status_code=303)
        return await page(
            request,
            "pages/flows/import.html",
            section="flows",
            title="Import a flow",
            issues=issues,
            file_name=name,
            status_code=422,
        )

    @get("/{flow_id:str}/export", name="web_flows_export")
    async def export(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, version: VersionQuery = None
    ) -> Response[str]:
        """A version as a YAML file (the published one, else the latest, by default)."""
        text = await export_text(ws, flow_id, version)
        return Response(
            text,
            media_type="application/yaml",
            headers={"content-disposition": f'attachment; filename="{flow_id}.yaml"'},
        )

    # -- a flow's page ---------------------------------------------------------------------------

    @get("/{flow_id:str}", name="web_flow")
    async def flow_page(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        from_version: Annotated[int | None, QueryParameter(name="from", ge=1, le=2**31 - 1)] = None,
        to_version: Annotated[int | None, QueryParameter(name="to", ge=1, le=2**31 - 1)] = None,
    ) -> Template:
        """A flow: its state and trigger (webhook URL, next fire times), its versions with a
        diff between any two, its last 7 days and its recent runs; editors can run it now."""
        return await self._flow_page(request, ws, flow_id, from_version, to_version)

    async def _flow_page(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        flow_id: str,
        from_version: int | None = None,
        to_version: int | None = None,
        *,
        run_input: str = "",
        run_error: str = "",
        status_code: int = 200,
    ) -> Template:
        flow = await ws.get_flow(flow_id)
        versions = await ws.versions(flow_id)
        # the published version's document, else the latest's (what ws.flow_document reads,
        # without reading the flow again)
        shown = flow["published_version"] or flow["latest_version"]
        document = dict((await ws.version(flow_id, shown))["document"])
        trigger = document.get("trigger") or {}
        kind = ws.hub.registry.triggers.get(str(trigger.get("type", "")))
        webhook = None
        if kind is not None and kind.kind == "webhook":
            webhook = links.webhook_url(
                ws.hub.settings, ws.workspace, flow_id, str(request.base_url)
            )
        fire_times: list[Any] = []
        schedule_error = ""
        if trigger.get("type") == "schedule":  # (none for other triggers: no reads)
            try:
                fire_times = await ws.next_fire_times(flow_id, FIRE_TIMES)
            except Invalid as exc:
                schedule_error = exc.message
        stats = (await ws.run_stats([flow_id])).get(flow_id, {})
        runs = await ws.runs_page(flow_id=flow_id, limit=RECENT_RUNS)
        diff = None
        if from_version and to_version:
            old = await ws.version(flow_id, from_version)
            new = await ws.version(flow_id, to_version)
            diff = diff_lines(unified_diff(flow_id, old, new))
        latest = flow["latest_version"]
        return await page(
            request,
            "pages/flows/flow.html",
            section="flows",
            title=flow["name"],
            flow=flow,
            versions=versions,
            trigger=trigger,
            webhook=webhook,
            fire_times=fire_times,
            schedule_error=schedule_error,
            stats=stats,
            runs=runs,
            diff=diff,
            from_version=from_version or (latest - 1 if latest > 1 else latest),
            to_version=to_version or latest,
            run_input=run_input,
            run_error=run_error,
            status_code=status_code,
        )

    @post("/{flow_id:str}/run", name="web_flows_run", opt=EDITOR, status_code=303)
    async def run_now(
        self,
        request: Request[Any, Any, Any],
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Response[Any]:
        """Start a run of the published version with the form's JSON as its trigger data
        (``POST /runs`` does the same), then go to the run's page. Bad JSON, or a flow that
        cannot run, comes back on the flow's page with the reason."""
        limit = ws.hub.settings.max_request_bytes
        raw = data.get("input", "")
        text = raw if isinstance(raw, str) else ""
        error = ""
        value: Any = None
        if len(text.encode()) > limit:
            error = f"The trigger data is larger than {limit} bytes."
        elif text.strip():
            try:  # the API's decoder: the same values (no NaN) as POST /runs takes
                value = msgspec.json.decode(text)
            except msgspec.DecodeError as exc:
                reason = str(exc).removeprefix("JSON is malformed: ")
                error = f"The trigger data is not valid JSON: {reason}."
        if not error:
            try:
                run_id = await ws.start_run(flow_id, value)
            except Conflict as exc:
                error = exc.message
            else:
                return Redirect(
                    ws_path(ws.workspace, f"/runs/{quote(run_id, safe='')}"), status_code=303
                )
        return await self._flow_page(
            request,
            ws,
            flow_id,
            run_input=text[:limit],
            run_error=error,
            status_code=422 if error.startswith("The trigger data") else 409,
        )

    @post("/{flow_id:str}/enable", name="web_flows_enable", opt=EDITOR, status_code=200)
    async def enable(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Response[Any]:
        """Turn the flow's trigger on (htmx: the toggle again)."""
        return await self._toggled(request, await ws.set_enabled(flow_id, True))

    @post("/{flow_id:str}/disable", name="web_flows_disable", opt=EDITOR, status_code=200)
    async def disable(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Response[Any]:
        """Turn the flow's trigger off (htmx: the toggle again)."""
        return await self._toggled(request, await ws.set_enabled(flow_id, False))

    async def _toggled(
        self, request: Request[Any, Any, Any], flow: dict[str, Any]
    ) -> Response[Any]:
        if is_htmx(request):
            return await page(request, "partials/flows/toggle.html", flow=flow, section="flows")
        workspace = str(request.path_params["workspace"])
        return Redirect(flow_href(workspace, flow["id"]), status_code=303)

    @post("/{flow_id:str}/publish", name="web_flows_publish", opt=EDITOR, status_code=303)
    async def publish(
        self,
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        data: Annotated[dict[str, Any], FORM],
    ) -> Response[Any]:
        """Publish a version: an older one than the published is a roll back."""
        try:
            version = int(form_text(data, "version", 12))
        except ValueError:
            raise Invalid("choose a version") from None
        flow = await ws.get_flow(flow_id)
        published = flow["published_version"]
        if published is not None and version < published:
            await ws.rollback(flow_id, version)
        else:
            await ws.publish(flow_id, version)
        return Redirect(flow_href(ws.workspace, flow_id), status_code=303)

    # -- delete ----------------------------------------------------------------------------------

    @get("/{flow_id:str}/delete", name="web_flows_delete_confirm", opt=EDITOR)
    async def delete_confirm(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Template:
        """What deleting the flow removes (its runs, how many), and the button that does it."""
        return await self._confirm(request, ws, flow_id)

    async def _confirm(
        self,
        request: Request[Any, Any, Any],
        ws: WorkspaceHub,
        flow_id: str,
        *,
        error: str = "",
        status_code: int = 200,
    ) -> Template:
        flow = await ws.get_flow(flow_id)
        total, active = await ws.run_counts(flow_id)
        return await page(
            request,
            "pages/flows/delete.html",
            section="flows",
            title=f"Delete {flow['name']}",
            flow=flow,
            total=total,
            active=active,
            error=error,
            status_code=status_code,
        )

    @post("/{flow_id:str}/delete", name="web_flows_delete", opt=EDITOR, status_code=303)
    async def delete(
        self, request: Request[Any, Any, Any], ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> Response[Any]:
        """Delete the flow with its versions and runs (refused while a run is unfinished)."""
        try:
            await ws.delete_flow(flow_id)
        except Conflict as exc:
            return await self._confirm(request, ws, flow_id, error=exc.message, status_code=409)
        target = ws_path(ws.workspace, "/flows" + query_link({"deleted": flow_id}))
        return Redirect(target, status_code=303)
