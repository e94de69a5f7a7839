"""Flows: create, read, update (a new version), delete, search, versions, diff, publish and
roll back, enable and disable, import and export as YAML, validate."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import ApiError, error_responses, flow_issues, invalid
from hub.api.models import (
    FlowDetail,
    FlowDiff,
    FlowImport,
    FlowPage,
    FlowSave,
    FlowSummary,
    Issue,
    PublishBody,
    Published,
    SavedFlow,
    Validation,
    VersionDetail,
    VersionInfo,
    ts,
)
from hub.flows import FlowError, FlowIssue, diff_documents, parse_document
from hub.flows.bounds import BoundExceeded, DocumentLimits, measure_value
from hub.flows.document import unified_text_diff
from hub.flows.yaml_text import dump_yaml
from hub.services.flows import document_limiter
from hub.services.workspace import WorkspaceHub
from hub.settings import Settings

FlowPath = Annotated[str, PathParameter(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]
Version = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]


def summary(row: dict[str, Any]) -> FlowSummary:
    """A flow row as the API shows it."""
    return FlowSummary(
        id=row["id"],
        name=row["name"],
        enabled=bool(row["enabled"]),
        trigger_type=row["trigger_type"],
        published_version=row["published_version"],
        latest_version=row["latest_version"],
        created_at=ts(row["created_at"]),  # type: ignore[arg-type]
        updated_at=ts(row["updated_at"]),  # type: ignore[arg-type]
    )


def version_info(row: dict[str, Any], published: int | None) -> VersionInfo:
    """A version row as the API shows it."""
    return VersionInfo(
        version=row["version"],
        author=row["author"],
        message=row["message"],
        checksum=row["checksum"],
        created_at=ts(row["created_at"]),  # type: ignore[arg-type]
        published=row["version"] == published,
    )


def to_yaml(document: dict[str, Any]) -> str:
    """A document as block-style YAML, keys in document order, no line ever wrapped (an
    expression stays whole on its line) and ``|`` blocks for multi-line strings."""
    return dump_yaml(document)


# Text longer than this is parsed in a worker thread: about 15 ms of parsing on the event
# loop at most (a 1 MB document takes about a second).
PARSE_INLINE_CHARS = 16_000


async def parse_source(source: str, limits: DocumentLimits) -> dict[str, Any]:
    """``parse_document`` within ``limits``; a long text off the event loop."""
    if len(source) <= PARSE_INLINE_CHARS:
        return parse_document(source, "source", limits)
    return await anyio.to_thread.run_sync(
        parse_document, source, "source", limits, limiter=document_limiter()
    )


async def document_of(
    data: FlowSave | FlowImport, settings: Settings
) -> tuple[dict[str, Any], str]:
    """The document and source text of a save: parsed from ``source`` or given as data.

    Either way the document is held to the settings' document bounds
    (``HUB_MAX_DOCUMENT_*``): text by the bounded parser, data by counting its nodes and
    depth; past a bound is a :class:`FlowError` naming the place and the limit.
    """
    limits = DocumentLimits.from_settings(settings)
    source = data.source or ""
    document = getattr(data, "document", None)
    if document is not None and source:
        raise invalid(
            "give either document or source, not both",
            [{"location": "source", "message": "not allowed together with document"}],
        )
    if document is None:
        if not source:
            raise invalid(
                "a flow needs a document or its source text",
                [{"location": "document", "message": "required (or source)"}],
            )
        document = await parse_source(source, limits)
    else:
        try:
            measure_value(document, limits)
        except BoundExceeded as exc:
            raise FlowError([FlowIssue(exc.location, exc.message)], "document") from None
    if not isinstance(document.get("id"), str):
        raise invalid(
            "the flow has no id", [{"location": "id", "message": "required: a slug, as a string"}]
        )
    return document, source


async def check_document(
    ws: WorkspaceHub, data: FlowSave | FlowImport
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """Read and validate a save without saving it (what ``_validate`` answers, and the web
    UI's editor shows): the document and no issues, or None and every issue with its
    location."""
    try:
        document, _source = await document_of(data, ws.hub.settings)
        await ws.validate(document)
    except FlowError as exc:
        return None, flow_issues(exc)
    except ApiError as exc:
        if exc.status_code != 422:
            raise
        return None, [dict(i) for i in exc.details or []]
    return document, []


async def export_text(ws: WorkspaceHub, flow_id: str, version: int | None = None) -> str:
    """A version as YAML (default: the published one, else the latest): the text it was
    saved from when that was YAML (comments kept), else the document written as YAML."""
    flow = await ws.get_flow(flow_id)
    chosen = version or flow["published_version"] or flow["latest_version"]
    row = await ws.version(flow_id, chosen)
    source: str = row["source"] or ""
    return source if source and not source.lstrip().startswith("{") else to_yaml(row["document"])


def unified_diff(flow_id: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """The unified diff of two versions' documents written as YAML (rows with ``version``
    and ``document``)."""
    return unified_text_diff(
        old["document"],
        new["document"],
        f"{flow_id}@v{old['version']}",
        f"{flow_id}@v{new['version']}",
    )


class FlowsController(Controller):
    """Flows of a workspace; every save is a new immutable version."""

    path = "/api/w/{workspace:str}/flows"
    tags = ["flows"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get(
        "/", name="flows_list", operation_id="flows_list", responses=error_responses(400, 401, 404)
    )
    async def list_flows(
        self,
        ws: NamedDependency[WorkspaceHub],
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        enabled: FromQuery[bool | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> FlowPage:
        """Flows by id; ``q`` searches ids and names; ``cursor`` is the last id seen."""
        rows = await ws.search_flows(q, enabled, cursor, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return FlowPage(
            items=[summary(r) for r in rows], next_cursor=rows[-1]["id"] if more else None
        )

    async def _save(
        self,
        ws: WorkspaceHub,
        data: FlowSave | FlowImport,
        must_exist: bool | None,
        parsed: tuple[dict[str, Any], str] | None = None,
        base_version: int | None = None,
    ) -> tuple[SavedFlow, dict[str, Any]]:
        document, source = parsed or await document_of(data, ws.hub.settings)
        saved = await ws.save_flow(
            document,
            source=source,
            message=data.message,
            publish=data.publish,
            base_version=base_version,
            must_exist=must_exist,
        )
        changes = (
            diff_documents(saved.previous, document)
            if saved.created and saved.previous is not None
            else []
        )
        answer = SavedFlow(
            flow_id=saved.flow_id,
            version=saved.version,
            created=saved.created,
            published=saved.published,
            changes=changes,
        )
        return answer, document

    @post(
        "/",
        name="flows_create",
        operation_id="flows_create",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404, 409, 422),
    )
    async def create_flow(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[FlowSave]
    ) -> SavedFlow:
        """Create a flow from a document or its YAML/JSON text (409 if the id exists)."""
        answer, _doc = await self._save(ws, data, must_exist=False)
        return answer

    @post(
        "/_import",
        name="flows_import",
        operation_id="flows_import",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404, 422),
    )
    async def import_flow(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[FlowImport]
    ) -> SavedFlow:
        """Import YAML (or JSON) text: a new flow, or a new version of the flow it names."""
        answer, _doc = await self._save(ws, data, must_exist=None)
        return answer

    @post(
        "/_validate",
        name="flows_validate",
        operation_id="flows_validate",
        status_code=200,
        responses=error_responses(400, 401, 404),
    )
    async def validate_flow(
        self, ws: NamedDependency[WorkspaceHub], data: JSONBody[FlowSave]
    ) -> Validation:
        """Validate a document without saving it: every issue with its location."""
        _document, issues = await check_document(ws, data)
        return Validation(valid=not issues, issues=[Issue(**i) for i in issues])

    @get(
        "/{flow_id:str}",
        name="flows_get",
        operation_id="flows_get",
        responses=error_responses(400, 401, 404),
    )
    async def get_flow(self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath) -> FlowDetail:
        """A flow with the document of its published version (else its latest)."""
        row = await ws.get_flow(flow_id)
        version = row["published_version"] or row["latest_version"]
        found = await ws.version(flow_id, version)
        return FlowDetail(flow=summary(row), version=version, document=found["document"])

    @put(
        "/{flow_id:str}",
        name="flows_update",
        operation_id="flows_update",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404, 409, 422),
    )
    async def update_flow(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, data: JSONBody[FlowSave]
    ) -> SavedFlow:
        """Save a new version of a flow (nothing new when the document is unchanged).

        With ``base_version`` (the version the edit started from), a save made after
        another version was saved answers 409 ``version_conflict``: nothing is written, and
        the details hold ``base_version``, ``latest_version``, what the newer versions
        changed (``changes``) and the unified diff from the latest to this document
        (``diff``)."""
        parsed = await document_of(data, ws.hub.settings)
        document = parsed[0]
        if document["id"] != flow_id:
            raise invalid(
                f"the document's id {document['id']!r} is not the flow {flow_id!r}",
                [{"location": "id", "message": f"must be {flow_id!r}"}],
            )
        answer, _doc = await self._save(
            ws, data, must_exist=True, parsed=parsed, base_version=data.base_version
        )
        return answer

    @delete(
        "/{flow_id:str}",
        name="flows_delete",
        operation_id="flows_delete",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def delete_flow(self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath) -> None:
        """Delete a flow and its runs: 409 (``runs_active``) while any of its runs has not
        finished (cancel them first).

        In one transaction: the flow, its versions, its runs and their step attempts, its
        triggers' state (a schedule's last tick, a poll's cursor), its webhooks' stored
        keys and the API tokens limited to it. Its schedule, poll or webhook stops at once
        (the webhook answers 404). Runs of other flows it started as sub-flows stay. The
        id can be used again; a flow created with it numbers its versions on from the
        deleted one's last.
        """
        await ws.delete_flow(flow_id)

    @get(
        "/{flow_id:str}/versions",
        name="flows_versions",
        operation_id="flows_versions",
        responses=error_responses(400, 401, 404),
    )
    async def versions(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath
    ) -> list[VersionInfo]:
        """Every version of the flow, newest first."""
        flow = await ws.get_flow(flow_id)
        rows = await ws.versions(flow_id)
        return [version_info(r, flow["published_version"]) for r in rows]

    @get(
        "/{flow_id:str}/versions/{version:int}",
        name="flows_version",
        operation_id="flows_version",
        responses=error_responses(400, 401, 404),
    )
    async def version(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, version: Version
    ) -> VersionDetail:
        """One version with its document and the text it was saved from."""
        flow = await ws.get_flow(flow_id)
        row = await ws.version(flow_id, version)
        return VersionDetail(
            info=version_info(row, flow["published_version"]),
            document=row["document"],
            source=row["source"],
        )

    @get(
        "/{flow_id:str}/diff",
        name="flows_diff",
        operation_id="flows_diff",
        responses=error_responses(400, 401, 404),
    )
    async def diff(
        self,
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        from_version: Annotated[int, QueryParameter(name="from", ge=1, le=2**31 - 1)],
        to_version: Annotated[int | None, QueryParameter(name="to", ge=1, le=2**31 - 1)] = None,
    ) -> FlowDiff:
        """What changed between two versions (``to`` defaults to the latest)."""
        flow = await ws.get_flow(flow_id)
        target = to_version or flow["latest_version"]
        old = await ws.version(flow_id, from_version)
        new = await ws.version(flow_id, target)
        unified = unified_diff(flow_id, old, new)
        return FlowDiff(
            flow_id=flow_id,
            from_version=from_version,
            to_version=target,
            changes=diff_documents(old["document"], new["document"]),
            unified=unified,
        )

    @post(
        "/{flow_id:str}/publish",
        name="flows_publish",
        operation_id="flows_publish",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404),
    )
    async def publish(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, data: JSONBody[PublishBody]
    ) -> Published:
        """Publish a version (default: the latest); triggers use the published version."""
        flow = await ws.get_flow(flow_id)
        version, previous = await ws.publish(flow_id, data.version or flow["latest_version"])
        return Published(flow_id=flow_id, published_version=version, previous_version=previous)

    @post(
        "/{flow_id:str}/rollback",
        name="flows_rollback",
        operation_id="flows_rollback",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 409),
    )
    async def rollback(
        self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath, data: JSONBody[PublishBody]
    ) -> Published:
        """Publish an older version (default: the one before the published one)."""
        version, previous = await ws.rollback(flow_id, data.version)
        return Published(flow_id=flow_id, published_version=version, previous_version=previous)

    @post(
        "/{flow_id:str}/enable",
        name="flows_enable",
        operation_id="flows_enable",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404),
    )
    async def enable(self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath) -> FlowSummary:
        """Turn the flow's trigger on."""
        return summary(await ws.set_enabled(flow_id, True))

    @post(
        "/{flow_id:str}/disable",
        name="flows_disable",
        operation_id="flows_disable",
        opt=EDITOR,
        status_code=200,
        responses=error_responses(400, 401, 403, 404),
    )
    async def disable(self, ws: NamedDependency[WorkspaceHub], flow_id: FlowPath) -> FlowSummary:
        """Turn the flow's trigger off (manual runs still work)."""
        return summary(await ws.set_enabled(flow_id, False))

    @get(
        "/{flow_id:str}/export",
        name="flows_export",
        operation_id="flows_export",
        media_type="application/yaml",
        responses={
            200: ResponseSpec(
                dict[str, Any],
                media_type="application/yaml",
                description="The flow document, as YAML",
                generate_examples=False,
            ),
            **error_responses(400, 401, 404),
        },
    )
    async def export(
        self,
        ws: NamedDependency[WorkspaceHub],
        flow_id: FlowPath,
        version: Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1)] = None,
    ) -> Response[str]:
        """A version as YAML (default: the published one, else the latest).

        The text it was saved from is returned as is when it was YAML (comments kept).
        """
        text = await export_text(ws, flow_id, version)
        return Response(
            text,
            media_type="application/yaml",
            headers={"content-disposition": f'attachment; filename="{flow_id}.yaml"'},
        )
