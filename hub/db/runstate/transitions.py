"""The state transitions of runs and steps, each one database transaction.

Every function here is a synchronous function of a SQLAlchemy ``Connection`` that the engine
runs through :meth:`hub.db.database.Database.write`, so each transition is all-or-nothing:
a step is marked done *and* its ready successors are inserted in the same transaction, and
the UPDATE that completes a step checks the attempt, the lease owner and ``running``, so a
worker that lost its lease cannot complete a step someone else has taken over.

The functions return :class:`Outcome` objects: the jobs to submit once the transaction has
committed (never before: a job must never reach a queue before its row exists) and the runs
that reached a final status.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.db.models import ACTIVE_STATUSES, now_us, runs, status_is, steps
from hub.engine.executors.base import StepJob
from hub.flows import Flow

ACTIVE = ACTIVE_STATUSES
SATISFIED = ("done", "skipped")
FINAL_RUN = ("succeeded", "failed", "cancelled")


@dataclasses.dataclass
class Outcome:
    """What a transition produced: jobs to submit after commit, and finished runs."""

    jobs: list[StepJob] = dataclasses.field(default_factory=list)
    finished: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    lost: bool = False
    # Successors inserted already claimed by this process: (job, claimed row) to run here.
    eager: list[tuple[StepJob, dict[str, Any]]] = dataclasses.field(default_factory=list)
    # Jobs of steps this process claimed without them: to take back out of the queue.
    withdraw: list[StepJob] = dataclasses.field(default_factory=list)
    # Slots of Transitions.promised held for this outcome's eager steps until they start.
    promised: int = 0

    def merge(self, other: Outcome) -> None:
        """Add another outcome's jobs, eager steps and finished runs to this one."""
        self.jobs.extend(other.jobs)
        self.finished.extend(other.finished)
        self.eager.extend(other.eager)
        self.withdraw.extend(other.withdraw)
        self.promised += other.promised


@dataclasses.dataclass
class RunInfo:
    """The immutable facts of a run that the engine needs on every step."""

    id: str
    workspace_id: str
    flow_id: str
    flow_version: int
    trigger: Any
    depth: int
    parent_run_id: str | None
    parent_step_key: str | None
    created_at: int


# The hot statements are built once, with bind parameters: building a SQLAlchemy statement
# costs more than executing a cached one, and a step runs several of them.
_INSERT_STEPS = {
    "postgresql": postgresql.insert(steps).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(steps).on_conflict_do_nothing(),
}
_LOCK_RUN = select(runs.c.status).where(runs.c.id == bindparam("b_run")).with_for_update()
_CLAIM = (
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
_NEXT_PENDING = (
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
_QUEUE_PENDING = (
    update(steps)
    .where(steps.c.id == bindparam("b_id"))
    .values(status="queued", submitted_at=bindparam("b_now"))
)


def _pull_statement(status: str, newest_first: bool) -> Any:
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
_PULL_QUEUED = _pull_statement("queued", newest_first=True)
# A pending item (beyond a capped fan-out's limit) has none: pulled in order.
_PULL_PENDING = _pull_statement("pending", newest_first=False)
_ITEM_DONE = (
    update(steps)
    .where(
        steps.c.run_id == bindparam("b_run"),
        steps.c.key == bindparam("b_step"),
        status_is("waiting"),
    )
    .values(items_left=steps.c.items_left - 1)
    .returning(steps.c.items_left, steps.c.id)
)
_ANY_ACTIVE = (
    select(steps.c.id)
    .where(steps.c.run_id == bindparam("b_run"), steps.c.status.in_(ACTIVE))
    .limit(1)
)
_NEEDS_STATUS = select(steps.c.key, steps.c.status, steps.c.attempt).where(
    steps.c.run_id == bindparam("b_run"), steps.c.key.in_(bindparam("b_keys", expanding=True))
)


_FINISH_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("b_run"), runs.c.status.not_in(FINAL_RUN))
    .values(
        status=bindparam("v_status"),
        output=bindparam("v_output", type_=runs.c.output.type),
        error=bindparam("v_error", type_=runs.c.error.type),
        finished_at=bindparam("b_now"),
    )
)
_CANCEL_ACTIVE = (
    update(steps)
    .where(steps.c.run_id == bindparam("b_run"), steps.c.status.in_(ACTIVE))
    .values(status="cancelled", lease_owner=None, finished_at=bindparam("b_now"))
)
_WAKE_PARENT = (
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
_LOAD_OUTPUTS = select(steps.c.key, steps.c.output).where(
    steps.c.run_id == bindparam("b_run"),
    steps.c.key.in_(bindparam("b_keys", expanding=True)),
    steps.c.status.in_(SATISFIED),
)
_INSERT_RUN = runs.insert()


@functools.cache
def _finish_statement(columns: tuple[str, ...]) -> Any:
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


def lock_run(conn: Connection, run_id: str) -> None:
    """Lock the run row so that concurrent completions of one run serialise.

    PostgreSQL takes a row lock; SQLite needs nothing: it has one writer, and every write
    transaction starts with ``BEGIN IMMEDIATE``.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_RUN, {"b_run": run_id})


def step_row(run_id: str, key: str, step_id: str, now: int, **values: Any) -> dict[str, Any]:
    """The column values of a new step row (queued and submitted now unless overridden)."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "key": key,
        "step_id": step_id,
        "item_index": None,
        "attempt": 1,
        "status": "queued",
        "due_at": None,
        "submitted_at": now,
        "resubmissions": 0,
        "state": None,
        "items_left": None,
        "created_at": now,
    }
    row.update(values)
    return row


def insert_steps(conn: Connection, rows: list[dict[str, Any]]) -> list[StepJob]:
    """Insert step rows (ignoring ones that exist) and return jobs for the submittable ones."""
    if not rows:
        return []
    conn.execute(_INSERT_STEPS[conn.dialect.name], rows)
    return [
        StepJob(r["run_id"], r["key"], r["attempt"], 0, _to_seconds(r["due_at"]))
        for r in rows
        if r["status"] in ("queued", "waiting")
        and not (r["status"] == "waiting" and r["due_at"] is None)
    ]


def _to_seconds(us: int | None) -> float | None:
    return None if us is None else us / 1_000_000


def create_runs(conn: Connection, new_runs: list[dict[str, Any]], flow: Flow) -> Outcome:
    """Insert run rows and the rows of their root steps: two statements for any number of
    runs (a burst of webhooks or a poll's events start together), in the caller's
    transaction."""
    if not new_runs:
        return Outcome()
    conn.execute(_INSERT_RUN, new_runs)
    rows = [
        step_row(run["id"], root, root, run["created_at"])
        for run in new_runs
        for root in flow.roots
    ]
    return Outcome(jobs=insert_steps(conn, rows))


def claim(
    conn: Connection, run_id: str, key: str, attempt: int, owner: str, lease_s: float
) -> dict[str, Any] | None:
    """Claim a step: ``queued``/due ``waiting`` -> ``running`` with our lease, or None."""
    now = now_us()
    params = {
        "b_run": run_id,
        "b_key": key,
        "b_attempt": attempt,
        "b_now": now,
        "b_owner": owner,
        "b_expires": now + int(lease_s * 1_000_000),
    }
    row = conn.execute(_CLAIM, params).first()
    return None if row is None else claimed_row(row)


def claimed_row(row: Any) -> dict[str, Any]:
    """What the engine runs of a step row this process has just claimed."""
    return {"id": row.id, "step_id": row.step_id, "item_index": row.item_index, "state": row.state}


_RUN_INFOS = select(
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


def run_infos(conn: Connection, run_ids: Iterable[str]) -> dict[str, RunInfo]:
    """The immutable facts of these runs (those that exist), by id: one query."""
    rows = conn.execute(_RUN_INFOS, {"b_ids": list(run_ids)})
    return {row.id: RunInfo(**row._mapping) for row in rows}


def run_info(conn: Connection, run_id: str) -> RunInfo | None:
    """The immutable facts of a run."""
    return run_infos(conn, [run_id]).get(run_id)


def load_outputs(conn: Connection, run_id: str, keys: Iterable[str]) -> dict[str, Any]:
    """The outputs of the given step keys that are done or skipped (latest attempt)."""
    key_list = list(keys)
    if not key_list:
        return {}
    rows = conn.execute(_LOAD_OUTPUTS, {"b_run": run_id, "b_keys": key_list})
    return {r.key: r.output for r in rows}


def _finish_update(
    conn: Connection, row_id: int, attempt: int, owner: str, values: dict[str, Any]
) -> bool:
    stmt = _finish_statement(tuple(values))
    params = {"b_id": row_id, "b_attempt": attempt, "b_owner": owner}
    params.update({f"v_{name}": value for name, value in values.items()})
    return conn.execute(stmt, params).rowcount == 1


class Transitions:
    """Transitions that need the flow graph; one instance per engine.

    ``room()`` says how many more steps this process can run at once (negative when it runs
    more than its share), not counting the step being completed or expanded, whose slot
    its first successor or items inherit. While it has room, the first ready successor of
    a completed step, and the first items of a ``for_each`` (as many as there is room
    for), are inserted already claimed (``running`` with this process's lease), in the
    same transaction, and run here at once, with no queue round trip and no separate
    claim; the rest are queued for any worker. The insert can only succeed once, so this
    is as safe as a claim; if this process dies, the lease expires and the sweeper takes
    over. Likewise an item done here claims a sibling still queued (or pending) and runs
    it here, so that a fan-out goes through the queue only for the workers it spreads to.
    """

    def __init__(
        self, owner: str, lease_s: float = 30.0, room: Callable[[], int] = lambda: 0
    ) -> None:
        self.owner = owner
        self.lease_s = lease_s
        self.room = room
        # Slots promised to steps claimed beyond the completed ones' own, in transactions
        # not yet followed by their tasks (the engine's room counts them as taken).
        self.promised = 0

    # -- completing, failing, suspending a claimed step ------------------------------------

    def complete(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        row_id: int,
        key: str,
        attempt: int,
        status: str,
        input: Any,
        output: Any,
        render_output: Any,
    ) -> Outcome:
        """Mark a claimed step done (or skipped) and insert the successors that became ready."""
        lock_run(conn, run.id)
        now = now_us()
        values = {"status": status, "input": input, "output": output, "finished_at": now}
        if not _finish_update(conn, row_id, attempt, self.owner, values):
            return Outcome(lost=True)
        return self._after_satisfied(conn, flow, run, key, now, render_output)

    def suspend(
        self,
        conn: Connection,
        run: RunInfo,
        row_id: int,
        attempt: int,
        until_us: int | None,
        state: Any,
        input: Any,
        child_run: str | None = None,
    ) -> Outcome:
        """Make a claimed step ``waiting`` until a time, or until a child run finishes.

        Waiting on a child that has finished meanwhile (between the action's look and this
        transaction) makes the step due at once, so the wake-up cannot be missed.
        """
        lock_run(conn, run.id)
        if child_run is not None:
            status = conn.execute(select(runs.c.status).where(runs.c.id == child_run)).scalar()
            if status in FINAL_RUN:
                until_us = now_us()
        values = {"status": "waiting", "due_at": until_us, "state": state, "input": input}
        if not _finish_update(conn, row_id, attempt, self.owner, values):
            return Outcome(lost=True)
        if until_us is None:
            return Outcome()
        # The wake-up job needs an id of its own: the job running this attempt still holds
        # its id in the queue until it returns, and a queue drops an id it holds.
        woken = conn.execute(
            update(steps)
            .where(steps.c.id == row_id)
            .values(resubmissions=steps.c.resubmissions + 1)
            .returning(steps.c.key, steps.c.resubmissions)
        ).one()
        return Outcome(
            jobs=[StepJob(run.id, woken.key, attempt, woken.resubmissions, until_us / 1_000_000)]
        )

    def fail(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        row_id: int,
        key: str,
        attempt: int,
        error: dict[str, Any],
        input: Any,
        retry_delay: float | None,
        render_output: Any,
        *,
        owner_check: bool = True,
    ) -> Outcome:
        """Record a failed attempt: retry later, or apply the step's ``on_error``."""
        lock_run(conn, run.id)
        now = now_us()
        values = {"status": "failed", "error": error, "input": input, "finished_at": now}
        if owner_check:
            if not _finish_update(conn, row_id, attempt, self.owner, values):
                return Outcome(lost=True)
        else:  # the sweeper: only a step whose lease has expired
            changed = conn.execute(
                update(steps)
                .where(
                    steps.c.id == row_id,
                    status_is("running"),
                    steps.c.lease_expires_at < now,
                )
                .values(lease_owner=None, lease_expires_at=None, **values)
            ).rowcount
            if changed != 1:
                return Outcome(lost=True)
        old = conn.execute(
            select(steps.c.step_id, steps.c.item_index, steps.c.state).where(steps.c.id == row_id)
        ).one()
        if retry_delay is not None:
            due = now + int(retry_delay * 1_000_000)
            row = step_row(
                run.id,
                key,
                old.step_id,
                now,
                item_index=old.item_index,
                attempt=attempt + 1,
                status="waiting",
                due_at=due,
                state=_carry_state(old.state),
            )
            return Outcome(jobs=insert_steps(conn, [row]))
        return self._final_failure(conn, flow, run, key, old.step_id, error, now, render_output)

    def _final_failure(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        key: str,
        step_id: str,
        error: dict[str, Any],
        now: int,
        render_output: Any,
    ) -> Outcome:
        spec = flow.steps[step_id]
        if spec.on_error == "continue":
            self._mark_latest(conn, run.id, key, "done")
            return self._after_satisfied(conn, flow, run, key, now, render_output)
        if spec.on_error not in ("fail", "continue") and not spec.is_handler:
            handler_key = f"{spec.on_error}:{key}"
            state = {"error": error, "handles": key}
            latest_state = conn.execute(
                select(steps.c.state)
                .where(steps.c.run_id == run.id, steps.c.key == key)
                .order_by(steps.c.attempt.desc())
                .limit(1)
            ).scalar()
            if isinstance(latest_state, dict) and "item" in latest_state:
                state["item"] = latest_state["item"]
            row = step_row(run.id, handler_key, spec.on_error, now, state=state)
            return Outcome(jobs=insert_steps(conn, [row]))
        return self.finish_run(conn, run, "failed", None, {**error, "step": key}, now)

    def _mark_latest(self, conn: Connection, run_id: str, key: str, status: str) -> None:
        latest = (
            select(func.max(steps.c.attempt))
            .where(steps.c.run_id == run_id, steps.c.key == key)
            .scalar_subquery()
        )
        conn.execute(
            update(steps)
            .where(steps.c.run_id == run_id, steps.c.key == key, steps.c.attempt == latest)
            .values(status=status, output=None)
        )

    def _after_satisfied(
        self, conn: Connection, flow: Flow, run: RunInfo, key: str, now: int, render_output: Any
    ) -> Outcome:
        """A step key counts as done: handle handlers, fan-in of items, then successors."""
        if ":" in key:  # a handler finished: the step it handled counts as done
            handled = key.split(":", 1)[1]
            self._mark_latest(conn, run.id, handled, "done")
            return self._after_satisfied(conn, flow, run, handled, now, render_output)
        if key.endswith("]"):
            return self._item_satisfied(conn, flow, run, key, now, render_output)
        return self._successors(conn, flow, run, key, now, render_output)

    def _item_satisfied(
        self, conn: Connection, flow: Flow, run: RunInfo, key: str, now: int, render_output: Any
    ) -> Outcome:
        step_id = key[: key.index("[")]
        outcome = Outcome()
        ids = {"b_run": run.id, "b_step": step_id}
        capped = bool(flow.steps[step_id].concurrency)  # only a capped fan-out has pending items
        if self.room() + 1 > 0:  # the completed item's slot passes to a sibling
            pulled = self._pull_item(conn, run.id, step_id, now, capped)
            if pulled is not None:
                outcome.eager.append(pulled)
                if not capped:
                    outcome.withdraw.append(pulled[0])
        elif capped:
            nxt = conn.execute(_NEXT_PENDING, ids).first()
            if nxt is not None:
                conn.execute(_QUEUE_PENDING, {"b_id": nxt.id, "b_now": now})
                outcome.jobs.append(StepJob(run.id, nxt.key, nxt.attempt, 0, None))
        left = conn.execute(_ITEM_DONE, ids).first()
        if left is None or left.items_left > 0:
            return outcome
        outcome.merge(self.fan_in(conn, flow, run, step_id, left.id, now, render_output))
        return outcome

    def fan_in(
        self,
        conn: Connection,
        flow: Flow,
        run: RunInfo,
        step_id: str,
        parent_id: int,
        now: int,
        render_output: Any,
    ) -> Outcome:
        """The last item of a fan-out is done: its step (row ``parent_id``) is done with
        the items' outputs in order, and its successors follow. Called once, by the
        transaction that took the step's ``items_left`` to 0, under the run's lock."""
        items = conn.execute(
            select(steps.c.item_index, steps.c.output, steps.c.attempt, steps.c.status).where(
                steps.c.run_id == run.id,
                steps.c.step_id == step_id,
                steps.c.item_index.is_not(None),
            )
        ).all()
        latest: dict[int, Any] = {}
        for item in sorted(items, key=lambda r: r.attempt):
            latest[item.item_index] = item.output if item.status in SATISFIED else None
        output = [latest[i] for i in sorted(latest)]
        conn.execute(
            update(steps)
            .where(steps.c.id == parent_id)
            .values(status="done", output=output, finished_at=now)
        )
        return self._successors(conn, flow, run, step_id, now, render_output)

    def _successors(
        self, conn: Connection, flow: Flow, run: RunInfo, step_id: str, now: int, render_output: Any
    ) -> Outcome:
        rows = []
        for succ in flow.successors.get(step_id, ()):
            needs = flow.steps[succ].needs
            if len(needs) > 1:
                found = conn.execute(_NEEDS_STATUS, {"b_run": run.id, "b_keys": list(needs)}).all()
                current: dict[str, tuple[int, str]] = {}
                for r in found:
                    if r.key not in current or r.attempt > current[r.key][0]:
                        current[r.key] = (r.attempt, r.status)
                if not all(current.get(n, (0, ""))[1] in SATISFIED for n in needs):
                    continue
            rows.append(step_row(run.id, succ, succ, now))
        if rows:
            outcome = Outcome()
            if self.room() + 1 > 0:  # the completed step's slot passes to its successor
                eager = self._insert_claimed(conn, rows.pop(0), now)
                if eager is not None:
                    outcome.eager.append(eager)
            outcome.jobs.extend(insert_steps(conn, rows))
            return outcome
        return self._maybe_finish(conn, run, now, render_output)

    def _pull_item(
        self, conn: Connection, run_id: str, step_id: str, now: int, capped: bool
    ) -> tuple[StepJob, dict[str, Any]] | None:
        """Claim the next item of a fan-out to run here at once: (its job, the claimed row).

        Queued items have jobs: the item is taken from the newest end, while the queue's
        workers start from the oldest, and its job is withdrawn once this commits (were it
        still to run, it would find its step taken). Items of a capped fan-out come in
        order, from those still pending (which have no job).
        """
        row = conn.execute(
            _PULL_PENDING if capped else _PULL_QUEUED,
            {
                "b_run": run_id,
                "b_step": step_id,
                "b_owner": self.owner,
                "b_expires": now + int(self.lease_s * 1_000_000),
                "b_now": now,
            },
        ).first()
        if row is None:
            return None
        return StepJob(run_id, row.key, row.attempt, row.resubmissions, None), claimed_row(row)

    def _insert_claimed(
        self, conn: Connection, row: dict[str, Any], now: int
    ) -> tuple[StepJob, dict[str, Any]] | None:
        found = self._insert_all_claimed(conn, [row], now)
        return found[0] if found else None

    def _insert_all_claimed(
        self, conn: Connection, rows: list[dict[str, Any]], now: int
    ) -> list[tuple[StepJob, dict[str, Any]]]:
        """Insert step rows already claimed by this process; (job, claimed row) of each
        row inserted (one that exists already is someone else's)."""
        if not rows:  # an empty parameter list would insert one row of defaults
            return []
        expires = now + int(self.lease_s * 1_000_000)
        claimed = [
            {
                **row,
                "status": "running",
                "lease_owner": self.owner,
                "lease_expires_at": expires,
                "started_at": now,
            }
            for row in rows
        ]
        stmt = _INSERT_STEPS[conn.dialect.name].returning(steps.c.id, steps.c.key)
        ids = {r.key: r.id for r in conn.execute(stmt, claimed)}
        return [
            (
                StepJob(row["run_id"], row["key"], row["attempt"], 0, None),
                {
                    "id": ids[row["key"]],
                    "step_id": row["step_id"],
                    "item_index": row["item_index"],
                    "state": row["state"],
                },
            )
            for row in rows
            if row["key"] in ids
        ]

    def _maybe_finish(
        self, conn: Connection, run: RunInfo, now: int, render_output: Any
    ) -> Outcome:
        active = conn.execute(_ANY_ACTIVE, {"b_run": run.id}).first()
        if active is not None:
            return Outcome()
        status, output, error = render_output(conn)
        return self.finish_run(conn, run, status, output, error, now)

    # -- for_each ---------------------------------------------------------------------------

    def expand(
        self,
        conn: Connection,
        run: RunInfo,
        row_id: int,
        step_id: str,
        attempt: int,
        items: list[Any],
        concurrency: int | None,
    ) -> Outcome:
        """Fan a claimed ``for_each`` step out into item rows; the step waits for them."""
        lock_run(conn, run.id)
        now = now_us()
        values = {"status": "waiting", "due_at": None, "items_left": len(items)}
        if not _finish_update(conn, row_id, attempt, self.owner, values):
            return Outcome(lost=True)
        cap = concurrency or len(items)
        rows = [
            step_row(
                run.id,
                f"{step_id}[{i}]",
                step_id,
                now,
                item_index=i,
                status="queued" if i < cap else "pending",
                submitted_at=now if i < cap else None,
                state={"item": item},
            )
            for i, item in enumerate(items)
        ]
        take = max(0, min(self.room() + 1, cap))  # the waiting step's slot is free too
        eager = self._insert_all_claimed(conn, rows[:take], now)
        return Outcome(jobs=insert_steps(conn, rows[take:]), eager=eager)

    # -- runs -------------------------------------------------------------------------------

    def finish_run(
        self,
        conn: Connection,
        run: RunInfo,
        status: str,
        output: Any,
        error: Any,
        now: int,
    ) -> Outcome:
        """Give a run its final status; cancel what is left; wake a waiting parent step."""
        changed = conn.execute(
            _FINISH_RUN,
            {
                "b_run": run.id,
                "v_status": status,
                "v_output": output,
                "v_error": error,
                "b_now": now,
            },
        ).rowcount
        if not changed:
            return Outcome()
        if status != "succeeded":  # a succeeded run has nothing left to cancel
            conn.execute(_CANCEL_ACTIVE, {"b_run": run.id, "b_now": now})
        outcome = Outcome(finished=[finished_run(run, status, output, error)])
        if run.parent_run_id and run.parent_step_key:
            woke = conn.execute(
                _WAKE_PARENT,
                {"b_run": run.parent_run_id, "b_key": run.parent_step_key, "b_now": now},
            ).first()
            if woke is not None:
                outcome.jobs.append(
                    StepJob(run.parent_run_id, run.parent_step_key, woke.attempt, 0, None)
                )
        return outcome

    def cancel_run(self, conn: Connection, run_id: str, reason: str) -> Outcome:
        """Cancel a run and, recursively, its unfinished child runs."""
        now = now_us()
        outcome = Outcome()
        pending = [run_id]
        while pending:
            current = pending.pop()
            info = run_info(conn, current)
            if info is None:
                continue
            lock_run(conn, current)
            outcome.merge(self.finish_run(conn, info, "cancelled", None, {"message": reason}, now))
            children = conn.execute(
                select(runs.c.id).where(
                    and_(runs.c.parent_run_id == current, runs.c.status.not_in(FINAL_RUN))
                )
            ).scalars()
            pending.extend(children)
        outcome.jobs.clear()  # a cancelled child must not wake its cancelled parent
        return outcome


def finished_run(run: RunInfo, status: str, output: Any, error: Any = None) -> dict[str, Any]:
    """What :attr:`Outcome.finished` says of a run that a transition finished."""
    return {
        "id": run.id,
        "flow_id": run.flow_id,
        "workspace_id": run.workspace_id,
        "status": status,
        "output": output,
        "error": error,
        "parent_run_id": run.parent_run_id,
    }


def _carry_state(state: Any) -> Any:
    """What a new attempt inherits from the last one: the item of a for_each item."""
    if isinstance(state, dict) and "item" in state:
        return {"item": state["item"]}
    return None
