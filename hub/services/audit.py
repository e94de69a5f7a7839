"""Reading a workspace's audit log (the services write it, each change in its transaction)."""

from __future__ import annotations

from typing import Any

from hub.db import audit
from hub.services.base import WorkspaceScope


class AuditService(WorkspaceScope):
    """The audit log of the workspace."""

    async def audit_page(
        self,
        *,
        before_id: int | None,
        action: str | None,
        target: str | None,
        limit: int,
        after_id: int | None = None,
        actor: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first, keyset-paginated on the entry id: older than
        ``before_id``, or (a page back) the ``limit`` just newer than ``after_id``; filtered
        by exact ``action``, ``target``, ``actor`` and by time (``since`` <= at < ``until``,
        epoch microseconds)."""
        return await self.hub.db.read(
            lambda c: audit.list_audit(
                c,
                self.workspace,
                before_id=before_id,
                after_id=after_id,
                action=action,
                target=target,
                actor=actor,
                since=since,
                until=until,
                limit=limit,
            )
        )
