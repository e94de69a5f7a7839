"""What the operational probes read: a round trip for readiness, the gauges of ``/metrics``."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from hub.db.models import runs, steps
from hub.db.runs import PRODUCTION


def ping(conn: Connection) -> None:
    """A round trip to the database (readiness)."""
    conn.execute(select(1)).scalar()


def metric_counts(conn: Connection) -> dict[str, int]:
    """Steps ``queued`` and ``waiting`` and runs ``running``: indexed counts for /metrics.

    Trial runs are not counted as running (the queue depth counts their steps: they take
    workers like any other)."""
    found = {"queued": 0, "waiting": 0, "runs_running": 0}
    for status in ("queued", "waiting"):  # one equality each: an index range count
        found[status] = conn.execute(
            select(func.count()).select_from(steps).where(steps.c.status == status)
        ).scalar_one()
    found["runs_running"] = conn.execute(
        select(func.count()).select_from(runs).where(runs.c.status == "running", PRODUCTION)
    ).scalar_one()
    return found
