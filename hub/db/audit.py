"""The audit log: who did what to which thing, written in the transaction of the change."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, select

from hub.db.models import AuditEntry, now_us

audit_log = cast(Table, AuditEntry.__table__)


def record(
    conn: Connection,
    workspace_id: str,
    actor: str,
    action: str,
    target: str,
    details: Any = None,
) -> None:
    """Append an entry: ``actor`` did ``action`` to ``target``.

    The actor is a person's email (the API), ``cli:<OS user>`` (the CLI), ``system`` (code
    holding a :class:`hub.runtime.Hub`) or ``hub`` (the first owner, made at first start).

    Run it in the transaction of the change it records, so neither exists without the other.
    ``details`` must never hold a secret value (names of secret fields are fine).
    """
    conn.execute(
        audit_log.insert().values(
            workspace_id=workspace_id,
            actor=actor,
            action=action,
            target=target,
            details=details,
            at=now_us(),
        )
    )


def list_audit(
    conn: Connection,
    workspace_id: str,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    action: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Audit entries of a workspace, newest first, keyset-paginated on the entry id: those
    older than ``before_id``, or the ``limit`` just newer than ``after_id`` (a page back);
    filtered by exact ``action``, ``target`` and ``actor``, and by time (``since`` <= at <
    ``until``, epoch microseconds)."""
    stmt = select(audit_log).where(audit_log.c.workspace_id == workspace_id)
    if before_id is not None:
        stmt = stmt.where(audit_log.c.id < before_id)
    if after_id is not None:
        stmt = stmt.where(audit_log.c.id > after_id)
    if action:
        stmt = stmt.where(audit_log.c.action == action)
    if target:
        stmt = stmt.where(audit_log.c.target == target)
    if actor:
        stmt = stmt.where(audit_log.c.actor == actor)
    if since is not None:
        stmt = stmt.where(audit_log.c.at >= since)
    if until is not None:
        stmt = stmt.where(audit_log.c.at < until)
    if after_id is not None and before_id is None:
        stmt = stmt.order_by(audit_log.c.id.asc()).limit(limit)
        return [dict(r._mapping) for r in reversed(conn.execute(stmt).all())]
    stmt = stmt.order_by(audit_log.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]
