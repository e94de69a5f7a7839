"""Storage functions named for what they do (flows, versions, runs, connections, sweeping).

Each is a synchronous function of a SQLAlchemy ``Connection``, run in a transaction by
:class:`hub.db.database.Database`. The faces (CLI, API, UI) reach them through the hub's
runtime functions, never with SQL of their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.db.models import (
    connections,
    flow_versions,
    flows,
    now_us,
    runs,
    status_is,
    steps,
    workspaces,
)

RUN_COLUMNS = (
    runs.c.id,
    runs.c.workspace_id,
    runs.c.flow_id,
    runs.c.flow_version,
    runs.c.status,
    runs.c.trigger_type,
    runs.c.trigger,
    runs.c.output,
    runs.c.error,
    runs.c.parent_run_id,
    runs.c.parent_step_key,
    runs.c.depth,
    runs.c.created_at,
    runs.c.started_at,
    runs.c.finished_at,
)


def ping(conn: Connection) -> None:
    """A round trip to the database (readiness)."""
    conn.execute(select(1)).scalar()


def checksum(document: dict[str, Any]) -> str:
    """A stable checksum of a flow document (key order does not matter)."""
    return hashlib.sha256(msgspec.json.encode(document, order="sorted")).hexdigest()


def ensure_workspace(conn: Connection, workspace_id: str, name: str = "") -> None:
    """Create the workspace if it does not exist.

    Several processes may start at once on a new database: the insert ignores a conflict
    instead of checking first (a check-then-insert would race).
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(workspaces)
        .values(id=workspace_id, name=name or workspace_id, created_at=now_us())
        .on_conflict_do_nothing()
    )


# -- flows and versions ---------------------------------------------------------------------


@dataclasses.dataclass
class SavedVersion:
    """The result of saving a flow document."""

    flow_id: str
    version: int
    created: bool
    published: bool
    previous: dict[str, Any] | None


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


# -- runs -----------------------------------------------------------------------------------


def run_record(
    conn: Connection, run_id: str, workspace_id: str | None = None
) -> dict[str, Any] | None:
    """A run's row as a dict."""
    stmt = select(*RUN_COLUMNS).where(runs.c.id == run_id)
    if workspace_id is not None:
        stmt = stmt.where(runs.c.workspace_id == workspace_id)
    row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


def run_steps(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Every step attempt of a run, in creation order."""
    rows = conn.execute(
        select(
            steps.c.key,
            steps.c.step_id,
            steps.c.item_index,
            steps.c.attempt,
            steps.c.status,
            steps.c.input,
            steps.c.output,
            steps.c.error,
            steps.c.due_at,
            steps.c.created_at,
            steps.c.started_at,
            steps.c.finished_at,
        )
        .where(steps.c.run_id == run_id)
        .order_by(steps.c.id)
    )
    return [dict(r._mapping) for r in rows]


def list_runs(
    conn: Connection,
    workspace_id: str,
    *,
    flow_id: str | None = None,
    status: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Runs, newest first, with keyset pagination on the (time-ordered) run id."""
    stmt = select(*RUN_COLUMNS).where(runs.c.workspace_id == workspace_id)
    if flow_id:
        stmt = stmt.where(runs.c.flow_id == flow_id)
    if status:
        stmt = stmt.where(runs.c.status == status)
    if before:
        stmt = stmt.where(runs.c.id < before)
    stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def child_run(conn: Connection, parent_run_id: str, parent_step_key: str) -> dict[str, Any] | None:
    """The child run started by a step, if any."""
    row = conn.execute(
        select(runs.c.id, runs.c.status, runs.c.output, runs.c.error).where(
            runs.c.parent_run_id == parent_run_id, runs.c.parent_step_key == parent_step_key
        )
    ).first()
    return None if row is None else dict(row._mapping)


# -- connections ----------------------------------------------------------------------------


def get_connection(conn: Connection, workspace_id: str, name: str) -> dict[str, Any] | None:
    """A stored connection (secrets still encrypted)."""
    row = conn.execute(
        select(connections).where(
            connections.c.workspace_id == workspace_id, connections.c.name == name
        )
    ).first()
    return None if row is None else dict(row._mapping)


def connection_names(conn: Connection, workspace_id: str) -> dict[str, str]:
    """Connection name -> connector name, for flow validation."""
    rows = conn.execute(
        select(connections.c.name, connections.c.connector).where(
            connections.c.workspace_id == workspace_id
        )
    )
    return {r.name: r.connector for r in rows}


def insert_connection(
    conn: Connection,
    workspace_id: str,
    name: str,
    connector: str,
    secrets_token: str,
    settings: dict[str, Any],
) -> None:
    """Insert a new connection row (the caller knows the name is free)."""
    now = now_us()
    conn.execute(
        connections.insert().values(
            workspace_id=workspace_id,
            name=name,
            connector=connector,
            secrets=secrets_token,
            settings=settings,
            oauth_tokens="",
            created_at=now,
            updated_at=now,
        )
    )


def put_connection(
    conn: Connection,
    workspace_id: str,
    name: str,
    connector: str,
    secrets_token: str,
    settings: dict[str, Any],
) -> None:
    """Create or replace a connection."""
    now = now_us()
    existing = get_connection(conn, workspace_id, name)
    if existing is None:
        insert_connection(conn, workspace_id, name, connector, secrets_token, settings)
    else:
        conn.execute(
            update(connections)
            .where(connections.c.workspace_id == workspace_id, connections.c.name == name)
            .values(connector=connector, secrets=secrets_token, settings=settings, updated_at=now)
        )


# -- recovery -------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepFound:
    """What the sweeper found: steps to submit again, and steps whose lease expired.

    Each entry of ``submit`` is (run id, key, attempt, resubmission, due_at in seconds or None).
    """

    submit: list[tuple[str, str, int, int, float | None]]
    expired: list[dict[str, Any]]


def sweep_candidates(
    conn: Connection, horizon: int, resubmit_before: int, now: int, limit: int = 5000
) -> SweepFound:
    """Find lost work; bump the resubmission counter of what is submitted again."""
    jobs: list[tuple[str, str, int, int, float | None]] = []
    stale = conn.execute(
        select(steps.c.id, steps.c.run_id, steps.c.key, steps.c.attempt, steps.c.resubmissions)
        .where(
            steps.c.status == "queued",
            or_(steps.c.submitted_at.is_(None), steps.c.submitted_at < resubmit_before),
        )
        .limit(limit)
    ).all()
    for row in stale:
        conn.execute(
            update(steps)
            .where(steps.c.id == row.id)
            .values(submitted_at=now, resubmissions=row.resubmissions + 1)
        )
        jobs.append((row.run_id, row.key, row.attempt, row.resubmissions + 1, None))
    due = conn.execute(
        select(steps.c.run_id, steps.c.key, steps.c.attempt, steps.c.due_at, steps.c.resubmissions)
        .where(steps.c.status == "waiting", steps.c.due_at.is_not(None), steps.c.due_at <= horizon)
        .limit(limit)
    ).all()
    jobs.extend((r.run_id, r.key, r.attempt, r.resubmissions, r.due_at / 1_000_000) for r in due)
    expired = conn.execute(
        select(steps.c.id, steps.c.run_id, steps.c.key, steps.c.step_id, steps.c.attempt)
        .where(steps.c.status == "running", steps.c.lease_expires_at < now)
        .limit(limit)
    ).all()
    return SweepFound(jobs, [dict(r._mapping) for r in expired])


def renew_leases(conn: Connection, ids: list[int], owner: str, expires: int) -> list[int]:
    """Extend the leases this process holds; return the ids it still holds."""
    rows = conn.execute(
        update(steps)
        .where(steps.c.id.in_(ids), steps.c.lease_owner == owner, status_is("running"))
        .values(lease_expires_at=expires)
        .returning(steps.c.id)
    )
    return [r.id for r in rows]


def hand_back(
    conn: Connection, ids: list[int], owner: str, now: int
) -> list[tuple[str, str, int, int, None]]:
    """Return steps this process runs to ``queued`` (same attempt) for another worker."""
    rows = conn.execute(
        update(steps)
        .where(steps.c.id.in_(ids), steps.c.lease_owner == owner, status_is("running"))
        .values(
            status="queued",
            lease_owner=None,
            lease_expires_at=None,
            submitted_at=now,
            resubmissions=steps.c.resubmissions + 1,
        )
        .returning(steps.c.run_id, steps.c.key, steps.c.attempt, steps.c.resubmissions)
    ).all()
    return [(r.run_id, r.key, r.attempt, r.resubmissions, None) for r in rows]


# -- metrics --------------------------------------------------------------------------------


def metric_counts(conn: Connection) -> dict[str, int]:
    """Steps ``queued`` and ``waiting`` and runs ``running``: indexed counts for /metrics."""
    from sqlalchemy import func

    found = {"queued": 0, "waiting": 0, "runs_running": 0}
    for status in ("queued", "waiting"):  # one equality each: an index range count
        found[status] = conn.execute(
            select(func.count()).select_from(steps).where(steps.c.status == status)
        ).scalar_one()
    found["runs_running"] = conn.execute(
        select(func.count()).select_from(runs).where(runs.c.status == "running")
    ).scalar_one()
    return found


def encrypted_connections(conn: Connection, limit: int | None = None) -> list[dict[str, Any]]:
    """Connections holding encrypted values, in every workspace, newest change first.

    For the start-up key check, key rotation and the OAuth2 refresher (not for a face).
    """
    stmt = (
        select(
            connections.c.workspace_id,
            connections.c.name,
            connections.c.connector,
            connections.c.secrets,
            connections.c.settings,
            connections.c.oauth_tokens,
        )
        .where(or_(connections.c.secrets != "", connections.c.oauth_tokens != ""))
        .order_by(connections.c.updated_at.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]
