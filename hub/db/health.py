"""What the operational probes read: a round trip for readiness, the gauges of ``/metrics``."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from hub.db.models import runs, steps


def ping(conn: Connection) -> None:
    """A round trip to the database (readiness)."""
    conn.execute(select(1)).scalar()


def metric_counts(conn: Connection) -> dict[str, int]:
    """Steps ``queued`` and ``waiting`` and runs ``running``: indexed counts for /metrics."""
    found = {"queued": 0, "waiting": 0, "runs_running": 0}
    for status in ("queued", "waiting"):  # one equality each: an index range count
        found[status] = conn.execute(
            select(func.count()).select_from(steps).where(steps.c.status == status)
        ).scalar_one()
    found["runs_running"] = conn.execute(
        select(func.count()).select_from(runs).where(runs.c.status == "running")
    ).scalar_one()
    return found
