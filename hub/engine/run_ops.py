"""Operations on finished runs: retry from the failed step, and replay.

Both keep the run protocol's guarantees (see ``ARCHITECTURE.md``):

- **Retry** (:func:`retry_run`) works on a ``failed`` run, in ONE transaction that locks the
  run row: the run goes back to ``running``; every step key whose latest attempt is
  ``failed`` gets a new attempt (the old attempts stay as history: rows are unique on run,
  key and attempt); the keys the failure cancelled (parallel branches, queued or waiting
  steps, items of a ``for_each``) get a new attempt too, and a ``for_each`` step waiting for
  its items goes back to waiting. Completed steps are never re-run. The new attempts are
  submitted only after the transaction commits. A manual retry is one more attempt: the
  step's own retry policy is not restarted, so if it fails again the run fails again.
- **Replay** (:func:`replay_run`) starts a new run of the same flow version with the same
  trigger data, through the engine's ``start_run``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from hub.db import store
from hub.db.models import now_us, runs, steps
from hub.db.runstate.transitions import Outcome, insert_steps, lock_run, step_row
from hub.engine import Engine, RunNotFound


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


def _announce(engine: Engine, event: dict[str, Any]) -> None:
    engine.emit(event)


async def retry_run(engine: Engine, workspace_id: str, run_id: str) -> list[str]:
    """Retry a failed run from its failed step(s); return the step keys given a new attempt."""
    outcome, keys = await engine.db.write(lambda c: retry_transition(c, workspace_id, run_id))
    if outcome.jobs:
        await engine.executor.submit(outcome.jobs)
    _announce(engine, {"type": "run", "run_id": run_id, "status": "running"})
    return keys


async def replay_run(engine: Engine, workspace_id: str, run_id: str) -> str:
    """Start a new run of the same flow version with the same trigger data; return its id."""
    record = await engine.db.read(lambda c: store.run_record(c, run_id, workspace_id))
    if record is None:
        raise RunNotFound(f"no run {run_id!r}")
    return await engine.start_run(
        workspace_id,
        record["flow_id"],
        record["trigger"],
        version=record["flow_version"],
        trigger_type="replay",
    )
