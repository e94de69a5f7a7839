"""Flows and their versions: saving, publishing, searching, reading documents.

Each function is a synchronous function of a SQLAlchemy ``Connection``, run in a
transaction by :class:`hub.db.database.Database`. The faces reach them through the
workspace services (:mod:`hub.services`); the engine and the triggers read published
documents here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, or_, select, update

from hub.db.models import flow_versions, flows, now_us


def checksum(document: dict[str, Any]) -> str:
    """A stable checksum of a flow document (key order does not matter)."""
    return hashlib.sha256(msgspec.json.encode(document, order="sorted")).hexdigest()


@dataclasses.dataclass
class SavedVersion:
    """The result of saving a flow document."""

    flow_id: str
    version: int
    created: bool
    published: bool
    previous: dict[str, Any] | None


def _insert_flow(conn: Connection, workspace_id: str, document: dict[str, Any], now: int) -> None:
    """The row of a new flow, enabled, with no version yet."""
    flow_id = document["id"]
    conn.execute(
        flows.insert().values(
            workspace_id=workspace_id,
            id=flow_id,
            name=document.get("name") or flow_id,
            enabled=True,
            trigger_type=(document.get("trigger") or {}).get("type", "manual"),
            published_version=None,
            latest_version=0,
            created_at=now,
            updated_at=now,
        )
    )


def save_version(
    conn: Connection,
    workspace_id: str,
    document: dict[str, Any],
    *,
    source: str = "",
    author: str = "",
    message: str = "",
    publish: bool = False,
) -> SavedVersion:
    """Save a document as a new version unless it equals the latest; optionally publish it."""
    flow_id = document["id"]
    now = now_us()
    digest = checksum(document)
    flow = conn.execute(
        select(flows).where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
    ).first()
    previous = None
    if flow is None:
        _insert_flow(conn, workspace_id, document, now)
        latest = 0
    else:
        latest = flow.latest_version
        last = conn.execute(
            select(flow_versions.c.document, flow_versions.c.checksum).where(
                flow_versions.c.workspace_id == workspace_id,
                flow_versions.c.flow_id == flow_id,
                flow_versions.c.version == latest,
            )
        ).first()
        if last is not None:
            previous = last.document
            if flow.published_version not in (None, latest):
                # A deploy compares with what runs now: the published version.
                previous = version_document(conn, workspace_id, flow_id, flow.published_version)
            if last.checksum == digest:
                published = False
                if publish and flow.published_version != latest:
                    publish_version(conn, workspace_id, flow_id, latest)
                    published = True
                return SavedVersion(flow_id, latest, False, published, previous)
    version = latest + 1
    conn.execute(
        flow_versions.insert().values(
            workspace_id=workspace_id,
            flow_id=flow_id,
            version=version,
            document=document,
            source=source,
            checksum=digest,
            author=author,
            message=message,
            created_at=now,
        )
    )
    values: dict[str, Any] = {
        "latest_version": version,
        "updated_at": now,
        "name": document.get("name") or flow_id,
        "trigger_type": (document.get("trigger") or {}).get("type", "manual"),
    }
    if publish:
        values["published_version"] = version
    conn.execute(
        update(flows)
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(**values)
    )
    return SavedVersion(flow_id, version, True, publish, previous)


def publish_version(conn: Connection, workspace_id: str, flow_id: str, version: int) -> None:
    """Make ``version`` the published one (a roll back is publishing an older version)."""
    exists = conn.execute(
        select(flow_versions.c.version).where(
            flow_versions.c.workspace_id == workspace_id,
            flow_versions.c.flow_id == flow_id,
            flow_versions.c.version == version,
        )
    ).first()
    if exists is None:
        raise LookupError(f"flow {flow_id!r} has no version {version}")
    conn.execute(
        update(flows)
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(published_version=version, updated_at=now_us())
    )


def published_version(conn: Connection, workspace_id: str, flow_id: str) -> int | None:
    """The published version of a flow, or None."""
    return conn.execute(
        select(flows.c.published_version).where(
            flows.c.workspace_id == workspace_id, flows.c.id == flow_id
        )
    ).scalar()


def version_document(
    conn: Connection, workspace_id: str, flow_id: str, version: int
) -> dict[str, Any] | None:
    """The document of one version."""
    return conn.execute(
        select(flow_versions.c.document).where(
            flow_versions.c.workspace_id == workspace_id,
            flow_versions.c.flow_id == flow_id,
            flow_versions.c.version == version,
        )
    ).scalar()


def list_flows(conn: Connection, workspace_id: str) -> list[dict[str, Any]]:
    """Every flow of a workspace with its versions and trigger type."""
    rows = conn.execute(
        select(flows).where(flows.c.workspace_id == workspace_id).order_by(flows.c.id)
    )
    return [dict(r._mapping) for r in rows]


def get_flow(conn: Connection, workspace_id: str, flow_id: str) -> dict[str, Any] | None:
    """One flow's row."""
    row = conn.execute(
        select(flows).where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
    ).first()
    return None if row is None else dict(row._mapping)


def published_document(
    conn: Connection, workspace_id: str, flow_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The published version and document of an enabled flow, or None."""
    row = conn.execute(
        select(flows.c.published_version, flow_versions.c.document)
        .join(
            flow_versions,
            and_(
                flow_versions.c.workspace_id == flows.c.workspace_id,
                flow_versions.c.flow_id == flows.c.id,
                flow_versions.c.version == flows.c.published_version,
            ),
        )
        .where(
            flows.c.workspace_id == workspace_id,
            flows.c.id == flow_id,
            flows.c.enabled.is_(True),
        )
    ).first()
    return None if row is None else (row.published_version, row.document)


def published_flows(conn: Connection) -> list[dict[str, Any]]:
    """Every enabled flow with a published version, in every workspace (for triggers)."""
    rows = conn.execute(
        select(
            flows.c.workspace_id,
            flows.c.id,
            flows.c.published_version,
            flow_versions.c.document,
        )
        .join(
            flow_versions,
            and_(
                flow_versions.c.workspace_id == flows.c.workspace_id,
                flow_versions.c.flow_id == flows.c.id,
                flow_versions.c.version == flows.c.published_version,
            ),
        )
        .where(flows.c.enabled.is_(True))
    )
    return [dict(r._mapping) for r in rows]


def search_flows(
    conn: Connection,
    workspace_id: str,
    *,
    q: str | None = None,
    enabled: bool | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Flows of a workspace by id; ``q`` matches the id or name (case-insensitive)."""
    stmt = select(flows).where(flows.c.workspace_id == workspace_id)
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        stmt = stmt.where(
            or_(
                flows.c.id.like(pattern, escape="\\"),
                flows.c.name.ilike(pattern, escape="\\"),
            )
        )
    if enabled is not None:
        stmt = stmt.where(flows.c.enabled.is_(enabled))
    if after:
        stmt = stmt.where(flows.c.id > after)
    stmt = stmt.order_by(flows.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def set_flow_enabled(conn: Connection, workspace_id: str, flow_id: str, enabled: bool) -> bool:
    """Enable or disable a flow's triggers; False when there is no such flow."""
    changed = conn.execute(
        update(flows)
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(enabled=enabled, updated_at=now_us())
    ).rowcount
    return bool(changed)


def list_versions(conn: Connection, workspace_id: str, flow_id: str) -> list[dict[str, Any]]:
    """Every version of a flow, newest first, without the documents."""
    rows = conn.execute(
        select(
            flow_versions.c.version,
            flow_versions.c.author,
            flow_versions.c.message,
            flow_versions.c.checksum,
            flow_versions.c.created_at,
        )
        .where(flow_versions.c.workspace_id == workspace_id, flow_versions.c.flow_id == flow_id)
        .order_by(flow_versions.c.version.desc())
    )
    return [dict(r._mapping) for r in rows]


def get_version(
    conn: Connection, workspace_id: str, flow_id: str, version: int
) -> dict[str, Any] | None:
    """One version with its document and source text."""
    row = conn.execute(
        select(flow_versions).where(
            flow_versions.c.workspace_id == workspace_id,
            flow_versions.c.flow_id == flow_id,
            flow_versions.c.version == version,
        )
    ).first()
    return None if row is None else dict(row._mapping)
