"""What a workspace's home page reads: failed and running runs, the flows that fail most.

A few indexed queries: failures and running runs are found through the status index
(``ix_runs_status``: they are a small part of the runs), the runs of the few flows that fail
most counted on the covering list index (``ix_runs_list``: workspace, flow, created), the
newest failures down the workspace's time index. Where SQLite would pick the workspace's
indexes for a condition (and read every run of the window), the condition is written as an
expression (``workspace_id || ''``, ``created_at + 0``), which no index serves.

With 100,000 runs over 10 days, 10% failed, the home page's reads took 25-40 ms on SQLite
(two busy cores). They grow with the hub's failed runs (all workspaces, all time), read from
the status index alone: it carries the workspace, the created time and the flow (migration
0007), so no failed run's row is read to be skipped. SQLite, without statistics, would rather
take an index that gives the order or the grouping than the one with the most equalities;
hence the expressions.

Times are epoch microseconds; a window starts at a run's ``created_at`` (as the runs list's
``since`` filter does). Trial runs (the flow builder's tests) are never counted nor listed
here: every query says :data:`~hub.db.runs.PRODUCTION`, read from the indexes' last column
(migration 0008).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, func, select

from hub.db.models import flows, runs
from hub.db.runs import PRODUCTION

LATEST_COLUMNS = (
    runs.c.id,
    runs.c.flow_id,
    runs.c.status,
    runs.c.trigger_type,
    runs.c.error,
    runs.c.created_at,
    runs.c.started_at,
    runs.c.finished_at,
)


def failures_by_flow(
    conn: Connection, workspace_id: str, since: int, recent: int
) -> list[dict[str, Any]]:
    """Per flow, its runs created since ``since`` that failed (``failed``), and those of them
    created since ``recent`` (``recent``), most failures first (one grouped query)."""
    stmt = (
        select(
            runs.c.flow_id,
            func.count().label("failed"),
            func.sum(case((runs.c.created_at >= recent, 1), else_=0)).label("recent"),
        )
        .where(
            runs.c.status == "failed",
            # expressions, not the columns: the status index finds the failures; the
            # workspace's indexes would read all its runs of the window (or of all time)
            runs.c.workspace_id.concat("") == workspace_id,
            runs.c.created_at + 0 >= since,
            PRODUCTION,
        )
        .group_by(runs.c.flow_id)
        .order_by(func.count().desc(), runs.c.flow_id)
    )
    return [
        {"flow_id": r.flow_id, "failed": int(r.failed), "recent": int(r.recent or 0)}
        for r in conn.execute(stmt)
    ]


def runs_by_flow(
    conn: Connection, workspace_id: str, flow_ids: list[str], since: int
) -> dict[str, int]:
    """How many runs each of ``flow_ids`` had since ``since`` (one grouped query)."""
    if not flow_ids:
        return {}
    stmt = (
        select(runs.c.flow_id, func.count().label("runs"))
        .where(
            runs.c.workspace_id == workspace_id,
            runs.c.flow_id.in_(flow_ids),
            runs.c.created_at >= since,
            PRODUCTION,
        )
        .group_by(runs.c.flow_id)
    )
    return {r.flow_id: int(r.runs) for r in conn.execute(stmt)}


def recent_runs(
    conn: Connection, workspace_id: str, status: str, since: int, limit: int = 5
) -> list[dict[str, Any]]:
    """The newest runs of a status created since ``since`` (down the workspace's time index
    from its end, until ``limit`` of them are found)."""
    stmt = (
        select(*LATEST_COLUMNS)
        .where(
            runs.c.workspace_id == workspace_id,
            runs.c.created_at >= since,
            runs.c.status == status,
            PRODUCTION,
        )
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def active_runs(
    conn: Connection, workspace_id: str, status: str, limit: int = 5
) -> list[dict[str, Any]]:
    """The newest runs of a status few runs have at once (``running``), through the status
    index (the workspace's time index would be read back to the first such run)."""
    stmt = (
        select(*LATEST_COLUMNS)
        .where(runs.c.status == status, runs.c.workspace_id.concat("") == workspace_id, PRODUCTION)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def count_runs(conn: Connection, workspace_id: str, status: str) -> int:
    """How many runs of the workspace have a status now (``running``: a short list)."""
    stmt = (
        select(func.count())
        .select_from(runs)
        .where(runs.c.status == status, runs.c.workspace_id == workspace_id, PRODUCTION)
    )
    return int(conn.execute(stmt).scalar_one())


def flow_names(conn: Connection, workspace_id: str, flow_ids: set[str]) -> dict[str, str]:
    """The names of some flows of a workspace (a flow deleted since: absent)."""
    if not flow_ids:
        return {}
    stmt = select(flows.c.id, flows.c.name).where(
        flows.c.workspace_id == workspace_id, flows.c.id.in_(sorted(flow_ids))
    )
    return {r.id: r.name for r in conn.execute(stmt)}


def count_flows(conn: Connection, workspace_id: str) -> int:
    """How many flows the workspace has."""
    stmt = select(func.count()).select_from(flows).where(flows.c.workspace_id == workspace_id)
    return int(conn.execute(stmt).scalar_one())


def attention(
    conn: Connection,
    workspace_id: str,
    *,
    now: int,
    recent: int,
    window: int,
    top: int = 5,
    latest: int = 5,
) -> dict[str, Any]:
    """Everything the home page shows from the database, in one read transaction: runs that
    failed in the last ``recent`` microseconds (count and the newest ``latest``), runs now
    running (count and the newest ``latest``), the ``top`` flows by failures in the last
    ``window`` microseconds with their run counts, the flow names those need, and how many
    flows the workspace has."""
    recent_since, window_since = now - recent, now - window
    failures = failures_by_flow(conn, workspace_id, window_since, recent_since)
    worst = failures[:top]
    totals = runs_by_flow(conn, workspace_id, [f["flow_id"] for f in worst], window_since)
    failed_latest = recent_runs(conn, workspace_id, "failed", recent_since, latest)
    running_latest = active_runs(conn, workspace_id, "running", latest)
    running = (
        len(running_latest)
        if len(running_latest) < latest
        else count_runs(conn, workspace_id, "running")
    )
    named = {f["flow_id"] for f in worst}
    named |= {r["flow_id"] for r in failed_latest} | {r["flow_id"] for r in running_latest}
    return {
        "failed_recent": sum(f["recent"] for f in failures),
        "failed_latest": failed_latest,
        "running": running,
        "running_latest": running_latest,
        "failing_flows": [
            {**f, "runs": max(totals.get(f["flow_id"], 0), f["failed"])} for f in worst
        ],
        "flow_names": flow_names(conn, workspace_id, named),
        "flows": count_flows(conn, workspace_id),
    }
