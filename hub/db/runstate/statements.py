"""The prebuilt statements of the run-state transactions.

They are built once, with bind parameters: building a SQLAlchemy statement costs more than
executing a cached one, and a step runs several of them.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.db.models import ACTIVE_STATUSES, runs, status_is, steps

ACTIVE = ACTIVE_STATUSES
SATISFIED = ("done", "skipped")
FINAL_RUN = ("succeeded", "failed", "cancelled")

INSERT_STEPS = {
    "postgresql": postgresql.insert(steps).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(steps).on_conflict_do_nothing(),
}
LOCK_RUN = select(runs.c.status).where(runs.c.id == bindparam("b_run")).with_for_update()
CLAIM = (
    update(steps)
    .where(
        steps.c.run_id == bindparam("b_run"),
        steps.c.key == bindparam("b_key"),
        steps.c.attempt == bindparam("b_attempt"),
        status_is("queued", "waiting"),
        (steps.c.due_at.is_(None) & status_is("queued")) | (steps.c.due_at <= bindparam("b_now")),
    )
    .values(
        status="running",
        lease_owner=bindparam("b_owner"),
        lease_expires_at=bindparam("b_expires"),
        started_at=func.coalesce(steps.c.started_at, bindparam("b_now")),
    )
    .returning(steps.c.id, steps.c.step_id, steps.c.item_index, steps.c.state)
)
NEXT_PENDING = (
    select(steps.c.id, steps.c.key, steps.c.attempt)
    .where(
        steps.c.run_id == bindparam("b_run"),
        steps.c.step_id == bindparam("b_step"),
        status_is("pending"),
        steps.c.item_index.is_not(None),  # pending steps are items: their index applies
    )
    .order_by(steps.c.item_index)
    .limit(1)
)
QUEUE_PENDING = (
    update(steps)
    .where(steps.c.id == bindparam("b_id"))
    .values(status="queued", submitted_at=bindparam("b_now"))
)


def pull_statement(status: str, newest_first: bool) -> Any:
    """Claim one item of a fan-out in ``status`` (its newest or oldest) for this process.

    ``SKIP LOCKED`` passes over an item another worker is claiming right now; if one claims
    the picked item first, the ``status`` condition, checked again on the row, takes none.
    """
    order = steps.c.item_index.desc() if newest_first else steps.c.item_index
    pick = (
        select(steps.c.id)
        .where(
            steps.c.run_id == bindparam("b_run"),
            steps.c.step_id == bindparam("b_step"),
            status_is(status),
            steps.c.item_index.is_not(None),
            steps.c.due_at.is_(None),
        )
        .order_by(order)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(steps)
        .where(steps.c.id == pick, status_is(status))
        .values(
            status="running",
            lease_owner=bindparam("b_owner"),
            lease_expires_at=bindparam("b_expires"),
            submitted_at=func.coalesce(steps.c.submitted_at, bindparam("b_now")),
            started_at=bindparam("b_now"),
        )
        .returning(
            steps.c.id,
            steps.c.key,
            steps.c.attempt,
            steps.c.resubmissions,
            steps.c.step_id,
            steps.c.item_index,
            steps.c.state,
        )
    )


# A queued item has a job: pulled from the end, away from where the queue's workers start.
PULL_QUEUED = pull_statement("queued", newest_first=True)
# A pending item (beyond a capped fan-out's limit) has none: pulled in order.
PULL_PENDING = pull_statement("pending", newest_first=False)
ITEM_DONE = (
    update(steps)
    .where(
        steps.c.run_id == bindparam("b_run"),
        steps.c.key == bindparam("b_step"),
        status_is("waiting"),
    )
    .values(items_left=steps.c.items_left - 1)
    .returning(steps.c.items_left, steps.c.id)
)
ANY_ACTIVE = (
    select(steps.c.id)
    .where(steps.c.run_id == bindparam("b_run"), steps.c.status.in_(ACTIVE))
    .limit(1)
)
NEEDS_STATUS = select(steps.c.key, steps.c.status, steps.c.attempt).where(
    steps.c.run_id == bindparam("b_run"), steps.c.key.in_(bindparam("b_keys", expanding=True))
)


FINISH_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("b_run"), runs.c.status.not_in(FINAL_RUN))
    .values(
        status=bindparam("v_status"),
        output=bindparam("v_output", type_=runs.c.output.type),
        error=bindparam("v_error", type_=runs.c.error.type),
        finished_at=bindparam("b_now"),
    )
)
CANCEL_ACTIVE = (
    update(steps)
    .where(steps.c.run_id == bindparam("b_run"), steps.c.status.in_(ACTIVE))
    .values(status="cancelled", lease_owner=None, finished_at=bindparam("b_now"))
)
WAKE_PARENT = (
    update(steps)
    .where(
        steps.c.run_id == bindparam("b_run"),
        steps.c.key == bindparam("b_key"),
        status_is("waiting"),
        steps.c.due_at.is_(None),
    )
    .values(due_at=bindparam("b_now"))
    .returning(steps.c.attempt)
)
LOAD_OUTPUTS = select(steps.c.key, steps.c.output).where(
    steps.c.run_id == bindparam("b_run"),
    steps.c.key.in_(bindparam("b_keys", expanding=True)),
    steps.c.status.in_(SATISFIED),
)
INSERT_RUN = runs.insert()


@functools.cache
def finish_statement(columns: tuple[str, ...]) -> Any:
    """UPDATE of a claimed step that checks id, attempt, lease owner and ``running``."""
    return (
        update(steps)
        .where(
            steps.c.id == bindparam("b_id"),
            steps.c.attempt == bindparam("b_attempt"),
            steps.c.lease_owner == bindparam("b_owner"),
            status_is("running"),
        )
        .values(
            lease_owner=None,
            lease_expires_at=None,
            **{name: bindparam(f"v_{name}") for name in columns},
        )
    )


RUN_INFOS = select(
    runs.c.id,
    runs.c.workspace_id,
    runs.c.flow_id,
    runs.c.flow_version,
    runs.c.trigger,
    runs.c.depth,
    runs.c.parent_run_id,
    runs.c.parent_step_key,
    runs.c.created_at,
).where(runs.c.id.in_(bindparam("b_ids", expanding=True)))
