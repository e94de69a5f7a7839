"""Flows and their versions: saving, publishing, searching, reading documents.

Each function is a synchronous function of a SQLAlchemy ``Connection``, run in a
transaction by :class:`hub.db.database.Database`. The faces reach them through the
workspace services (:mod:`hub.services`); the engine and the triggers read published
documents here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, case, delete, func, or_, select, update

from hub.db.models import (
    api_tokens,
    flow_drafts,
    flow_tombstones,
    flow_versions,
    flows,
    now_us,
    runs,
    steps,
    trigger_state,
    webhook_keys,
)
from hub.db.runs import PRODUCTION, trial_filter
from hub.db.trials import delete_trials

FINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled")


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


def _insert_flow(
    conn: Connection, workspace_id: str, document: dict[str, Any], now: int, enabled: bool = True
) -> None:
    """The row of a new flow (enabled unless said otherwise), with no version yet."""
    flow_id = document["id"]
    conn.execute(
        flows.insert().values(
            workspace_id=workspace_id,
            id=flow_id,
            name=document.get("name") or flow_id,
            enabled=enabled,
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
    enabled: bool = True,
) -> SavedVersion:
    """Save a document as a new version unless it equals the latest; optionally publish it.
    ``enabled``: whether a flow created by this save starts with its trigger on."""
    flow_id = document["id"]
    now = now_us()
    digest = checksum(document)
    flow = conn.execute(
        select(flows).where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
    ).first()
    previous = None
    if flow is None:
        _insert_flow(conn, workspace_id, document, now, enabled)
        latest = _reuse_deleted_id(conn, workspace_id, flow_id)
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


def _search(workspace_id: str, q: str | None, enabled: bool | None) -> Any:
    """The conditions of a search: the workspace, ``q`` in the id or name, the state."""
    conditions = [flows.c.workspace_id == workspace_id]
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        conditions.append(
            or_(
                flows.c.id.like(pattern, escape="\\"),
                flows.c.name.ilike(pattern, escape="\\"),
            )
        )
    if enabled is not None:
        conditions.append(flows.c.enabled.is_(enabled))
    return and_(*conditions)


def search_flows(
    conn: Connection,
    workspace_id: str,
    *,
    q: str | None = None,
    enabled: bool | None = None,
    after: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Flows of a workspace by id; ``q`` matches the id or name (case-insensitive);
    ``after`` (an id) or ``offset`` (a count) says where the page starts."""
    stmt = select(flows).where(_search(workspace_id, q, enabled))
    if after:
        stmt = stmt.where(flows.c.id > after)
    stmt = stmt.order_by(flows.c.id).limit(limit).offset(offset or None)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def count_flows(
    conn: Connection, workspace_id: str, *, q: str | None = None, enabled: bool | None = None
) -> int:
    """How many flows of a workspace match the search (see :func:`search_flows`)."""
    stmt = select(func.count()).select_from(flows).where(_search(workspace_id, q, enabled))
    return int(conn.execute(stmt).scalar() or 0)


def run_stats(
    conn: Connection, workspace_id: str, flow_ids: Sequence[str], since: int
) -> dict[str, dict[str, Any]]:
    """For each of ``flow_ids``: its newest run (``last_run_id``, ``last_status``,
    ``last_created_at``, ``last_finished_at``; None when it never ran) and its runs created
    since ``since`` (epoch microseconds): ``total``, ``succeeded``, ``failed``.

    ONE statement for a whole page of flows, on the runs list index (workspace, flow,
    created time, id, status): each flow's newest run is one step down the index from its
    end, and the counts read the index entries of the window only, never the rows (1,000
    flows and 100,000 runs: about 2 ms for a page on SQLite; two flows of 50,000 runs each:
    about 22 ms). Trial runs are left out (``trial`` is the index's last column).
    """
    if not flow_ids:
        return {}
    ids = list(flow_ids)
    newest = (
        select(runs.c.id)
        .where(
            runs.c.workspace_id == flows.c.workspace_id,
            runs.c.flow_id == flows.c.id,
            PRODUCTION,
        )
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(1)
        .correlate(flows)
        .scalar_subquery()
    )
    page = (
        select(flows.c.id.label("flow_id"), newest.label("last_run_id"))
        .where(flows.c.workspace_id == workspace_id, flows.c.id.in_(ids))
        .subquery("page")
    )
    counts = (
        select(
            runs.c.flow_id,
            func.count().label("total"),
            func.sum(case((runs.c.status == "succeeded", 1), else_=0)).label("succeeded"),
            func.sum(case((runs.c.status == "failed", 1), else_=0)).label("failed"),
        )
        .where(
            runs.c.workspace_id == workspace_id,
            runs.c.flow_id.in_(ids),
            runs.c.created_at >= since,
            PRODUCTION,
        )
        .group_by(runs.c.flow_id)
        .subquery("counts")
    )
    last = runs.alias("last")
    stmt = (
        select(
            page.c.flow_id,
            page.c.last_run_id,
            last.c.status.label("last_status"),
            last.c.created_at.label("last_created_at"),
            last.c.finished_at.label("last_finished_at"),
            func.coalesce(counts.c.total, 0).label("total"),
            func.coalesce(counts.c.succeeded, 0).label("succeeded"),
            func.coalesce(counts.c.failed, 0).label("failed"),
        )
        .select_from(page)
        .outerjoin(last, last.c.id == page.c.last_run_id)
        .outerjoin(counts, counts.c.flow_id == page.c.flow_id)
    )
    found = {}
    for row in conn.execute(stmt):
        item = dict(row._mapping)
        for key in ("total", "succeeded", "failed"):
            item[key] = int(item[key] or 0)
        found[item["flow_id"]] = item
    return found


def run_counts(
    conn: Connection, workspace_id: str, flow_id: str, *, trial: bool | None = False
) -> tuple[int, int]:
    """How many runs a flow has, and how many of them are still active (not finished):
    production runs only, unless ``trial`` says otherwise (see
    :func:`hub.db.runs.trial_filter`; None: trial runs too)."""
    stmt = select(
        func.count(),
        func.coalesce(func.sum(case((runs.c.status.in_(FINAL_RUN_STATUSES), 0), else_=1)), 0),
    ).where(runs.c.workspace_id == workspace_id, runs.c.flow_id == flow_id)
    trial_only = trial_filter(trial)
    if trial_only is not None:
        stmt = stmt.where(trial_only)
    row = conn.execute(stmt).one()
    return int(row[0]), int(row[1])


class FlowBusy(Exception):
    """The flow has runs that have not finished (``active`` of them): it is not deleted."""

    def __init__(self, active: int) -> None:
        super().__init__(f"{active} run(s) of the flow have not finished")
        self.active = active


@dataclasses.dataclass(frozen=True)
class DeletedFlow:
    """What deleting a flow removed with it."""

    versions: int
    runs: int
    steps: int
    tokens: int


def delete_flow(conn: Connection, workspace_id: str, flow_id: str) -> DeletedFlow | None:
    """Delete a flow with everything that is its own, in the caller's transaction: its
    versions, its runs and their step attempts, its triggers' state (a schedule's last
    tick, a poll's cursor), its webhooks' stored keys, and the API tokens limited to it.
    None when there is no such flow; :class:`FlowBusy` (nothing deleted) while any of its
    runs has not finished. Trial runs of the flow go with it (and their documents).

    Its id is remembered with its last version number (``flow_tombstones``): a flow created
    again with that id numbers its versions on from there. Runs of other flows that it
    started as sub-flows are theirs and stay (their parent run id then names no run).
    """
    flow = conn.execute(
        select(flows.c.latest_version)
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .with_for_update()
    ).first()
    if flow is None:
        return None
    _total, active = run_counts(conn, workspace_id, flow_id, trial=None)
    if active:
        raise FlowBusy(active)
    own_runs = select(runs.c.id).where(
        runs.c.workspace_id == workspace_id, runs.c.flow_id == flow_id
    )
    removed_steps = conn.execute(delete(steps).where(steps.c.run_id.in_(own_runs))).rowcount
    delete_trials(conn, own_runs)
    removed_runs = conn.execute(
        delete(runs).where(runs.c.workspace_id == workspace_id, runs.c.flow_id == flow_id)
    ).rowcount
    for table in (trigger_state, webhook_keys, flow_drafts):
        conn.execute(
            delete(table).where(table.c.workspace_id == workspace_id, table.c.flow_id == flow_id)
        )
    tokens = conn.execute(
        delete(api_tokens).where(
            api_tokens.c.workspace_id == workspace_id, api_tokens.c.flow_id == flow_id
        )
    ).rowcount
    versions = conn.execute(
        delete(flow_versions).where(
            flow_versions.c.workspace_id == workspace_id, flow_versions.c.flow_id == flow_id
        )
    ).rowcount
    conn.execute(delete(flows).where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id))
    conn.execute(
        flow_tombstones.insert().values(
            workspace_id=workspace_id,
            flow_id=flow_id,
            last_version=flow.latest_version,
            deleted_at=now_us(),
        )
    )
    return DeletedFlow(versions=versions, runs=removed_runs, steps=removed_steps, tokens=tokens)


def _reuse_deleted_id(conn: Connection, workspace_id: str, flow_id: str) -> int:
    """The last version number of a deleted flow with this id (0 when there was none); its
    tombstone goes (with any trigger state or webhook key written for the id since), the
    new flow's row carries the numbering on."""
    where = and_(
        flow_tombstones.c.workspace_id == workspace_id, flow_tombstones.c.flow_id == flow_id
    )
    last = conn.execute(select(flow_tombstones.c.last_version).where(where)).scalar()
    if last is None:
        return 0
    conn.execute(delete(flow_tombstones).where(where))
    # A poll that was running when the flow was deleted may have saved a cursor since (the
    # trigger runner stops it within its reconcile interval): the new flow starts afresh.
    for table in (trigger_state, webhook_keys):
        conn.execute(
            delete(table).where(table.c.workspace_id == workspace_id, table.c.flow_id == flow_id)
        )
    return int(last)


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
