"""The audit log: who changed flows, connections, members and tokens, and ran what."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from hub.api.deps import EDITOR, SECURITY, WORKSPACE_DEPENDENCIES, workspace_guard
from hub.api.errors import error_responses
from hub.api.models import AuditItem, AuditPage, ts
from hub.services.workspace import WorkspaceHub


class AuditController(Controller):
    """The workspace's audit log, newest first (editors and owners)."""

    path = "/api/w/{workspace:str}/audit"
    tags = ["audit"]
    security = SECURITY
    guards = [workspace_guard]
    dependencies = WORKSPACE_DEPENDENCIES

    @get(
        "/",
        name="audit_list",
        operation_id="audit_list",
        opt=EDITOR,
        responses=error_responses(400, 401, 403, 404),
    )
    async def list_audit(
        self,
        ws: NamedDependency[WorkspaceHub],
        action: Annotated[str | None, QueryParameter(max_length=100)] = None,
        target: Annotated[str | None, QueryParameter(max_length=300)] = None,
        cursor: Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> AuditPage:
        """Entries, filtered by action (``flow.publish``) or target (a flow id, a
        connection name, an email); pass ``next_cursor`` back as ``cursor``."""
        before = int(cursor) if cursor else None
        rows = await ws.audit_page(before_id=before, action=action, target=target, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            AuditItem(
                id=r["id"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                details=r["details"],
                at=ts(r["at"]),  # type: ignore[arg-type]
            )
            for r in rows
        ]
        return AuditPage(items=items, next_cursor=str(rows[-1]["id"]) if more else None)
