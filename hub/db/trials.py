"""Trial runs' own rows: the document a trial runs, its pins and the step it stops after.

A trial run (the flow builder's "try it") is a row of ``runs`` with ``trial`` true and
flow version :data:`TRIAL_VERSION` (0: no saved version has that number, so a trial's
``(workspace, flow, version)`` never names a version, and the engine knows a trial from
its run's facts alone). What it runs is in ``trial_documents``, by run id: the engine
compiles a trial's flow from there (:mod:`hub.engine.trials`), never from
``flow_versions``. Runs are deleted with their flow (:func:`hub.db.flows.delete_flow`
deletes these rows with them).

Each function is a synchronous function of a SQLAlchemy ``Connection``, run in the
caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select, update

from hub.db.models import steps, trial_documents

#: The flow version of every trial run (saved versions are numbered from 1).
TRIAL_VERSION = 0
#: The state of a step row whose output was pinned (the action was not called).
PINNED_STATE = {"pinned": True}


def insert_trial(
    conn: Connection,
    run_id: str,
    workspace_id: str,
    document: dict[str, Any],
    pins: dict[str, Any],
    stop_after: str | None,
    now: int,
) -> None:
    """Store what a trial run runs (in the transaction that creates its run)."""
    conn.execute(
        trial_documents.insert().values(
            run_id=run_id,
            workspace_id=workspace_id,
            document=document,
            pins=pins,
            stop_after=stop_after,
            created_at=now,
        )
    )


def trial_of(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """A trial run's ``document``, ``pins``, ``stop_after`` and ``workspace_id``, or None."""
    row = conn.execute(
        select(
            trial_documents.c.workspace_id,
            trial_documents.c.document,
            trial_documents.c.pins,
            trial_documents.c.stop_after,
        ).where(trial_documents.c.run_id == run_id)
    ).first()
    return None if row is None else dict(row._mapping)


def delete_trials(conn: Connection, run_ids: Any) -> int:
    """Delete the trial rows of some runs (a list, or a SELECT of run ids)."""
    return int(
        conn.execute(delete(trial_documents).where(trial_documents.c.run_id.in_(run_ids))).rowcount
    )


def mark_pinned(conn: Connection, row_id: int, owner: str) -> None:
    """Mark a claimed step attempt as pinned (its state), before it is completed with the
    pinned output."""
    conn.execute(
        update(steps)
        .where(steps.c.id == row_id, steps.c.lease_owner == owner)
        .values(state=PINNED_STATE)
    )
