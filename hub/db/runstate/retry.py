"""Retrying a failed run, one transaction: the run goes back to ``running`` and its failed
(and cancelled) step keys get a new attempt (the engine's ``run_ops`` says the rules).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from hub.db.models import now_us, runs, steps
from hub.db.runstate.rows import insert_steps, lock_run, step_row
from hub.db.runstate.types import Outcome, RunNotFound


class RunStateError(Exception):
    """The run is not in a state that allows the operation (e.g. retrying a running run)."""


def _new_state(key: str, state: Any) -> Any:
    """What a retried attempt starts from: a handler keeps its error, an item its item."""
    if ":" in key:
        return state
    if isinstance(state, dict) and "item" in state:
        return {"item": state["item"]}
    return None


def retry_transition(conn: Connection, workspace_id: str, run_id: str) -> tuple[Outcome, list[str]]:
    """Put a failed run back to running with new attempts; return the jobs and retried keys.

    Raises :class:`RunNotFound` (no such run in the workspace) or :class:`RunStateError`.
    """
    lock_run(conn, run_id)
    run = conn.execute(
        select(runs.c.status).where(runs.c.id == run_id, runs.c.workspace_id == workspace_id)
    ).first()
    if run is None:
        raise RunNotFound(f"no run {run_id!r}")
    if run.status != "failed":
        raise RunStateError(f"only a failed run can be retried; this one is {run.status}")
    rows = conn.execute(
        select(
            steps.c.id,
            steps.c.key,
            steps.c.step_id,
            steps.c.item_index,
            steps.c.attempt,
            steps.c.status,
            steps.c.state,
            steps.c.items_left,
            steps.c.submitted_at,
        ).where(steps.c.run_id == run_id)
    ).all()
    latest: dict[str, Any] = {}
    for row in rows:
        if row.key not in latest or row.attempt > latest[row.key].attempt:
            latest[row.key] = row
    # A step whose failure went to an on_error handler is retried through that handler.
    handled = {key.split(":", 1)[1] for key in latest if ":" in key}
    now = now_us()
    new_rows: list[dict[str, Any]] = []
    waiting_again: list[int] = []
    for key, row in latest.items():
        if row.status not in ("failed", "cancelled") or key in handled:
            continue
        if row.status == "cancelled" and row.items_left:
            waiting_again.append(row.id)  # a for_each step still waiting for items
            continue
        # A cancelled item that was never submitted was held back by `concurrency`.
        pending = row.status == "cancelled" and row.submitted_at is None
        new_rows.append(
            step_row(
                run_id,
                key,
                row.step_id,
                now,
                item_index=row.item_index,
                attempt=row.attempt + 1,
                status="pending" if pending else "queued",
                submitted_at=None if pending else now,
                state=_new_state(key, row.state),
            )
        )
    if not new_rows and not waiting_again:
        raise RunStateError("the run has no failed or cancelled step to retry")
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == "failed")
        .values(status="running", output=None, error=None, finished_at=None)
    )
    if waiting_again:
        conn.execute(
            update(steps)
            .where(steps.c.id.in_(waiting_again))
            .values(status="waiting", due_at=None, finished_at=None)
        )
    jobs = insert_steps(conn, new_rows)
    return Outcome(jobs=jobs), sorted(r["key"] for r in new_rows)
